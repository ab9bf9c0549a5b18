"""Sharded runs: preprocessing and the accuracy inference of one run split into contiguous
shards in ais_bench's natural order, each shard a Dask task writing into the run's own
folders (``shards`` > 1; ``scheduler``: an existing cluster, else a ``LocalCluster`` here).

What makes the result identical to the unsharded run's: preprocessing is planned, and its
outcomes tallied and recorded, by :func:`zoorepro.recipe.preprocess.preprocess_folder` exactly as
unsharded (only the decoding and writing run in the tasks); an inference shard is a whole
number of batches, so every batch holds the images it holds unsharded and only the last one
is padded; each shard runs the backend's own portable accuracy run over its files, and the
summary is merged here.  Every file is written atomically, so a worker that dies leaves no
half-written file under a final name; the scheduler starts its shard again elsewhere and the
shard rewrites its files with the same bytes.

Tasks get paths and small records, never arrays: each returns its outcomes (names and
statuses) or its timings and file listing.  Each task's memory is bounded by construction
(one image, or one batch per stream, at a time) and its peak is recorded in
``records/shards.json`` (:class:`zoorepro.run.records.ShardsRecord`) with the cluster, its
workers, and where, how long and how often each shard ran.
"""
from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

from zoorepro.scale import cluster
from zoorepro.run import records
from zoorepro.ascend.aisformat import list_inputs, make_summary, result_dirname, write_summary
from zoorepro.backends.base import Backend
from zoorepro.errors import ResourceError
from zoorepro.host import physical_cores, progress_bar
from zoorepro.run.folder import Run

# Tests only: "STAGE:SHARD:AFTER:MARKER[;...]" kills the worker process running shard SHARD
# of STAGE (preprocess or infer) after AFTER images or inference calls, once (MARKER is made).
FAULT_ENV = "ZOOREPRO_SHARD_FAULT"

SHARDED_DEFINITION = (
    "ais_bench's formula per stream of each shard, summed over a shard's streams; the mean "
    "over shards, times the shards that ran at the same time (min(shards, worker threads)), "
    "as ais_bench sums its devices in 'summary throughput'; end to end: images / wall time of "
    "the sharded accuracy run (Dask scheduling and each shard's model loading included)")


def split(n: int, parts: int, align: int = 1) -> list[tuple[int, int]]:
    """Contiguous ``[start, stop)`` ranges covering ``range(n)`` in order, as even as
    possible in whole units of ``align`` items (a batch), none empty."""
    units = -(-n // max(1, align))
    parts = max(1, min(parts, units))
    cuts = [min(n, units * k // parts * align) for k in range(parts + 1)]
    return [(a, b) for a, b in zip(cuts, cuts[1:]) if a < b]


def _connect(run: Run, tasks: int):
    cfg = run.config
    return cluster.connect(cfg.scheduler, min(tasks, physical_cores()),
                           what=f"shards: {cfg.shards} (in {run.root / 'params.yaml'})")


def _save(run: Run, stage: str, cl: dict, facts: list, attempts: dict, keys: list,
          images: int, seconds: float) -> records.ShardsRecord:
    """Add ``stage`` to ``records/shards.json`` (the cluster as it was for this stage)."""
    for fact, key in zip(facts, keys):
        fact["attempts"] = attempts.get(key, 1)
    old = run.read(records.ShardsRecord) if run.has(records.ShardsRecord) else None
    record = records.ShardsRecord(shards=run.config.shards, scheduler=cl["scheduler"],
                                  cluster=cl["cluster"], workers=cl["workers"],
                                  worker_threads=cl["worker_threads"], hosts=cl["hosts"],
                                  stages={**(old.stages if old else {}),
                                          stage: {"images": images, "seconds": round(seconds, 3),
                                                  "tasks": facts}})
    run.write(record)
    return record


def _fault(stage: str, index: int):
    for item in os.environ.get(FAULT_ENV, "").split(";"):
        spec = item.split(":", 3)
        if len(spec) == 4 and spec[:2] == [stage, str(index)] and not os.path.exists(spec[3]):
            return int(spec[2]), spec[3]
    return None


def _maybe_die(fault, done: int) -> None:
    if fault and done >= fault[0]:
        Path(fault[1]).write_text(f"killed pid {os.getpid()} after {done}\n")
        os.kill(os.getpid(), signal.SIGKILL)


def _fact(index: int, first: int, images: int, t0: float, peak, threads: int = 1) -> dict:
    return {"shard": index, "first": first, "last": first + images - 1, "images": images,
            **cluster.here(), "threads": threads, "seconds": round(time.perf_counter() - t0, 3),
            "peak_rss_mib": round(peak.peak_mib, 1), "start_rss_mib": round(peak.start_mib, 1)}


# ------------------------------------------------------------------ preprocessing
def _preprocess_task(jobs: list, work, index: int, first: int) -> tuple[list, dict]:
    """One shard: ``work`` (decode, crop, atomic write) over its jobs, one image at a time."""
    t0, fault, outcomes = time.perf_counter(), _fault("preprocess", index), []
    with cluster.PeakMemory() as peak:
        for job in jobs:
            outcomes.append(work(job))
            if outcomes[-1][1] == "unwritable":     # the disk, not the image: stop here
                break
            _maybe_die(fault, len(outcomes))
    return outcomes, _fact(index, first, len(jobs), t0, peak)


def preprocess_executor(run: Run):
    """The ``executor`` of :func:`zoorepro.recipe.preprocess.preprocess_folder` for this run: its
    jobs in ``shards`` contiguous Dask tasks, outcomes yielded in the jobs' order."""
    def execute(jobs: list, work):
        if not jobs:
            return
        ranges = split(len(jobs), run.config.shards)
        t0 = time.perf_counter()
        with _connect(run, len(ranges)) as cl:
            distributed = cluster.require("shards")
            token = uuid.uuid4().hex[:8]
            keys = [f"zoorepro-preprocess-{token}-shard{i}" for i in range(len(ranges))]
            futures = [cl.client.submit(_preprocess_task, jobs[a:b], work, i, a, key=k,
                                        pure=False)
                       for i, ((a, b), k) in enumerate(zip(ranges, keys))]
            facts = []
            for i, ((a, b), fut) in enumerate(zip(ranges, futures)):
                try:
                    outcomes, fact = fut.result()
                except distributed.KilledWorker as exc:
                    yield ("", "died", "", f"the Dask workers running shard {i} (images "
                           f"{a + 1}-{b}) died again and again ({exc})")
                    return
                facts.append(fact)
                yield from outcomes
            attempts, desc = cl.attempts(keys), cl.describe()
        _remove_parts(Path(jobs[0][1]).parent, {Path(job[1]).name for job in jobs})
        _save(run, "preprocess", desc, facts, attempts, keys, len(jobs), time.perf_counter() - t0)
    return execute


# ------------------------------------------------------------------ inference
class _Dying:
    """Tests: a backend whose worker process is killed after some inference calls."""

    def __init__(self, inner, fault):
        self._inner, self._fault, self._calls = inner, fault, 0

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def replicas(self, n):
        return [self]

    def infer(self, batch):
        self._calls += 1
        _maybe_die(self._fault, self._calls)
        return self._inner.infer(batch)

    run_accuracy = Backend.run_accuracy


def _infer_task(name: str, arts, opts: dict, job, index: int, first: int,
                threads_by_host: dict) -> dict:
    """One shard: a backend of its own (its host's share of the cores) runs the portable
    accuracy run over the shard's files; returns its timings and file listing."""
    from zoorepro import backends
    t0, threads = time.perf_counter(), cluster.threads_here(threads_by_host)
    with cluster.PeakMemory() as peak:
        backend = backends.create(name, arts, opts["device"], threads,
                                  device_id=opts["device_id"], precision=opts["precision"])
        try:
            fault = _fault("infer", index)
            summary = (_Dying(backend, fault) if fault else backend).run_accuracy(job)
        finally:
            backend.close()
    keep = ("npu_compute_time_list", "filesinfo", "throughput", "streams", "stream_threads",
            "stream_throughputs", "backend", "device", "backend_info")
    return {**{k: summary.get(k) for k in keep},
            "fact": _fact(index, first, len(job.files), t0, peak, threads)}


def run_accuracy(run: Run, name: str, backend, job, arts) -> dict:
    """The accuracy run of ``backend`` in ``shards`` Dask tasks; returns a summary as
    ``backend.run_accuracy(job)`` does (written beside the results folder, as ais_bench
    does), plus ``shard_notes`` for the infer record.  A backend with its own tools
    (ais_bench) runs unsharded."""
    from dataclasses import replace
    cfg = run.config
    if cfg.shards <= 1 or type(backend).run_accuracy is not Backend.run_accuracy:
        summary = backend.run_accuracy(job)
        if cfg.shards > 1:
            summary["shard_notes"] = [f"not sharded: {name} runs the accuracy run with its own "
                                      f"tools (shards {cfg.shards} applied to preprocessing)"]
        return summary
    files, bs = list(job.files), job.batch_size
    dirname = result_dirname(bs)
    (Path(job.output) / dirname).mkdir(parents=True, exist_ok=True)
    ranges = split(len(files), cfg.shards, align=bs)
    opts = {"device": cfg.device, "device_id": cfg.device_id, "precision": cfg.precision}
    t0 = time.perf_counter()
    with _connect(run, len(ranges)) as cl:
        distributed = cluster.require("shards")
        token = uuid.uuid4().hex[:8]
        keys = [f"zoorepro-infer-{name}-{token}-shard{i}" for i in range(len(ranges))]
        futures = [cl.client.submit(_infer_task, name, arts, opts,
                                    replace(job, files=files[a:b], progress=False), i, a,
                                    cl.threads_by_host(), key=k, pure=False)
                   for i, ((a, b), k) in enumerate(zip(ranges, keys))]
        bar = progress_bar(len(files), f"{name} bs{bs}, {len(ranges)} shards") if job.progress \
            else None
        try:
            sizes = {k: b - a for k, (a, b) in zip(keys, ranges)}
            for fut in distributed.as_completed(futures, loop=cl.client.loop):
                if bar is not None and fut.status == "finished":
                    bar.update(sizes[fut.key])
            parts = [f.result() for f in futures]
        except distributed.KilledWorker as exc:
            raise ResourceError(
                f"{name}: the Dask workers running an accuracy shard died again and again "
                f"({exc}); the out-of-memory killer is the usual cause: set a smaller "
                f"accuracy_batch_size or fewer infer_streams, or give the workers more "
                f"memory") from None
        finally:
            if bar is not None:
                bar.close()
        attempts, desc = cl.attempts(keys), cl.describe()
    wall = time.perf_counter() - t0
    summary = _merge(job, files, parts, desc, wall)
    write_summary(job.output, dirname, summary)
    _remove_parts(Path(job.output) / dirname)
    facts = [p["fact"] for p in parts]
    _save(run, f"infer/{name}", desc, facts, attempts, keys, len(files), wall)
    summary["shard_notes"] = [note(run, f"infer/{name}")]
    return summary


def _merge(job, files: list, parts: list, desc: dict, wall: float) -> dict:
    """One summary with ais_bench's keys from the shards' (batches renumbered in order)."""
    import numpy as np
    from zoorepro.backends import bench
    bs, dirname = job.batch_size, result_dirname(job.batch_size)
    compute_ms = [t for p in parts for t in p["npu_compute_time_list"] or []]
    filesinfo, k = {}, 0
    for p in parts:
        for i in sorted(p["filesinfo"], key=int):
            filesinfo[k] = p["filesinfo"][i]
            k += 1
    shard_tps = [p["throughput"] for p in parts if p["throughput"]]
    at_once = min(len(parts), max(1, desc["worker_threads"]))
    tp = float(np.mean(shard_tps)) * at_once if shard_tps else None
    inputs, foreign = list_inputs(job.input_dir)
    chosen = {Path(f).name for f in files}
    others = [f.name for f in inputs if f.name not in chosen]
    args = ["--model", parts[0]["backend"], "--batchsize", str(bs), "--input",
            str(job.input_dir), "--output", str(job.output), "--output_dirname", dirname,
            "--outfmt", job.outfmt, "--warmup_count", str(job.warmup)]
    summary = make_summary(args, compute_ms, bs, tp, filesinfo)
    summary.update({
        "backend": parts[0]["backend"], "device": parts[0]["device"],
        "backend_info": parts[0]["backend_info"],
        "streams": sum(p["streams"] or 1 for p in parts),
        "stream_threads": [t for p in parts for t in p["stream_threads"] or []],
        "stream_throughputs": [t for p in parts for t in p["stream_throughputs"] or []],
        "batchsize": bs, "images": len(files), "padding": (-len(files)) % bs,
        "foreign_files": foreign, "other_inputs": len(others),
        "other_inputs_examples": others[:10], "wall_s": wall,
        "e2e_throughput": len(files) / wall if wall > 0 else None,
        "throughput_definition": SHARDED_DEFINITION, "e2e_definition": bench.E2E_DEFINITION,
        "shards": {**desc, "tasks": [p["fact"] for p in parts]},
    })
    return summary


def _remove_parts(folder: Path, names: set | None = None) -> None:
    """Temporary files (``.<name>.<pid>.<n>.part``) a killed shard left, once every shard is
    done (no writer is left); ``names``: only those of these files (a shared ``bin_dir``)."""
    for e in os.scandir(folder):
        if e.name.startswith(".") and e.name.endswith(".part") and \
                (names is None or e.name[1:].rsplit(".", 3)[0] in names):
            Path(e.path).unlink(missing_ok=True)


def note(run: Run, stage: str) -> str:
    """One line for the infer record: scheduler, workers, shards, peak memory per task."""
    if not run.has(records.ShardsRecord):
        return ""
    rec = run.read(records.ShardsRecord)
    parts = []
    for name, st in rec.stages.items():
        if name in ("preprocess", stage):
            tasks = st["tasks"]
            retried = sum(t.get("attempts", 1) > 1 for t in tasks)
            parts.append(f"{name.split('/')[0]}: {len(tasks)} shard(s) in {st['seconds']:.1f} s, "
                         f"peak memory per task up to "
                         f"{max(t['peak_rss_mib'] for t in tasks):.0f} MiB"
                         + (f", {retried} retried after a lost worker" if retried else ""))
    return (f"sharded run: shards {rec.shards} on {rec.cluster} (scheduler {rec.scheduler}); "
            + "; ".join(parts) + " (records/shards.json)")


class Shards:
    """The stages' executor for a sharded run (:class:`zoorepro.run.stages.Executor`): its
    preprocessing and accuracy inference as Dask tasks."""

    def __init__(self, run: Run):
        self.run = run

    def preprocess_executor(self):
        return preprocess_executor(self.run)

    def run_accuracy(self, name: str, backend, job, arts) -> dict:
        return run_accuracy(self.run, name, backend, job, arts)


def executor(run: Run) -> Shards | None:
    """What the stages get as ``executor``: :class:`Shards` when the run's params ask for
    shards (``shards`` > 1), else None (the work runs in this process)."""
    return Shards(run) if run.config is not None and run.config.shards > 1 else None
