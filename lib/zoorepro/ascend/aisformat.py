"""The ais_bench contract: everything zoorepro knows about ais_bench's files, in one module
that imports nothing above the base modules (errors, files, outputs); the
command lines are built by :mod:`zoorepro.ascend.aiscommands` and :mod:`zoorepro.ascend.atc`.

* **Inputs**: ``.bin``/``.npy`` natural-sorted (:func:`list_inputs`), ``bs`` per batch, the
  last batch padded with copies of its first file (:func:`batches`).
* **Outputs**: ``<output>/<dirname>/<stem>_<i>.<txt|npy|bin>``, one per real image and model
  output, as :mod:`zoorepro.outputs` (the contract shared with the recipe's scoring) writes
  and reads them; more in :mod:`zoorepro.ascend.aisclues`.
* **Summaries**: ``<output>/<dirname>_summary.json`` beside the results folder
  (:func:`read_summary`, :func:`write_summary`, :func:`compute_times`,
  :func:`batch_size_clues`); **throughput**: ``1000 * batch_size / mean ms``.

Source: Ascend/tools ``ais-bench_workload/tool/ais_bench`` (tested: commit 8da7f645, README).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from zoorepro.errors import DataError, IngestError
from zoorepro.files import atomic_write_json
from zoorepro.outputs import (BIN_DTYPES, CLASSES, FORMATS, RESULT_FILE,  # noqa: F401  (the output
                              natural_key, natural_sorted, read_prediction,  # contract, shared
                              write_output)  # with the recipe's scoring)

NAME = "ais_bench"
# no --loop constant here: each recipe's ais_bench.loop is its own (ais_bench's default is 1)
VALIDITY_SPREAD = 1.5   # p90 / median above this marks a timing record invalid (noisy machine)


def time_stats(ms: Sequence[float]) -> dict:
    """ais_bench's summary stats (min, max, mean, median, percentile(99%), count) plus p90."""
    if len(ms) == 0:
        return {"min": None, "max": None, "mean": None, "median": None, "percentile(99%)": None,
                "p90": None, "count": 0}
    a = np.asarray(ms, dtype=np.float64)
    return {"min": float(a.min()), "max": float(a.max()), "mean": float(a.mean()),
            "median": float(np.median(a)), "percentile(99%)": float(np.percentile(a, 99)),
            "p90": float(np.percentile(a, 90)), "count": int(a.size)}


def throughput(batch_size: int, mean_ms: float | None) -> float | None:
    """ais_bench's formula: ``1000 * batch_size / mean compute ms``."""
    if not mean_ms:
        return None
    return 1000.0 * batch_size / mean_ms


def list_inputs(folder: str | os.PathLike) -> tuple[list[Path], list[str]]:
    """(inputs, foreign): ``*.bin``/``*.npy`` (case-insensitive) natural-sorted; the rest listed."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: input folder not found; run preprocessing first")
    inputs, foreign = [], []
    for e in os.scandir(folder):
        if not e.is_file() or e.name.startswith("."):
            continue
        (inputs if e.name.lower().endswith((".bin", ".npy")) else foreign).append(e.name)
    return [folder / n for n in natural_sorted(inputs)], natural_sorted(foreign)


def load_input(path: Path, shape: tuple) -> np.ndarray:
    """One input as ais_bench feeds it: uint8 HWC of ``shape`` (the AIPP config's
    ``src_image_size``, 3 channels); a size other than the model's is refused, as ais_bench
    refuses it (tensorsize/filesize)."""
    want = int(np.prod(shape))
    dims = "x".join(str(d) for d in shape)
    if path.name.lower().endswith(".npy"):
        arr = np.load(path, allow_pickle=False)
        if arr.dtype != np.uint8 or arr.size != want:
            raise DataError(f"{path}: expected {dims} uint8, got {arr.dtype} {arr.shape}")
        return arr.reshape(shape)
    size = path.stat().st_size
    if size != want:
        raise DataError(f"{path}: {size} bytes, expected {want} ({dims} uint8): "
                        f"tensorsize/filesize do not match; remove it or rerun preprocessing")
    return np.fromfile(path, dtype=np.uint8).reshape(shape)

def batches(files: Sequence[Path], batch_size: int):
    """Yield (real files, padded file list) per batch; the last batch is padded with its first."""
    for start in range(0, len(files), batch_size):
        real = list(files[start:start + batch_size])
        yield real, real + [real[0]] * (batch_size - len(real))


def result_dirname(batch_size: int) -> str:
    """zoorepro's ``--output_dirname`` for an accuracy run: ``result_bs<N>``, whatever the
    README names its folder (ingest reads the ``bs<N>`` as a batch-size clue)."""
    return f"result_bs{batch_size}"


def perf_dirname(batch_size: int) -> str:
    """Our ``--output_dirname`` for the pure-inference run (so that a summary is written)."""
    return f"perf_bs{batch_size}"


def summary_path(output: str | os.PathLike, dirname: str) -> Path:
    """Where ais_bench writes the summary: beside the results folder, not inside it."""
    return Path(output) / f"{dirname}_summary.json"


AIS_BENCH_DEFINITION = (
    "ais_bench pure inference (--loop): 1000 * batch_size / mean NPU_compute_time (ms); "
    "NPU_compute_time = host wall time around each synchronous model execute on the NPU, "
    "i.e. device compute only; zero-filled input (--pure_data_type zero), H2D/D2H copies "
    "excluded, file I/O and pre/post-processing excluded")
AIS_BENCH_REAL_DEFINITION = AIS_BENCH_DEFINITION.replace(
    "zero-filled input (--pure_data_type zero)", "real images")
SUMMARY_KEYS = ("NPU_compute_time", "H2D_latency", "D2H_latency", "throughput")
MAX_SUMMARY_BYTES = 64 << 20   # 50,000 images: 10 MB


# ------------------------------------------------------------------ summaries
def read_summary(path: str | os.PathLike) -> dict:
    """An ais_bench ``*_summary.json``; an error names the file and the missing keys."""
    path = Path(path)
    if not path.is_file():
        raise IngestError(f"{path}: summary not found")
    if path.stat().st_size > MAX_SUMMARY_BYTES:
        raise IngestError(f"{path}: {path.stat().st_size:,} bytes is no ais_bench summary; give "
                          f"the <output>/<output_dirname>_summary.json ais_bench wrote")
    try:
        with open(path, encoding="utf-8") as fh:
            s = json.load(fh)
    except (OSError, ValueError, RecursionError) as exc:
        raise IngestError(f"{path}: not a readable JSON summary ({exc})") from None
    if not isinstance(s, dict):
        raise IngestError(f"{path}: expected a JSON object (ais_bench *_summary.json)")
    missing = [k for k in SUMMARY_KEYS if k not in s]
    if missing:
        raise IngestError(f"{path}: not an ais_bench summary, missing {', '.join(missing)} "
                          f"(ais_bench writes <output>/<output_dirname>_summary.json when "
                          f"--output is given)")
    for key in SUMMARY_KEYS[:3]:
        if not isinstance(s[key], dict):
            raise IngestError(f"{path}: {key} is {type(s[key]).__name__}, ais_bench writes an "
                              f"object of statistics; the summary is damaged")
        for field in s[key]:
            stat(s, key, field, path)          # every figure: a number in range, or an error
    t, args = s["throughput"], s.get("args", [])
    bad_t = t is not None and (isinstance(t, bool) or not isinstance(t, (int, float))
                               or not 0 <= t < 1e12)
    if bad_t or not isinstance(args, list):
        raise IngestError(f"{path}: " + (f"throughput is {str(t)[:40]!r}" if bad_t
                                         else f"args is a {type(args).__name__}")
                          + ", not what ais_bench writes; the summary is "
                          "damaged: copy it again or rerun ais_bench")
    return s


def arg_value(args: Sequence[str], *names: str) -> str | None:
    """Value of ``--name=V`` / ``--name V`` in an argv list (last one wins)."""
    found = None
    args = [str(a) for a in args or []]
    for i, a in enumerate(args):
        for n in names:
            if a.startswith(n + "="):
                found = a.split("=", 1)[1]
            elif a == n and i + 1 < len(args):
                found = args[i + 1]
    return found


def batch_size_clues(summary: dict, path: str | os.PathLike = "") -> list[tuple[str, int]]:
    """Every batch size a summary states: ``--batchsize`` and a ``batchsize`` field (as
    ais_bench's ``int()`` reads them; an integral float too), the last ``bs<N>`` of the OM
    and file names (the recipe names the batch size last), ais_bench's ``throughput`` /
    (1000 / mean).  A clue that is no integer is an error, never dropped."""
    args = summary.get("args") or []
    found = []
    for what, t in (("its --batchsize", arg_value(args, "--batchsize")),
                    ("its batchsize field", summary.get("batchsize"))):
        v = int(t) if isinstance(t, str) and re.fullmatch(r"\s*[0-9]{1,9}\s*", t) or \
            isinstance(t, float) and t.is_integer() else t
        if v is not None and type(v) is not int:
            raise IngestError(f"{path or 'summary'}: {what} {str(t)[:40]!r} is not a batch size "
                              f"(an integer, as ais_bench reads it); the summary is damaged: "
                              f"copy it again or rerun ais_bench")
        found += [(what, v)] if v is not None else []
    for what, name in (("the OM name", Path(arg_value(args, "--model", "-m") or "").name),
                       ("the file name", Path(path).name)):
        m = re.findall(r"bs([0-9]{1,9})", name)
        found += [(f"{what} {name}", int(m[-1]))] if m else []
    t, mean = summary.get("throughput"), stat(summary, "NPU_compute_time", "mean", path)
    if t and mean and found:          # ais_bench: throughput = 1000 * batch size / mean
        v = t * mean / 1000
        found.append((f"ais_bench's throughput {t:g} x mean {mean:g} ms / 1000",
                      round(v) if abs(v - round(v)) <= 1e-6 * v else round(v, 3)))
    return found


def summary_batch_size(summary: dict, path: str | os.PathLike = "") -> int:
    """The batch size every clue of :func:`batch_size_clues` states, or an error listing them."""
    found, where = batch_size_clues(summary, path), path or "summary"
    bad = next((v for _, v in found if not 1 <= v <= 65536), None)
    if bad is not None or len({v for _, v in found}) > 1:
        raise IngestError(f"{where}: batch size " + (f"{bad} is impossible; damaged" if bad is not
                          None else "disagrees between the summary's clues: " + "; ".join(
                              f"{w}: {v}" for w, v in found) + "; copy the summary ais_bench "
                          "wrote again (or rerun it): no throughput can be computed from it"))
    if found:
        return found[0][1]
    raise IngestError(f"{where}: batch size unknown (no --batchsize in its args, "
                      f"no bs<N> in the model or file name); the throughput needs it")


def summary_is_pure(summary: dict) -> bool:
    """Pure inference (no ``--input``): ais_bench fed zero (or random) bytes."""
    return arg_value(summary.get("args") or [], "--input", "-i") is None


def stat(s: dict, key: str, field: str, path: str | os.PathLike = ""):
    """A figure of a summary's ``key`` block (None when absent); anything but a time in
    0..1 hour (a count: an integer >= 0) is an error naming the file: never a figure."""
    v, count = (s[key].get(field) if isinstance(s.get(key), dict) else None), field == "count"
    if v is not None and (isinstance(v, bool) or not isinstance(v, int if count else (int, float))
                          or not 0 <= v <= (1e12 if count else TIME_RANGE_MS[1])):
        raise IngestError(f"{path or 'summary'}: {key}.{field} is {str(v)[:40]!r}, not "
                          f"{'a count' if count else 'a time in ms'}; the summary is damaged: "
                          f"copy it again or rerun ais_bench")
    return None if v is None else float(v)


# One inference takes more than a nanosecond and less than an hour: anything else in a summary
# is damage, never a figure.
TIME_RANGE_MS = (1e-6, 3.6e6)


def _check_times(a: np.ndarray, where: str) -> None:
    low, high = TIME_RANGE_MS
    if a.size and (a.min() < low or a.max() > high):
        raise IngestError(f"{where} holds a time outside {low:g}..{high:g} ms "
                          f"({a.min():g}..{a.max():g}); impossible for one inference: the "
                          f"summary is damaged: rerun ais_bench")


PIPELINE_MEAN = ("ais_bench --pipeline with several threads: mean = total time during which "
                 "at least one inference ran (union of the [start, end] intervals) / inferences")


def compute_times(summary: dict, path: str | os.PathLike = "") -> tuple[list, float | None, str]:
    """(per-inference ms, the mean ais_bench's throughput uses, how it was computed) from a
    summary's ``npu_compute_time_list``.

    ais_bench writes durations (ms) in its usual modes, and ``[start, end]`` pairs with
    ``--pipeline --threads N`` (N > 1), where its mean is the union of the intervals divided by
    their count (``Summary.get_list_info(merge=True)``).  Non-numbers, non-finite or
    non-positive times are errors naming the file: they are never turned into figures."""
    raw = summary.get("npu_compute_time_list") or []
    where = f"{path or 'summary'}: npu_compute_time_list"
    if not isinstance(raw, list):
        raise IngestError(f"{where} is not a list; not an ais_bench summary")
    if not raw:
        mean = stat(summary, "NPU_compute_time", "mean", path)
        if mean is not None:
            _check_times(np.array([mean]), f"{path or 'summary'}: NPU_compute_time.mean")
        return [], mean, "NPU_compute_time.mean"
    pairs = all(isinstance(t, (list, tuple)) for t in raw)
    if pairs:
        if not all(len(t) == 2 for t in raw):
            raise IngestError(f"{where}: expected [start, end] pairs (ais_bench --pipeline)")
        flat = [v for t in raw for v in t]
    else:
        flat = raw
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in flat):
        bad = next(v for v in flat if isinstance(v, bool) or not isinstance(v, (int, float)))
        raise IngestError(f"{where} holds {bad!r}, not a time in ms; the summary is damaged: "
                          f"copy it again from the NPU host")
    a = np.asarray(flat, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise IngestError(f"{where} holds non-finite times (nan or inf); the summary is "
                          f"damaged or the run failed: rerun ais_bench")
    if pairs:
        iv = a.reshape(-1, 2)
        durations = iv[:, 1] - iv[:, 0]
        if np.any(durations < 0):
            raise IngestError(f"{where}: an interval ends before it starts; rerun ais_bench")
        total, reach = 0.0, -np.inf
        for start, end in sorted(iv.tolist()):       # the union: what lies beyond the reach
            total += max(0.0, end - max(start, reach))
            reach = max(reach, end)
        _check_times(np.array([total / len(iv)]), where)
        return durations.tolist(), total / len(iv), PIPELINE_MEAN
    if np.any(a <= 0):
        raise IngestError(f"{where} holds a time <= 0 ms; impossible for an inference: the "
                          f"summary is damaged: rerun ais_bench")
    _check_times(a, where)
    return a.tolist(), float(a.mean()), "mean of npu_compute_time_list"


def write_summary(output: str | os.PathLike, dirname: str, summary: dict) -> Path:
    """Write ``<output>/<dirname>_summary.json`` (ais_bench's keys first, ours after)."""
    missing = [k for k in SUMMARY_KEYS if k not in summary]
    if missing:
        raise ValueError(f"a summary needs ais_bench's keys; missing {', '.join(missing)}")
    return atomic_write_json(summary_path(output, dirname), summary)


def make_summary(args: Sequence[str], compute_ms: Sequence[float], batch_size: int,
                 throughput_value: float | None, filesinfo: dict | None = None) -> dict:
    """A summary with ais_bench's keys for times measured here (H2D/D2H not measured)."""
    return {"filesinfo": filesinfo or {}, "args": list(args),
            "NPU_compute_time": time_stats(compute_ms), "H2D_latency": time_stats([]),
            "D2H_latency": time_stats([]), "throughput": throughput_value,
            "npu_compute_time_list": list(compute_ms), "pid": os.getpid()}
