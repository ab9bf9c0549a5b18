"""``zoorepro matrix``: a grid of runs (backends x precisions x batch sizes, ...) executed as
Dask tasks, then one comparison report of them all and an index.

    zoorepro matrix params/demo.yaml --grid backends=[onnxruntime],[torch] \\
        --grid precision=fp32,fp16 [-p KEY VALUE]... [--scheduler ADDRESS] [--workers N]

A matrix is a folder of ordinary run folders: ``<output_root>/<name>-matrix-<time>/`` holds
``<name>-<grid values>/`` for each run (each made by :func:`zoorepro.runner.run_all`, its
notebooks and report as ``zoorepro run`` makes them), ``compare-<time>/report.html`` (all
runs), ``index.html`` and ``matrix.json`` (the grid, each run's status, time, worker and
peak memory).  A run that fails keeps its partial report; the others go on.

Each run is one Dask task on a worker *process* of one thread: a run executes its notebooks
in Jupyter kernels (child processes of the worker, each with its own environment: no
progress bars, the matrix prints one line per stage instead), so runs never share one.  Without
``--scheduler`` a ``LocalCluster`` sized to this machine runs them (one worker per physical
core, fewer when memory or the number of runs is smaller); a run whose ``threads`` and
``workers`` are 0 (auto) gets its host's physical cores divided by the runs that host runs
at the same time, so concurrent runs do not oversubscribe the cores.  Throughput figures of
runs that shared a machine are measured on a shared machine: for clean sweeps, use
``--workers 1`` or one worker per node.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from zoorepro import config
from zoorepro.addresses import check_scheduler
from zoorepro.errors import ConfigError
from zoorepro.names import MAX_LEN, name_problem

log = logging.getLogger(__name__)

TOPIC = "zoorepro-matrix"
RUN_BYTES = 5 << 29            # memory one run may take (50,000 images: ~2.1 GiB), 2.5 GiB
NOT_GRIDDED = ("name", "output_root", "run_dir", "scheduler")   # the matrix sets these


@dataclass
class Planned:
    label: str                 # "backends-torch_precision-fp16"
    values: dict               # the grid's values for this run
    cfg: config.RunConfig
    name: str = ""             # its run folder's name: run_name(cfg.name, label)


@dataclass
class MatrixOutcome:
    folder: Path
    runs: list = field(default_factory=list)       # one dict per run (matrix.json "runs")
    compare: Path | None = None

    @property
    def ok(self) -> bool:
        return all(r["status"] == "finished" for r in self.runs)


# ------------------------------------------------------------------ the grid
def split_values(text: str) -> list[str]:
    """``[onnxruntime],[torch]`` -> ``["[onnxruntime]", "[torch]"]``: commas outside
    brackets, braces and quotes separate values."""
    out, depth, quote, cur = [], 0, "", ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(cur)
            cur = ""
            continue
        cur += ch
    out.append(cur)
    return [v.strip() for v in out]


class GridValues(list):
    """One key's values as read (a list), and ``texts``: each as it was given (``1e-1``)."""
    texts: list


def parse_grid(items) -> list[tuple[str, list]]:
    """``KEY=VALUE[,VALUE...]`` items -> [(key, [values])], each VALUE read as YAML as
    ``-p`` reads it; every problem reported at once."""
    grid, problems = [], []
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not text.strip():
            problems.append(f"--grid {item!r}: expected KEY=VALUE[,VALUE...], e.g. "
                            f"precision=fp32,fp16 or backends=[onnxruntime],[torch]")
        elif key not in config.FIELD_NAMES or key in NOT_GRIDDED:
            problems.append(f"--grid {key}: not a parameter a matrix can vary (any of "
                            f"{', '.join(k for k in config.FIELD_NAMES if k not in NOT_GRIDDED)})")
        elif key in [k for k, _ in grid]:
            problems.append(f"--grid {key}: given twice; list all its values in one --grid")
        else:
            values = GridValues(config.parse_override(key, v)[1] for v in split_values(text))
            values.texts = split_values(text)
            if "" in values.texts:
                problems.append(f"--grid {item!r}: an empty value")
            grid.append((key, values))
    if problems:
        raise ConfigError("the matrix's grid: " + "; ".join(problems))
    if not grid:
        raise ConfigError("give at least one --grid KEY=VALUE[,VALUE...], e.g. "
                          "--grid backends=[onnxruntime],[torch]")
    return grid


def _digest(text: str) -> str:
    """Eight hex digits of ``text``'s SHA-256: what tells shortened names apart."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def label(values: dict) -> str:
    """A folder-name part for a run's grid values: ``backends-onnxruntime+torch_precision-fp16``;
    characters a name may not hold become ``-``, and then the digest of the values as given
    follows, so that values that differ only there still differ."""
    def show(v):
        return "+".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)
    text = "_".join(f"{k}-{show(v)}" for k, v in values.items())
    safe = re.sub(r"[^A-Za-z0-9_.+-]", "-", text)
    return safe if safe == text else f"{safe}-{_digest(text)}"


def run_name(base: str, part: str) -> str:
    """The run folder's name ``<base>-<label>``; past :data:`names.MAX_LEN` characters it is
    cut and ends in the digest of the whole name, the same every time."""
    full = f"{base}-{part}"
    if len(full) <= MAX_LEN:
        return full
    digest = _digest(full)
    return f"{full[:MAX_LEN - len(digest) - 1]}-{digest}"


def _names_problems(out: list[Planned]) -> list[str]:
    """Every final folder name checked by the one name validator, and no two the same."""
    problems = [f"run {p.label}: {q}" for p in out
                if (q := name_problem(p.name, "its folder name"))]
    by_name: dict = {}
    for p in out:
        by_name.setdefault(p.name, []).append(p.label)
    for name, labels in by_name.items():
        if len(labels) > 1:
            problems.append(f"runs {', '.join(labels)}: the same folder name {name!r} (names "
                            f"are cut to {MAX_LEN} characters): each run needs its own folder; "
                            f"give a shorter name (-p name ...) or fewer grid values")
    return problems


def plan(params, grid: list, overrides: dict | None = None) -> list[Planned]:
    """Every run of the grid (the product of its values, in order), each config loaded and
    validated before any run starts: a bad value is one ConfigError naming the run, and two
    grid points that validate to the same parameters (``1e-1`` and ``0.1``, ``txt`` and
    ``TXT``) are one naming both.  Labels show the validated values (``max_images-1``)."""
    out, problems, seen = [], [], {}
    keys = [k for k, _ in grid]
    texts = [getattr(v, "texts", None) or [str(x) for x in v] for _, v in grid]
    for idx in itertools.product(*[range(len(v)) for _, v in grid]):
        values = {k: grid[i][1][j] for i, (k, j) in enumerate(zip(keys, idx))}
        given = ", ".join(f"{k}={texts[i][j]}" for i, (k, j) in enumerate(zip(keys, idx)))
        try:
            cfg = config.load(params, {**(overrides or {}), **values})
        except ConfigError as exc:
            problems.append(f"run {label(values)}: {exc}")
            continue
        part = label({k: v if k in config.PATH_KEYS else getattr(cfg, k)
                      for k, v in values.items()})
        same = json.dumps(cfg.to_dict(), sort_keys=True, default=str)
        if same in seen:
            problems.append(f"run {part}: the same run twice in the grid ({seen[same]} and "
                            f"{given} read as the same parameters); list each value once")
            continue
        seen[same] = given
        out.append(Planned(part, values, cfg, run_name(cfg.name, part)))
    problems += _names_problems(out) if not problems else []
    if problems:
        raise ConfigError("\n".join(problems))
    return out


def local_size(runs: int, workers: int = 0) -> int:
    """Worker processes of the default LocalCluster: ``workers``, else one per physical
    core, at most one per run and per RUN_BYTES of available memory."""
    from zoorepro.host import available_memory, physical_cores
    if workers:
        return workers
    free = available_memory()
    by_memory = max(1, free // RUN_BYTES) if free else physical_cores()
    return max(1, min(runs, physical_cores(), by_memory))


# ------------------------------------------------------------------ one run, in a worker
def _run_task(planned: Planned, threads_by_host: dict) -> dict:
    """Execute one run (its notebooks, in kernels) in this worker; returns its row."""
    from zoorepro.scale import cluster
    from zoorepro import runner
    from zoorepro.run.folder import Run
    threads = cluster.threads_here(threads_by_host)
    cfg = planned.cfg
    sized = {k: threads for k in ("threads", "workers") if getattr(cfg, k) == 0}
    cfg = cfg.replace(**sized) if sized else cfg

    def say(msg: str) -> None:
        cluster.emit(TOPIC, {"run": planned.label, "msg": msg})
    t0 = time.perf_counter()
    root = Path(cfg.run_dir)
    with cluster.PeakMemory(children=True, every=0.2) as peak:
        if (root / "records").is_dir() and not Run(root).finished:   # a retry after a lost worker
            outcome = runner.run_all(resume=Run.open(root), say=say, progress=False)
        else:       # no progress bars from the kernels: the matrix prints their lines
            outcome = runner.run_all(cfg, say=say, progress=False)
    return {"status": "finished" if outcome.ok else "failed", "failure": outcome.failure,
            "report": str(outcome.report) if outcome.report else None,
            "seconds": round(time.perf_counter() - t0, 1), **cluster.here(),
            "threads": cfg.threads, "peak_rss_mib": round(peak.peak_mib, 1)}


# ------------------------------------------------------------------ the matrix
def run_matrix(params, grid: list, overrides: dict | None = None, scheduler: str = "",
               workers: int = 0, say: Callable[[str], None] = log.info) -> MatrixOutcome:
    """Plan, run every run as a Dask task (each its own row, failures kept), then compare
    them all and write the index and ``matrix.json``; returns the matrix folder.  ``say``
    gets the progress lines (default: this module's logger at INFO)."""
    from zoorepro.scale import cluster
    from zoorepro.files import atomic_write_json
    from zoorepro.run.folder import new_run_dir
    if scheduler and workers:
        raise ConfigError("--workers sizes the LocalCluster made here; with --scheduler the "
                          "cluster's own workers run the matrix: give one of them")
    check_scheduler(scheduler, "--scheduler")           # before any folder or worker
    planned = plan(params, grid, overrides)
    clash = [p.label for p in planned if p.cfg.shards > 1 and p.cfg.scheduler
             and p.cfg.scheduler == scheduler]
    if clash:
        raise ConfigError(f"run(s) {', '.join(clash)}: sharded on the matrix's own scheduler "
                          f"{scheduler}: a run would wait for shards behind the runs that hold "
                          f"every worker; give the runs another scheduler, or shards 1")
    for address in dict.fromkeys(p.cfg.scheduler for p in planned if p.cfg.shards > 1):
        check_scheduler(address, "the runs' scheduler")
    cluster.require("zoorepro matrix")
    base = planned[0].cfg
    folder = new_run_dir(base.output_root, f"{base.name}-matrix")
    for p in planned:
        p.cfg = p.cfg.replace(output_root=str(folder), name=p.name, run_dir=str(folder / p.name))
    say(f"matrix folder: {folder} ({len(planned)} runs)")
    t0 = time.perf_counter()
    rows = {p.label: {"label": p.label, "values": p.values, "run_dir": p.cfg.run_dir,
                      "status": "not started"} for p in planned}
    with cluster.connect(scheduler, local_size(len(planned), workers),
                         what="zoorepro matrix") as cl:
        desc = cl.describe()
        say(f"cluster: {desc['cluster']} (scheduler {cl.scheduler})"
            + (f"; dashboard {cl.dashboard}" if cl.dashboard else ""))
        cl.client.subscribe_topic(TOPIC, lambda ev: say(f"[{ev[1]['run']}] {ev[1]['msg']}"))
        distributed = cluster.require("zoorepro matrix")
        futures = {cl.client.submit(_run_task, p, cl.threads_by_host(), pure=False,
                                    key=f"zoorepro-run-{p.label}-{folder.name}"): p.label
                   for p in planned}
        done = 0
        for fut in distributed.as_completed(futures, loop=cl.client.loop):
            name, done = futures[fut], done + 1
            try:
                rows[name].update(fut.result())
            except Exception as exc:   # noqa: BLE001 - this run's error; the others go on
                rows[name].update(status="error", failure={"error": f"{type(exc).__name__}: {exc}"})
            say(f"run {done}/{len(planned)} {name}: {_outcome_text(rows[name])}")
        cl.client.unsubscribe_topic(TOPIC)
    outcome = MatrixOutcome(folder, [rows[p.label] for p in planned])
    outcome.compare = _compare(outcome, say)
    from zoorepro.report import index
    index.refresh(folder)
    atomic_write_json(folder / "matrix.json", {
        "params": str(Path(params).resolve()), "grid": [[k, v] for k, v in grid],
        "overrides": overrides or {}, **desc, "seconds": round(time.perf_counter() - t0, 1),
        "compare": str(outcome.compare) if outcome.compare else None,
        "index": str(folder / index.INDEX), "runs": outcome.runs,
        "note": "runs that shared a host measured their throughput on a shared machine"})
    return outcome


def _outcome_text(row: dict) -> str:
    f = row.get("failure") or {}
    if row["status"] == "finished":
        return f"finished in {row['seconds']:.0f} s"
    if row["status"] == "failed":
        return (f"FAILED in {f.get('notebook')} (cell {f.get('cell')}): {f.get('error')}; "
                f"its partial report is kept")
    return f"ERROR: {f.get('error')}"


def _compare(outcome: MatrixOutcome, say) -> Path | None:
    """One comparison report of every run that left a run folder with records."""
    from zoorepro.report import compare
    from zoorepro.errors import ZooreproError
    dirs = [r["run_dir"] for r in outcome.runs if (Path(r["run_dir"]) / "records").is_dir()]
    if len(dirs) < 2:
        say(f"compare: {len(dirs)} run folder(s) with records, nothing to compare")
        return None
    try:
        folder = compare.compare(dirs, outcome.folder, name="compare")
    except ZooreproError as exc:
        say(f"compare: not written: {exc}")
        return None
    say(f"compare: {folder / 'report.html'}")
    return folder


def summary_lines(outcome: MatrixOutcome) -> list[str]:
    """One line per run: its grid values, status, top-1/top-5 of its headline backend."""
    from zoorepro.run.folder import Run
    from zoorepro.run import records
    lines = []
    for r in outcome.runs:
        acc = ""
        run = Run(r["run_dir"])
        if run.has(records.AccuracyRecord):
            ok = [e for e in run.read(records.AccuracyRecord).entries.values() if e.status == "ok"]
            if ok:
                acc = f"top-1 {ok[0].top1:.2f} %, top-5 {ok[0].top5:.2f} %; "
        lines.append(f"  {r['label']}: {acc}{_outcome_text(r)}")
    return lines


# ------------------------------------------------------------------ command line
def add_matrix_parser(sub) -> None:
    """``zoorepro matrix`` on the CLI's subparsers."""
    m = sub.add_parser("matrix", help="a grid of runs as Dask tasks, then one comparison "
                                      "report of them all and an index")
    m.add_argument("params", help="params YAML, e.g. params/demo.yaml")
    m.add_argument("--grid", action="append", metavar="KEY=VALUE[,VALUE...]", required=True,
                   help="vary one parameter (each VALUE read as YAML, e.g. precision=fp32,fp16 "
                        "or backends=[onnxruntime],[torch]); several --grid make the product")
    m.add_argument("-p", "--param", nargs=2, action="append", metavar=("KEY", "VALUE"),
                   help="override one parameter for every run (VALUE is read as YAML)")
    m.add_argument("--scheduler", default="", metavar="ADDRESS",
                   help="a running Dask scheduler (tcp://HOST:8786); default: a LocalCluster "
                        "sized to this machine")
    m.add_argument("--workers", type=int, default=0, metavar="N",
                   help="worker processes of the LocalCluster (default: by cores and memory)")
    m.set_defaults(func=cmd_matrix)


def cmd_matrix(args) -> int:
    """Run the matrix; progress to the logger (the CLI: stderr, none with ``-q``), the matrix
    folder as the last line of stdout.  Exit 0 when every run finished, 1 when one failed
    (its partial report is kept)."""
    if args.workers < 0:
        raise ConfigError(f"--workers: must be >= 1, got {args.workers}")
    overrides = dict(config.parse_override(k, v) for k, v in (args.param or []))
    outcome = run_matrix(args.params, parse_grid(args.grid), overrides, args.scheduler,
                         args.workers)
    for line in summary_lines(outcome):
        log.info(line)
    if outcome.compare:
        log.info(f"compare report: {outcome.compare / 'report.html'}")
    print(outcome.folder)
    return 0 if outcome.ok else 1


__all__ = ["MatrixOutcome", "add_matrix_parser", "cmd_matrix", "parse_grid", "plan",
           "run_matrix", "split_values"]
