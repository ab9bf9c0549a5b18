"""The notebooks: executed with papermill into a run folder, then ``report.html``.

Each notebook gets one parameter, ``run_dir``: the run folder, whose ``params.yaml`` holds
the frozen config.  A failing notebook, or a kernel that dies, is kept (with its failing cell)
in ``<run>/notebooks/`` and recorded in ``records/failure.json``; the report notebook still
runs, so a partial ``report.html`` shows what did run under a banner saying what failed.
Notebooks open their run with :func:`open_from_notebook`, on every route (this module,
papermill's own CLI, JupyterLab).  Each kernel gets an environment of its own
(:func:`kernel_env`); this process's ``os.environ`` is never changed.
"""
from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from zoorepro.run import records, runlock
from zoorepro import report
from zoorepro.config import (DEFAULTS, FIELD_NAMES, PATH_KEYS, VALID_KEYS, RunConfig,
                             from_namespace, notebook_value, resolve_notebook_path, resolved)
from zoorepro.errors import ConfigError, DataError
from zoorepro.host import PROGRESS_ENV
from zoorepro.run.folder import Run
from zoorepro.run.stages import REPORT_NOTEBOOK, STAGES

log = logging.getLogger(__name__)


def notebooks_dir() -> Path:
    """The notebooks, wherever zoorepro is installed (they ship inside the package as
    ``zoorepro.notebooks``; in a clone that is the repository's ``notebooks/`` folder)."""
    from importlib import resources
    return Path(str(resources.files("zoorepro.notebooks")))


def _kernel_manager_class(env: dict):
    """Kernels over IPC sockets: local only, and no 'running over TCP without encryption'
    warning on every notebook; each started with the environment ``env`` (its own:
    :func:`kernel_env`), not with whatever this process's ``os.environ`` holds then."""
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

        async def start_kernel(self, **kw):
            # jupyter_client's provisioner starts the kernel with kw["env"] (default: a copy
            # of os.environ); a restart reuses these launch arguments
            kw["env"] = {**env, **(kw.get("env") or {})}
            return await super().start_kernel(**kw)
    return IpcKernelManager


def kernel_env(run: Run, progress: bool = True) -> dict:
    """A kernel's environment on ``run``: this process's, the run lock's token when this
    process holds it (the kernel may open the run: runlock.check), and where its progress
    bars go (host.progress_bar: the terminal; ``progress`` False: none).  A new dict."""
    return {**os.environ, **runlock.kernel_env(run.root),
            PROGRESS_ENV: "terminal" if progress else "off"}


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


def execute(nb_name: str, run: Run, kernel: str | None = None, progress: bool = True) -> Path:
    """Execute one notebook into the run folder with ``run_dir`` as its only parameter, in a
    kernel of its own environment (:func:`kernel_env`: ``progress`` False, no progress bars;
    True, they go to the terminal, not into the executed notebook)."""
    import papermill as pm
    src = notebooks_dir() / nb_name
    dst = run.notebooks / nb_name
    run.notebooks.mkdir(parents=True, exist_ok=True)
    logging.getLogger("papermill").setLevel(logging.ERROR)
    log.debug("%s: executing %s into %s (kernel %s)", nb_name, src, dst, kernel or "python3")
    # an absolute run_dir: the kernel's working directory is notebooks/, not ours
    pm.execute_notebook(str(src), str(dst), parameters={"run_dir": str(run.root.resolve())},
                        cwd=str(notebooks_dir()), kernel_name=kernel or "python3",
                        progress_bar=False, log_output=False,
                        kernel_manager_class=_kernel_manager_class(kernel_env(run, progress)),
                        # a cell's error is kept in the notebook; the kernel's own log
                        # only adds a ZMQError traceback when an interrupt shuts it down
                        extra_arguments=["--IPKernelApp.log_level=CRITICAL"])
    return dst


def _execute_recording(nb: str, run: Run, kernel: str | None,
                       progress: bool = True) -> dict | None:
    """Execute ``nb``; on failure (an error in a cell, or the kernel dying) record it."""
    import papermill as pm
    try:
        execute(nb, run, kernel, progress)
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


def render_report(run: Run, kernel: str | None = None, failure: dict | None = None,
                  progress: bool = True) -> RunOutcome:
    """The report notebook on ``run``, then ``report.html`` (also after a failure); the
    run's lock is held meanwhile.  ``progress``: as for :func:`execute`."""
    with runlock.hold(run.root, "zoorepro render", print):
        failed = _execute_recording(REPORT_NOTEBOOK, run, kernel, progress)
        failure = failure or failed
        executed = run.notebooks / REPORT_NOTEBOOK
        path = (report.render_html(executed, run.root / "report.html") if executed.is_file()
                else None)
    return RunOutcome(run.root, path, failure)


class RunInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM (``signum``) stopped the run in ``run_dir``; it can be resumed."""

    def __init__(self, run_dir: Path | None = None, signum: int = 2):
        super().__init__(f"interrupted by signal {signum}")
        self.run_dir, self.signum = run_dir, signum


@contextlib.contextmanager
def _ctrl_c():
    """Ctrl-C seen during the run, whatever catches it: asyncio's own SIGINT handler (Python
    3.11+, nbclient's event loop) cancels a task that may swallow the cancellation, so a
    plain KeyboardInterrupt could be lost and the run go on.  Here SIGINT is remembered and
    raised; the stages loop checks it after each notebook.  Main thread only."""
    import signal
    import threading
    seen = {"at": None}          # this call's own state, not a module switch

    def handler(signum, frame):
        seen["at"] = signum
        raise KeyboardInterrupt
    mine = (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler)
    previous = signal.signal(signal.SIGINT, handler) if mine else None
    try:
        yield seen
    finally:
        if mine:
            signal.signal(signal.SIGINT, previous)


def run_all(cfg: RunConfig | None = None, kernel: str | None = None, resume: Run | None = None,
            say: Callable[[str], None] = log.info, progress: bool = True) -> RunOutcome:
    """Execute every notebook in order into a new run folder (or continue the unfinished run
    ``resume``: the stages whose records are there are not run again), then render.
    ``say`` gets the run folder, then one line per stage with its elapsed time (default: this
    module's logger at INFO).  ``progress`` False: the kernels draw no progress bars (``-q``;
    ``zoorepro matrix``, whose runs share one terminal).  The run's lock
    (:mod:`zoorepro.run.runlock`) is held throughout: a run another process works on is refused.
    An interrupt (SIGINT, or SIGTERM raised as :class:`RunInterrupted`) is re-raised as a
    :class:`RunInterrupted` naming the run folder."""
    with contextlib.ExitStack() as stack:
        if resume is not None:
            run = Run(resume.root.resolve())
            stack.enter_context(runlock.hold(run.root, "zoorepro run --resume", say))
            if run.finished:
                raise DataError(f"{run.root}: a finished run; finished runs are never modified "
                                f"(rerun its params.yaml for a new run)")
            if run.origin != "run":
                raise DataError(f"{run.root}: not a run to continue ({run.origin} results)")
            run.check_recipe()         # what is left runs with the recipe the run began with
            # what the failed or interrupted attempt left: its failure and its partial report
            run.record_path(records.FailureRecord).unlink(missing_ok=True)
            (run.root / "report.html").unlink(missing_ok=True)
        else:
            if cfg.shards > 1 and cfg.scheduler:     # nothing answers there: before any folder
                from zoorepro.addresses import check_scheduler
                check_scheduler(cfg.scheduler)
            from zoorepro.recipe import check       # the recipe's code and AIPP: before any
            check.check(cfg.recipe_spec)              # folder, as a bad parameter is refused
            if cfg.run_dir and Path(cfg.run_dir).is_dir():   # an existing folder: lock first
                stack.enter_context(runlock.hold(cfg.run_dir, "zoorepro run", say))
            run = Run.create(cfg)
            stack.enter_context(runlock.hold(run.root, "zoorepro run", say))
        try:
            interrupt = stack.enter_context(_ctrl_c())
            return _run_stages(run, kernel, resume is not None, say, progress, interrupt)
        except RunInterrupted as exc:
            exc.run_dir = exc.run_dir or run.root
            raise
        except KeyboardInterrupt:
            raise RunInterrupted(run.root, 2) from None


def _run_stages(run: Run, kernel: str | None, resuming: bool, say, progress: bool,
                interrupt: dict) -> RunOutcome:
    say(f"run folder: {run.root}")
    failure = None
    for stage in STAGES.values():
        if resuming and run.has(stage.record):
            say(f"{stage.notebook}: done earlier, kept")
            continue
        t0 = time.perf_counter()
        say(f"{stage.notebook}: running")
        failure = _execute_recording(stage.notebook, run, kernel, progress)
        if interrupt["at"]:       # Ctrl-C that something on the way swallowed
            raise RunInterrupted(run.root, interrupt["at"])
        took = time.perf_counter() - t0
        if failure:
            say(f"{stage.notebook}: FAILED after {took:.1f} s")
            break
        say(f"{stage.notebook}: done in {took:.1f} s")
    t0 = time.perf_counter()
    outcome = render_report(run, kernel, failure, progress)
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


def _notebook_default(key: str):
    """The value a notebook's parameters cell gives ``key`` (config.notebook_parameters_source:
    relative paths written from notebooks/), also for the keys a notebook does not declare."""
    return notebook_value(key, DEFAULTS[key])


def _parameters(namespace, keys) -> dict:
    """``keys`` of a notebook's namespace, relative paths it is given (its defaults,
    papermill's ``-p``/``-y``/``-f``) made absolute as
    :func:`zoorepro.config.resolve_notebook_path` resolves them (a recipe's name stays)."""
    return {k: resolved(k, namespace[k], resolve_notebook_path) for k in keys}


def _injected_keys(namespace) -> set:
    """The parameters papermill injected that are config keys."""
    return _injected_names(namespace) & set(FIELD_NAMES)


def refuse_unknown_parameters(namespace) -> None:
    """A key papermill injected that is no parameter (``-p max_image 5``) is an error with
    "did you mean", as on the file and ``-p`` routes, never a run that ignores it."""
    from zoorepro.configspec import unknown_key
    unknown = sorted(_injected_names(namespace) - set(FIELD_NAMES))
    if unknown:
        raise ConfigError("papermill parameters: " + "; ".join(
            unknown_key(k, FIELD_NAMES) for k in unknown) + "; " + VALID_KEYS)


def _injected_names(namespace) -> set:
    """The names papermill injected: its ``# Parameters`` cell, in IPython's input history."""
    import ast
    keys = set()
    for src in namespace.get("In") or ():
        if isinstance(src, str) and src.split("\n", 1)[0].strip() == "# Parameters":
            try:
                body = ast.parse(src).body
            except SyntaxError:
                continue
            keys |= {t.id for node in body if isinstance(node, ast.Assign)
                     for t in node.targets if isinstance(t, ast.Name)}
    return keys


def _refuse_other_parameters(namespace, run: Run) -> None:
    """Parameters given to a notebook (injected by papermill, or changed from the notebook's
    defaults) that differ from the run's own params.yaml are refused, not ignored."""
    given = _injected_keys(namespace) | {
        k for k in FIELD_NAMES if k in namespace and namespace[k] != _notebook_default(k)}
    given -= {"run_dir", "output_root"}
    if not given or run.config is None:
        return
    own = run.config.to_dict()
    theirs = from_namespace(_parameters(namespace, given), check_paths=False,
                            base=own).to_dict()
    differ = sorted(k for k in given if theirs[k] != own[k])
    if not differ:
        return
    if run.finished:
        raise DataError(f"{run.root}: this finished run was made with other parameters "
                        f"({', '.join(differ)}); give only run_dir to show it, or leave "
                        f"run_dir empty for a new run")
    raise DataError(f"{run.root}: this unfinished run was made with other parameters "
                    f"({', '.join(differ)}); continue it with its own params.yaml (zoorepro "
                    f"run --resume {run.root}) or leave run_dir empty for a new run")


def finish_hint(run: Run) -> None:
    """The report notebook's last cell: opened alone (JupyterLab, papermill by hand) it shows
    the report but writes no ``report.html``; print the one command that does (and so
    finishes the run).  Nothing when zoorepro's own runner executes it (its lock's token)."""
    if os.environ.get(runlock.TOKEN_ENV) or run.finished or run.origin == "compared":
        return
    print(f"This notebook shows the report; the run is finished when its report.html is "
          f"written. Write it (the executed notebooks go into the run folder) with:\n"
          f"  zoorepro render {run.root.resolve()}")


def describe_paths(cfg: RunConfig, source: str = "") -> str:
    """The paths a run uses, absolute, one per line: what a notebook prints it used."""
    lines = [f"  {k:<12} {getattr(cfg, k)}" for k in PATH_KEYS
             if k != "run_dir" and getattr(cfg, k)]
    source = source or (f"relative ones resolve against the working directory {Path.cwd()}, "
                        f"or its notebooks/ where nothing is there")
    return f"paths ({source}):\n" + "\n".join(lines)


def open_from_notebook(namespace, stage: str | None = None) -> Run:
    """A notebook's first step: its parameters -> the run.

    * ``run_dir`` names an existing run: that run, with its own params.yaml (ingested NPU
      results open as they are); parameters given beside it that differ from the run's own
      are refused, not ignored;
    * ``run_dir`` names a new folder: a new run there (papermill route: the same
      ``-p run_dir`` for every notebook passes the run from one to the next); the report
      notebook (``stage`` None) never starts a run there: it is refused;
    * ``run_dir`` empty: the newest unfinished run with these parameters whose earlier
      stages are done (a notebook opened alone in JupyterLab), else a new run.
    A finished run is never written to: only the report notebook opens one.  A run another
    process works on (its lock held, :mod:`zoorepro.run.runlock`) is refused, except by the kernels
    that process started.  Keys the notebook does not declare take the value its parameters
    cell would give them, so every notebook resolves paths alike; it prints the paths used.
    """
    refuse_unknown_parameters(namespace)
    run_dir = namespace.get("run_dir")
    if run_dir:
        run_dir = resolve_notebook_path(str(run_dir))
    if run_dir and (Path(run_dir) / "records").is_dir():
        run = Run.open(run_dir)
        runlock.check(run.root)
        if stage is not None and run.finished:
            raise DataError(f"{run_dir}: a finished run; finished runs are never modified. "
                            f"Leave run_dir empty for a new run")
        if run.origin == "run" and run.config is None:
            raise DataError(f"{run_dir}: no params.yaml; not a run folder zoorepro made")
        _refuse_other_parameters(namespace, run)
        if run.config is not None and stage is not None:   # the report has its provenance
            print(describe_paths(run.config, f"the run's own, {run.root / 'params.yaml'}"))
        return run
    if run_dir and stage is None:
        raise DataError(f"{run_dir}: not a run folder (no records/); the report notebook "
                        f"shows an existing run: give the folder 'zoorepro run' or the stage "
                        f"notebooks wrote, or leave run_dir empty for a new run")
    full = _parameters({k: namespace[k] if k in namespace else _notebook_default(k)
                        for k in FIELD_NAMES}, FIELD_NAMES)
    if run_dir:
        full["run_dir"] = run_dir
        if Path(run_dir).is_dir():
            runlock.check(run_dir)
    cfg = from_namespace(full)
    print(describe_paths(cfg))
    if not run_dir and stage is not None and STAGES[stage].requires:
        found = _latest_unfinished(cfg, stage)
        if found is not None:
            runlock.check(found.root)
            print(f"continuing the unfinished run {found.root}: its earlier stages are done")
            return found
    return Run.create(cfg)
