"""``reports/index.html``: every run folder under an output root, newest first, with what it
found and a link to its report; self-contained like the report, rewritten after each run."""
from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path

from . import records
from .errors import ZooreproError
from .files import atomic_write_text
from .report_core import render
from .run import Run

INDEX = "index.html"


def _status(run: Run) -> str:
    if run.origin != "run":
        return run.origin
    if run.has(records.FailureRecord):
        failure = run.read(records.FailureRecord)
        return f"failed in {failure.notebook}"
    return "finished" if run.finished else "unfinished"


def describe(run: Run) -> dict:
    """One row of the index; a damaged run folder is listed with what is wrong."""
    row = {"name": run.root.name, "href": f"{run.root.name}/report.html",
           "has_report": (run.root / "report.html").is_file(),
           "date": _dt.datetime.fromtimestamp(run.root.stat().st_mtime).strftime("%Y-%m-%d %H:%M"),
           "backends": "", "top1": None, "top5": None, "images": None, "best": None,
           "status": "", "problem": None}
    try:
        row["status"] = _status(run)
        if run.has(records.AccuracyRecord):
            acc = run.read(records.AccuracyRecord).entries
            row["backends"] = ", ".join(acc)
            ok = [e for e in acc.values() if e.status == "ok"]
            if ok:
                row.update(top1=ok[0].top1, top5=ok[0].top5, images=ok[0].images)
        elif run.config is not None:
            row["backends"] = ", ".join(run.config.backends)
        if run.has(records.BenchRecord):
            valid = [r for r in run.read(records.BenchRecord).records
                     if r.get("valid") and r.get("throughput")]
            if valid:
                best = max(valid, key=lambda r: r["throughput"])
                row["best"] = (f"{best['throughput']:,.1f} img/s ({best['backend']}, batch "
                               f"{best['batch_size']})")
    except ZooreproError as exc:
        row["problem"] = str(exc)
    return row


def refresh(output_root: str | os.PathLike) -> Path:
    """Rewrite ``<output_root>/index.html`` from the run folders there."""
    root = Path(output_root)
    runs = [Run(p) for p in root.iterdir() if (p / "records").is_dir()] if root.is_dir() else []
    rows = sorted((describe(r) for r in runs), key=lambda r: r["name"], reverse=True)
    rows.sort(key=lambda r: r["date"], reverse=True)
    html = render("index.html.j2", rows=rows, root=str(root.resolve()))
    return atomic_write_text(root / INDEX, html)
