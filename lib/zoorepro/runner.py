"""The notebooks: executed with papermill into a run folder, then ``report.html``.

A failing notebook is kept (with its failing cell) in ``<run>/notebooks/``, recorded in
``records/failure.json``, and the report notebook still runs so that a partial
``report.html`` shows what did run under a banner saying what failed.  The notebooks open
their run with :func:`open_from_notebook`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from . import records, report
from .config import RunConfig, from_namespace
from .files import project_root
from .run import Run
from .stages import NOTEBOOKS, REPORT_NOTEBOOK


def notebooks_dir() -> Path:
    return project_root() / "notebooks"


@dataclass
class RunOutcome:
    run_dir: Path
    report: Path | None
    failure: dict | None

    @property
    def ok(self) -> bool:
        return self.failure is None


def failing_cell(nb_path: Path) -> str:
    """Which code cell of an executed notebook failed ("?" when it cannot be told)."""
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


def execute(nb_name: str, run: Run, kernel: str | None = None) -> Path:
    """Execute one notebook into the run folder: the run's config as its parameters (only
    ``run_dir`` for a run without one, e.g. ingested results)."""
    import papermill as pm
    src = notebooks_dir() / nb_name
    dst = run.notebooks / nb_name
    run.notebooks.mkdir(parents=True, exist_ok=True)
    cfg = run.config
    params = cfg.to_dict() if cfg is not None else {"run_dir": str(run.root)}
    logging.getLogger("papermill").setLevel(logging.WARNING)
    pm.execute_notebook(str(src), str(dst), parameters=params, cwd=str(notebooks_dir()),
                        kernel_name=kernel or "python3", progress_bar=False, log_output=False)
    return dst


def _execute_recording(nb: str, run: Run, kernel: str | None) -> dict | None:
    import papermill as pm
    try:
        execute(nb, run, kernel)
    except pm.PapermillExecutionError as exc:
        failure = records.FailureRecord(notebook=nb, cell=failing_cell(run.notebooks / nb),
                                        error=f"{exc.ename}: {exc.evalue}")
        run.write(failure)
        return failure.to_json()
    return None


def render_report(run: Run, kernel: str | None = None, failure: dict | None = None) -> RunOutcome:
    """The report notebook on ``run``, then ``report.html`` (also after a failure)."""
    failed = _execute_recording(REPORT_NOTEBOOK, run, kernel)
    failure = failure or failed
    executed = run.notebooks / REPORT_NOTEBOOK
    path = report.render_html(executed, run.root / "report.html") if executed.is_file() else None
    return RunOutcome(run.root, path, failure)


def run_all(cfg: RunConfig, kernel: str | None = None) -> RunOutcome:
    """Execute every notebook in order into a new (or the given) run folder, then render."""
    run = Run.create(cfg)
    failure = None
    for nb in NOTEBOOKS[:-1]:
        failure = _execute_recording(nb, run, kernel)
        if failure:
            break
    return render_report(run, kernel, failure)


def open_from_notebook(namespace) -> Run:
    """A notebook's first step: its parameters -> the run.  A ``run_dir`` holding results
    ingested from an NPU host opens as it is (it has no config); otherwise the parameters
    are validated into a config and the run folder is created or continued."""
    run_dir = namespace.get("run_dir")
    if run_dir and (Path(run_dir) / "records" / "ingest.json").is_file():
        return Run.open(run_dir)
    return Run.create(from_namespace(namespace))
