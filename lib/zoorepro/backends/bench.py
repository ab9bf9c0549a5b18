"""Inference the way ais_bench does it, and the batch-size throughput sweep.

Folder run (accuracy): ``.bin``/``.npy`` files natural-sorted, ``bs`` files per batch, the
last batch padded with copies of its first file and the padding's outputs dropped.
Outputs: ``<out>/<dirname>/<stem>_0.<txt|npy|bin>`` and ``<out>/<dirname>_summary.json``
with ais_bench's keys.  Throughput follows ais_bench: ``1000 * bs / mean compute ms``,
where compute time is host wall time around each synchronous inference call (no file
I/O, no pre/post-processing).
"""
from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from zoorepro.ascend.aisformat import (  # noqa: F401  (load_input: bench.load_input)
    AIS_BENCH_DEFINITION, AIS_BENCH_REAL_DEFINITION, NAME, PIPELINE_MEAN, VALIDITY_SPREAD,
    arg_value, batches, compute_times, list_inputs, load_input, make_summary, stat,
    summary_batch_size, summary_is_pure, throughput, time_stats, write_output, write_summary)
from zoorepro import hostload
from zoorepro.recipe.data import DataError, image_key
from zoorepro.host import check_memory, heartbeat, progress_bar

THROUGHPUT_DEFINITION = ("ais_bench: 1000 * batch_size / mean compute time (ms); compute time = "
                         "host wall time around each synchronous inference call; file I/O, "
                         "batching and pre/post-processing excluded; on a GPU the call includes "
                         "the host-device copies, which ais_bench's NPU figure excludes")
E2E_DEFINITION = ("end to end: images / wall time of the whole folder run (reading .bin files, "
                  "batching, inference, writing outputs), in as many concurrent streams as the "
                  "accuracy run uses (e2e_streams)")


def _infer_files(replicas: Sequence, files: Sequence[Path], batch_size: int, out_dir: Path,
                 outfmt: str, shape: tuple, stems: Sequence[str] | None = None, bar=None):
    """Infer ``files`` in batches across ``replicas``, one thread per replica (ONNX Runtime
    and torch release the GIL while computing, so stream k reads and writes files while
    stream j computes).  Each batch's outputs are written by the thread that computed it.
    Returns (per-stream compute ms lists, filesinfo by batch index, wall seconds)."""
    ext = outfmt.lower()
    work = iter(list(enumerate(batches(range(len(files)), batch_size))))
    lock = threading.Lock()
    stop = threading.Event()
    per_stream: list[list[float]] = [[] for _ in replicas]
    filesinfo: dict = {}
    done = [0]   # images finished, for the progress bar

    def worker(k: int) -> None:
        backend = replicas[k]
        try:
            while not stop.is_set():
                with lock:
                    item = next(work, None)
                if item is None:
                    return
                i, (real, padded) = item
                x = np.stack([load_input(files[p], shape) for p in padded])
                t0 = time.perf_counter()
                y = backend.infer(x)
                per_stream[k].append((time.perf_counter() - t0) * 1000.0)
                outs = []
                for j, p in enumerate(real):  # padding slots are not saved
                    stem = stems[p] if stems is not None else image_key(files[p].name)
                    dst = out_dir / f"{stem}_0.{ext}"
                    write_output(dst, y[j:j + 1], outfmt)
                    outs.append(str(dst))
                filesinfo[i] = {"infiles": [str(files[p]) for p in real], "outfiles": outs}
                with lock:
                    done[0] += len(real)
                if bar is not None and len(replicas) == 1:
                    bar.update(len(real))
        except BaseException:
            stop.set()
            raise

    wall0 = time.perf_counter()
    if len(replicas) == 1:
        worker(0)
    else:
        with ThreadPoolExecutor(len(replicas), thread_name_prefix="zoorepro-stream") as ex:
            futures = [ex.submit(worker, k) for k in range(len(replicas))]
            try:
                shown = 0   # the progress bar is updated from this thread only (notebook widgets)
                while wait(futures, timeout=0.25).not_done:
                    now = done[0]   # read once: a stream may finish a batch while the bar draws
                    if bar is not None and now > shown:
                        bar.update(now - shown)
                        shown = now
                if bar is not None and done[0] > shown:
                    bar.update(done[0] - shown)
                for f in futures:
                    f.result()
            except BaseException:
                stop.set()
                raise
    wall_s = time.perf_counter() - wall0
    return per_stream, {i: filesinfo[i] for i in sorted(filesinfo)}, wall_s


def stream_throughput(batch_size: int, per_stream: Sequence[Sequence[float]]) -> float | None:
    """ais_bench's formula per stream, summed over streams (as ais_bench's ``summary
    throughput`` sums its devices)."""
    parts = [throughput(batch_size, float(np.mean(ms))) for ms in per_stream if len(ms)]
    return float(sum(parts)) if parts else None


def streams_definition(n: int) -> str:
    if n <= 1:
        return THROUGHPUT_DEFINITION
    return (f"{THROUGHPUT_DEFINITION}; {n} concurrent streams (independent sessions, threads "
            f"split among them): the formula per stream, summed over streams, as ais_bench "
            f"sums its devices in 'summary throughput' (so it is not 1000 * batch_size / the "
            f"mean of the pooled NPU_compute_time); a call's time can include waiting for "
            f"Python's interpreter lock while another stream formats its outputs")


def replicas_for(backend, streams: int) -> list:
    """``backend.replicas(n)``, ``n`` = ``streams`` or the backend's own choice (0); a
    backend without replicas (any object with ``infer``/``info``) runs as one stream."""
    if not hasattr(backend, "replicas"):
        return [backend]
    return backend.replicas(streams or backend.auto_streams())


def warm(replicas: Sequence, x: np.ndarray, times: int) -> None:
    for b in replicas:
        for _ in range(times):
            b.infer(x)


def run_folder(backend, input_dir: str | os.PathLike, output: str | os.PathLike, dirname: str,
               batch_size: int, outfmt: str = "TXT", warmup: int = 1,
               progress: bool = True, files: Sequence[Path] | None = None,
               streams: int = 1, *, shape: tuple) -> dict:
    """ais_bench ``--input DIR --output OUT --output_dirname NAME --outfmt FMT --batchsize N``;
    ``shape``: each input's uint8 HWC shape (the AIPP config's source image).
    ``files``: only these inputs of the folder (a run's own images in a shared folder).
    ``streams``: concurrent inference streams (``backend.replicas``); 0 = the backend's
    :meth:`auto_streams`."""
    inputs, foreign = list_inputs(input_dir)
    if files is None:
        files, others = inputs, []
    else:
        chosen = {Path(f).name for f in files}
        others = [f.name for f in inputs if f.name not in chosen]
        files = list(files)
    if not files:
        raise DataError(f"{input_dir}: no .bin or .npy inputs; run preprocessing first")
    out_dir = Path(output) / dirname
    out_dir.mkdir(parents=True, exist_ok=True)
    replicas = replicas_for(backend, streams)
    check_memory(backend, batch_size, len(replicas))
    if warmup:
        first = np.stack([load_input(files[p], shape)
                          for p in next(batches(range(len(files)), batch_size))[1]])
        warm(replicas, first, warmup)
    bar = progress_bar(len(files), f"{backend.name} bs{batch_size}") if progress else None
    try:
        per_stream, filesinfo, wall_s = _infer_files(replicas, files, batch_size, out_dir,
                                                     outfmt, shape, bar=bar)
    finally:
        if bar is not None:
            bar.close()
    compute_ms = [t for ms in per_stream for t in ms]
    info = backend.info()
    n = len(replicas)
    args = ["--model", info.get("backend"), "--batchsize", str(batch_size), "--input",
            str(input_dir), "--output", str(output), "--output_dirname", dirname,
            "--outfmt", outfmt, "--warmup_count", str(warmup)]
    summary = make_summary(args, compute_ms, batch_size, stream_throughput(batch_size, per_stream),
                           filesinfo)
    summary.update({   # our own fields, after ais_bench's
        "backend": info.get("backend"), "device": info.get("device"),
        "backend_info": info,
        "streams": n,
        "stream_threads": [r.info().get("threads") for r in replicas],
        "stream_throughputs": [throughput(batch_size, float(np.mean(ms))) if ms else None
                               for ms in per_stream],
        "batchsize": batch_size, "images": len(files),
        "padding": (-len(files)) % batch_size,
        "foreign_files": foreign,
        "other_inputs": len(others), "other_inputs_examples": others[:10],
        "wall_s": wall_s,
        "e2e_throughput": len(files) / wall_s if wall_s > 0 else None,
        "throughput_definition": streams_definition(n),
        "e2e_definition": E2E_DEFINITION,
        "compute_time_note": ("NPU_compute_time keeps ais_bench's key name; here it is this "
                              "backend's compute time on the device named in 'device'. "
                              "H2D/D2H are not measured separately (count 0)."),
    })
    write_summary(output, dirname, summary)
    return summary


# -------------------------------------------------------------- the sweep


@dataclass(frozen=True)
class SweepSettings:
    batch_sizes: tuple
    iterations: int = 50
    min_seconds: float = 0.0
    warmup: int = 1
    timing: str = "device"     # device: compute only (ais_bench's NPU_compute_time); call


TIMING_DEFINITIONS = {
    "call": "call: host wall time around each synchronous inference call (on a GPU: with the "
            "host-device copies)",
    "device": "device: compute only, input already in the device's memory (ais_bench's "
              "NPU_compute_time); on a GPU timed with device events, host-to-device and "
              "device-to-host copies measured apart (h2d_mean_ms, d2h_mean_ms); on the CPU "
              "the input is already where it is computed, so the call is the compute",
}


def timed_calls(backend, x: np.ndarray, s: SweepSettings) -> dict:
    """At least ``s.iterations`` calls and ``s.min_seconds`` seconds (``warmup`` untimed first).
    ``timing`` device on a backend that separates its copies (``measure_device``, e.g. torch on
    CUDA): its device-event times and copy times; otherwise host wall time per call."""
    device = getattr(backend, "measure_device", None)
    if s.timing == "device" and device is not None:
        out = device(x, s.iterations, s.min_seconds, s.warmup)
        if out is not None:
            return {**out, "timing": "device"}
    for _ in range(s.warmup):
        backend.infer(x)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < s.iterations or time.perf_counter() - start < s.min_seconds:
        t0 = time.perf_counter()
        backend.infer(x)
        times.append((time.perf_counter() - t0) * 1000.0)
    on_cpu = str(backend.info().get("device", "")).startswith("cpu")
    return {"times": times, "seconds": time.perf_counter() - start, "h2d_ms": None,
            "d2h_ms": None, "timing": "device" if s.timing == "device" and on_cpu else "call"}


def validity_problems(stats: dict) -> list[str]:
    """Why a timing record is not to be trusted.  (At least N iterations and T seconds is
    guaranteed by :func:`measure`'s loop; what remains is the spread.)"""
    if not stats.get("median"):
        return ["no timings"]
    spread = stats["p90"] / stats["median"]
    return [f"p90/median {spread:.2f} > {VALIDITY_SPREAD}"] if spread > VALIDITY_SPREAD else []


def cycled_batch(samples: np.ndarray, batch_size: int) -> np.ndarray:
    """A batch of real images, cycling through ``samples`` (never zeros)."""
    idx = np.arange(batch_size) % samples.shape[0]
    return np.ascontiguousarray(samples[idx])


def measure(backend, samples: np.ndarray, batch_size: int, s: SweepSettings) -> dict:
    """Time ``backend`` at ``batch_size`` (:func:`timed_calls`).  Returns one flat record whose
    ``timing`` says what was timed, with the host's load meanwhile (:mod:`hostload`)."""
    x = cycled_batch(samples, batch_size)
    with hostload.Window() as load:      # how busy the host was while the point was timed
        t = timed_calls(backend, x, s)
    st = time_stats(t["times"])
    problems = validity_problems(st)
    info = backend.info()
    mean = lambda v: float(np.mean(v)) if v else None   # noqa: E731
    return {
        "backend": info.get("backend"), "device": info.get("device"),
        "batch_size": batch_size, "iterations": st["count"], "seconds": round(t["seconds"], 4),
        "min_ms": st["min"], "mean_ms": st["mean"], "median_ms": st["median"],
        "p90_ms": st["p90"], "p99_ms": st["percentile(99%)"], "max_ms": st["max"],
        "throughput": throughput(batch_size, st["mean"]),
        "throughput_definition": TIMING_DEFINITIONS[t["timing"]],
        "timing": t["timing"], "h2d_mean_ms": mean(t["h2d_ms"]), "d2h_mean_ms": mean(t["d2h_ms"]),
        "threads": info.get("threads"), "version": info.get("version"),
        "precision": info.get("precision", "fp32"),
        "input": f"{samples.shape[0]} real preprocessed images cycled",
        "valid": not problems, "validity": "; ".join(problems) or "ok",
        **load.fields(),
    }


def measure_e2e(replicas: Sequence, files: Sequence[Path], batch_size: int, shape: tuple,
                outfmt: str = "TXT", min_images: int = 64) -> dict:
    """End to end at ``batch_size``: read ``.bin`` files, batch, infer, write outputs (to a
    temporary folder), over at least ``min_images`` images (files cycled), with the
    accuracy run's concurrent streams (``replicas``)."""
    import tempfile
    n = max(min_images, 2 * batch_size * len(replicas))
    order = [Path(files[i % len(files)]) for i in range(n)]
    stems = [f"{i}_{image_key(f.name)}" for i, f in enumerate(order)]
    with tempfile.TemporaryDirectory(prefix="zoorepro-e2e-") as tmp:
        _, _, wall = _infer_files(replicas, order, batch_size, Path(tmp), outfmt, shape, stems)
    return {"e2e_throughput": n / wall, "e2e_images": n, "e2e_streams": len(replicas),
            "e2e_definition": E2E_DEFINITION}


def sweep(backend, samples: np.ndarray, s: SweepSettings, files: Sequence[Path] = (),
          outfmt: str = "TXT", streams: int = 1) -> list[dict]:
    """Compute-time record per batch size (one stream: ais_bench's per-call definition),
    plus end-to-end throughput with the accuracy run's ``streams`` when ``files`` given."""
    out = []
    replicas = replicas_for(backend, streams) if files else []
    for bs in s.batch_sizes:      # every batch size checked before the first runs
        check_memory(backend, bs, max(1, len(replicas)))
    # one step per batch size, on the terminal (zoorepro run) or as a widget (a notebook)
    bar = progress_bar(len(s.batch_sizes), f"{getattr(backend, 'name', 'backend')} sweep",
                       unit="batch size")
    try:
        with heartbeat(bar):
            for bs in s.batch_sizes:
                if bar is not None:
                    bar.set_postfix_str(f"batch size {bs}")
                rec = measure(backend, samples, bs, s)
                _release(backend)
                if files:
                    warm(replicas, cycled_batch(samples, bs), s.warmup)
                    rec.update(measure_e2e(replicas, files, bs, samples.shape[1:], outfmt))
                    for r in replicas:
                        _release(r)
                out.append(rec)
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return out


def _release(backend) -> None:
    """Keep one batch size's working memory at a time (sessions x streams add up)."""
    if hasattr(backend, "release_memory"):
        backend.release_memory()


def bench_record(summary: dict, path: str | os.PathLike, device: str, version: str = "") -> dict:
    """One bench record (:class:`zoorepro.run.records.BenchRow` fields) from an ais_bench
    summary."""
    bs = summary_batch_size(summary, path)
    times, mean, mean_from = compute_times(summary, path)
    st = time_stats(times) if times else None
    pipeline = mean_from == PIPELINE_MEAN
    median = st["median"] if st and not pipeline else stat(summary, "NPU_compute_time", "median")
    count = st["count"] if st else int(stat(summary, "NPU_compute_time", "count") or 0)
    problems = []
    if not mean or not np.isfinite(mean) or mean <= 0:
        problems.append("no NPU compute time in the summary")
        mean = None
    spread_note = ""
    if st and st["median"] and not pipeline:
        spread = st["p90"] / st["median"]
        if spread > VALIDITY_SPREAD:
            problems.append(f"p90/median {spread:.2f} > {VALIDITY_SPREAD}")
    elif pipeline:
        spread_note = " (pipeline mode: overlapping inferences, spread not checked)"
    elif not st:
        spread_note = " (no npu_compute_time_list: spread not checked)"
    ours = throughput(bs, mean)
    reported = summary.get("throughput")
    pure = summary_is_pure(summary)
    pure_type = arg_value(summary.get("args") or [], "--pure_data_type") or "zero"
    definition = AIS_BENCH_DEFINITION if pure else AIS_BENCH_REAL_DEFINITION
    if pipeline:
        definition += "; " + PIPELINE_MEAN
    per_call = st if st and not pipeline else None
    return {
        "backend": NAME, "device": device, "batch_size": bs, "iterations": count,
        "seconds": round(sum(times) / 1000.0, 4) if times and not pipeline else None,
        "min_ms": per_call["min"] if per_call else stat(summary, "NPU_compute_time", "min"),
        "mean_ms": mean, "median_ms": median, "p90_ms": per_call["p90"] if per_call else None,
        "p99_ms": per_call["percentile(99%)"] if per_call else
        stat(summary, "NPU_compute_time", "percentile(99%)"),
        "max_ms": per_call["max"] if per_call else stat(summary, "NPU_compute_time", "max"),
        "throughput": ours, "throughput_reported": reported,
        "throughput_definition": definition, "timing": "device",
        "threads": None, "version": version,
        "input": (f"{pure_type} bytes (ais_bench pure inference)" if pure
                  else f"real images from {arg_value(summary.get('args') or [], '--input', '-i')}"),
        "h2d_mean_ms": stat(summary, "H2D_latency", "mean"),
        "d2h_mean_ms": stat(summary, "D2H_latency", "mean"),
        "summary": str(path),
        "valid": not problems, "validity": "; ".join(problems) or ("ok" + spread_note),
    }
