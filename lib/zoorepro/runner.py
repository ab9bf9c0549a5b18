"""The notebooks: executed with papermill into a run folder, then ``report.html``.

Each notebook gets one parameter, ``run_dir``: the run folder, whose ``params.yaml`` holds
the frozen config.  A failing notebook, or a kernel that dies, is kept (with its failing cell)
in ``<run>/notebooks/`` and recorded in ``records/failure.json``; the report notebook still
runs, so a partial ``report.html`` shows what did run under a banner saying what failed.
Notebooks open their run with :func:`open_from_notebook`, on every route (this module,
papermill's own CLI, JupyterLab).
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import records, report
from .config import RunConfig, from_namespace
from .errors import DataError
from .run import Run
from .stages import REPORT_NOTEBOOK, STAGES


QUIET = {"on": False}    # set by the CLI's -q: no progress bars either


def notebooks_dir() -> Path:
    """The notebooks, wherever zoorepro is installed (they ship inside the package as
    ``zoorepro.notebooks``; in a clone that is the repository's ``notebooks/`` folder)."""
    from importlib import resources
    return Path(str(resources.files("zoorepro.notebooks")))


def _kernel_manager_class():
    """Kernels over IPC sockets: local only, and no 'running over TCP without encryption'
    warning on every notebook."""
    from jupyter_client.manager import AsyncKernelManager

    class IpcKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            kwargs.setdefault("transport", "ipc")
            # sockets of its own, by absolute path: by default every kernel binds
            # kernel-ipc-1..5 in its working directory (notebooks/), so kernels started at
            # the same time (zoorepro matrix, two runs) took each other's ('Invalid Signature')
            import tempfile
            import uuid
            kwargs.setdefault("ip", os.path.join(tempfile.gettempdir(),
                                                 f"zoorepro-kernel-{uuid.uuid4().hex[:16]}"))
            super().__init__(**kwargs)
    return IpcKernelManager


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
    """Execute one notebook into the run folder with ``run_dir`` as its only parameter."""
    import papermill as pm
    src = notebooks_dir() / nb_name
    dst = run.notebooks / nb_name
    run.notebooks.mkdir(parents=True, exist_ok=True)
    logging.getLogger("papermill").setLevel(logging.ERROR)
    # progress bars of long steps go to the terminal, not into the executed notebooks
    os.environ["ZOOREPRO_PROGRESS"] = "off" if QUIET["on"] else "terminal"
    pm.execute_notebook(str(src), str(dst), parameters={"run_dir": str(run.root)},
                        cwd=str(notebooks_dir()), kernel_name=kernel or "python3",
                        progress_bar=False, log_output=False,
                        kernel_manager_class=_kernel_manager_class())
    return dst


def _execute_recording(nb: str, run: Run, kernel: str | None) -> dict | None:
    """Execute ``nb``; on failure (an error in a cell, or the kernel dying) record it."""
    import papermill as pm
    try:
        execute(nb, run, kernel)
    except pm.PapermillExecutionError as exc:
        error = f"{exc.ename}: {exc.evalue}"
    except Exception as exc:            # the kernel died (killed, out of memory) or would not start
        name = type(exc).__name__
        why = ("the notebook's kernel died (killed, e.g. by the out-of-memory killer, or it "
               "crashed)" if "DeadKernel" in name else "the notebook could not be executed")
        error = f"{name}: {why}: {exc}".rstrip(": ")
    else:
        return None
    failure = records.FailureRecord(notebook=nb, cell=failing_cell(run.notebooks / nb), error=error)
    run.write(failure)
    return failure.to_json()


def render_report(run: Run, kernel: str | None = None, failure: dict | None = None) -> RunOutcome:
    """The report notebook on ``run``, then ``report.html`` (also after a failure)."""
    failed = _execute_recording(REPORT_NOTEBOOK, run, kernel)
    failure = failure or failed
    executed = run.notebooks / REPORT_NOTEBOOK
    path = report.render_html(executed, run.root / "report.html") if executed.is_file() else None
    return RunOutcome(run.root, path, failure)


def run_all(cfg: RunConfig | None = None, kernel: str | None = None, resume: Run | None = None,
            say: Callable[[str], None] = lambda msg: None) -> RunOutcome:
    """Execute every notebook in order into a new run folder (or continue the unfinished run
    ``resume``: the stages whose records are there are not run again), then render.
    ``say`` gets one line per stage with its elapsed time."""
    if resume is not None:
        if resume.finished:
            raise DataError(f"{resume.root}: a finished run; finished runs are never modified "
                            f"(rerun its params.yaml for a new run)")
        if resume.origin != "run":
            raise DataError(f"{resume.root}: not a run to continue ({resume.origin} results)")
        run = resume
        # what the failed or interrupted attempt left: its failure and its partial report
        run.record_path(records.FailureRecord).unlink(missing_ok=True)
        (run.root / "report.html").unlink(missing_ok=True)
    else:
        run = Run.create(cfg)
    say(f"run folder: {run.root}")
    failure = None
    for stage in STAGES.values():
        if resume is not None and run.has(stage.record):
            say(f"{stage.notebook}: done earlier, kept")
            continue
        t0 = time.perf_counter()
        say(f"{stage.notebook}: running")
        failure = _execute_recording(stage.notebook, run, kernel)
        took = time.perf_counter() - t0
        if failure:
            say(f"{stage.notebook}: FAILED after {took:.1f} s")
            break
        say(f"{stage.notebook}: done in {took:.1f} s")
    t0 = time.perf_counter()
    outcome = render_report(run, kernel, failure)
    say(f"{REPORT_NOTEBOOK}: report {'written' if outcome.report else 'not written'} in "
        f"{time.perf_counter() - t0:.1f} s")
    return outcome


def _latest_unfinished(cfg: RunConfig, stage: str) -> Run | None:
    """The newest unfinished run of ``cfg``'s name and parameters under its output_root whose
    stages before ``stage`` are done: the run a notebook opened alone continues."""
    root = Path(cfg.output_root)
    if not root.is_dir():
        return None
    wanted = {k: v for k, v in cfg.to_dict().items() if k not in ("run_dir",)}
    needs = [STAGES[r].record for r in STAGES[stage].requires]
    for folder in sorted(root.glob(f"{cfg.name}-*"), key=lambda p: p.name, reverse=True):
        if not (folder / "params.yaml").is_file():
            continue
        run = Run(folder)
        try:
            same = run.config is not None and {
                k: v for k, v in run.config.to_dict().items() if k != "run_dir"} == wanted
        except Exception:            # noqa: BLE001 - an unreadable folder is not a candidate
            continue
        if same and not run.finished and all(run.has(r) for r in needs):
            return run
    return None


def open_from_notebook(namespace, stage: str | None = None) -> Run:
    """A notebook's first step: its parameters -> the run.

    * ``run_dir`` names an existing run: that run, with its own params.yaml (ingested NPU
      results open as they are);
    * ``run_dir`` names a new folder: a new run there (papermill route: the same
      ``-p run_dir`` for every notebook passes the run from one to the next);
    * ``run_dir`` empty: the newest unfinished run with these parameters whose earlier
      stages are done (a notebook opened alone in JupyterLab), else a new run.
    A finished run is never written to: only the report notebook (``stage`` None) opens one.
    """
    run_dir = namespace.get("run_dir")
    if run_dir and (Path(run_dir) / "records").is_dir():
        run = Run.open(run_dir)
        if stage is not None and run.finished:
            raise DataError(f"{run_dir}: a finished run; finished runs are never modified. "
                            f"Leave run_dir empty for a new run")
        if run.origin == "run" and run.config is None:
            raise DataError(f"{run_dir}: no params.yaml; not a run folder zoorepro made")
        return run
    cfg = from_namespace(namespace)
    if not run_dir and stage is not None and STAGES[stage].requires:
        found = _latest_unfinished(cfg, stage)
        if found is not None:
            print(f"continuing the unfinished run {found.root}: its earlier stages are done")
            return found
    return Run.create(cfg)
