"""``reports/index.html``: every run folder under an output root, newest first, with what it
found and a link to its report; self-contained like the report, rewritten after each run."""
from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path

from zoorepro.run import records
from zoorepro.errors import ZooreproError
from zoorepro.files import atomic_write_text
from zoorepro.report.core import render, urlseg
from zoorepro.run.folder import Run, check_record_file, check_records_dir

INDEX = "index.html"


def _status(run: Run) -> str:
    if run.origin != "run":
        return run.origin
    if run.has(records.FailureRecord):
        failure = run.read(records.FailureRecord)
        return f"failed in {failure.notebook}"
    return "finished" if run.finished else "unfinished"


def href(name: str) -> str:
    """A link to ``<name>/report.html`` beside the index: the name quoted as one path segment
    (``:`` ``/`` ``#`` ``?`` percent-encoded) and ``./`` in front, so no name can make it a
    URL with a scheme (``javascript:``) or another folder."""
    return f"./{urlseg(name)}/report.html"


def _reason(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, ZooreproError) else f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 600 else text[:596] + " ..."


def describe(run: Run) -> dict:
    """One row of the index.  A damaged run folder (a record that does not read, a
    params.yaml that does not parse, anything else that fails) is listed as damaged with the
    reason: it never stops the index of the other runs."""
    name = run.root.name
    row = {"name": name, "href": href(name), "has_report": False, "date": "", "recipe": "",
           "backends": "", "top1": None, "top5": None, "images": None, "best": None,
           "status": "", "problem": None}
    try:
        row["has_report"] = (run.root / "report.html").is_file()
        row["date"] = _dt.datetime.fromtimestamp(run.root.stat().st_mtime).strftime(
            "%Y-%m-%d %H:%M")
        check_records_dir(run.root)  # records -> . or a loop: damage, never read as a run
        for name in records.ALL:     # a record that is a folder or a FIFO: damage, read or not
            if run.has(name):
                check_record_file(run.record_path(name), name)
        row["status"] = _status(run)
        _figures(run, row)
    except Exception as exc:   # noqa: BLE001 - one damaged folder never stops the index
        row.update(status="damaged", problem=_reason(exc), backends="", top1=None, top5=None,
                   images=None, best=None)
    return row


def _figures(run: Run, row: dict) -> None:
    if run.has(records.RecipeRecord):     # the record only: a finished run is listed as it was
        kept = run.read(records.RecipeRecord)
        row["recipe"] = f"{kept.name} ({kept.sha256[:8]})"
    if run.has(records.AccuracyRecord):
        acc = run.read(records.AccuracyRecord).entries
        row["backends"] = ", ".join(acc)
        ok = [e for e in acc.values() if e.status == "ok"]
        if ok:
            row.update(top1=ok[0].top1, top5=ok[0].top5, images=ok[0].images)
    elif run.config is not None:
        row["backends"] = ", ".join(run.config.backends)
    if run.has(records.BenchRecord):
        valid = [r for r in run.read(records.BenchRecord).records if r.valid and r.throughput]
        if valid:
            best = max(valid, key=lambda r: r.throughput)
            row["best"] = (f"{best.throughput:,.1f} img/s ({best.backend}, batch "
                           f"{best.batch_size})")


def _run_folders(root: Path) -> list[Run]:
    """The folders under ``root`` with a ``records/`` folder or a ``records`` link (listed as
    damaged: a loop, or one to ``.``); one that cannot even be looked at is listed too (as
    damaged), never an error."""
    out = []
    for p in sorted(root.iterdir()) if root.is_dir() else []:
        try:
            if (p / "records").is_dir() or (p / "records").is_symlink():
                out.append(Run(p))
        except OSError:
            out.append(Run(p))
    return out


def refresh(output_root: str | os.PathLike) -> Path:
    """Rewrite ``<output_root>/index.html`` from the run folders there.  Damage in any run
    folder is shown in its row; only failing to write the index itself is an error."""
    root = Path(output_root)
    rows = sorted((describe(r) for r in _run_folders(root)), key=lambda r: r["name"],
                  reverse=True)
    rows.sort(key=lambda r: r["date"], reverse=True)
    html = render("index.html.j2", rows=rows, root=str(root.resolve()))
    return atomic_write_text(root / INDEX, html)
