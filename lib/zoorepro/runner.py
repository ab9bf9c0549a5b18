"""Execute the notebooks with papermill into a run folder and render ``report.html``.

A failing notebook is kept (with its failing cell) in ``<run>/notebooks/``, recorded in
``records/failure.json``, and the report notebook still runs so that a partial
``report.html`` shows what did run under a banner saying what failed.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from . import pipeline, report
from .config import RunConfig

REPORT_NOTEBOOK = pipeline.NOTEBOOKS[-1]


@dataclass
class RunOutcome:
    run_dir: Path
    report: Path | None
    failure: dict | None

    @property
    def ok(self) -> bool:
        return self.failure is None


def _failing_cell(nb_path: Path) -> str:
    import nbformat
    try:
        nb = nbformat.read(str(nb_path), as_version=4)
    except Exception:
        return "?"
    code_index = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        code_index += 1
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return f"{code_index} (code cell; execution count {cell.get('execution_count')})"
    return "?"


def execute(nb_name: str, cfg: RunConfig, run: pipeline.Run, kernel: str | None = None) -> Path:
    import papermill as pm
    src = pipeline.notebooks_dir() / nb_name
    dst = run.notebooks / nb_name
    run.notebooks.mkdir(parents=True, exist_ok=True)
    params = cfg.to_dict()
    logging.getLogger("papermill").setLevel(logging.WARNING)
    pm.execute_notebook(str(src), str(dst), parameters=params, cwd=str(pipeline.notebooks_dir()),
                        kernel_name=kernel or "python3", progress_bar=False, log_output=False)
    return dst


def run_all(cfg: RunConfig, kernel: str | None = None) -> RunOutcome:
    """Execute every notebook in order into a new (or the given) run folder, then render."""
    import papermill as pm
    cfg, run = pipeline.open_run(cfg)
    failure = None
    for nb in pipeline.NOTEBOOKS[:-1]:
        try:
            execute(nb, cfg, run, kernel)
        except pm.PapermillExecutionError as exc:
            failure = {"notebook": nb, "cell": _failing_cell(run.notebooks / nb),
                       "error": f"{exc.ename}: {exc.evalue}"}
            run.write("failure", failure)
            break
    report_path = None
    try:
        execute(REPORT_NOTEBOOK, cfg, run, kernel)
    except pm.PapermillExecutionError as exc:
        if failure is None:
            failure = {"notebook": REPORT_NOTEBOOK, "cell": _failing_cell(run.notebooks / REPORT_NOTEBOOK),
                       "error": f"{exc.ename}: {exc.evalue}"}
            run.write("failure", failure)
    executed = run.notebooks / REPORT_NOTEBOOK
    if executed.is_file():
        report_path = report.render_html(executed, run.root / "report.html")
    return RunOutcome(run.root, report_path, failure)
