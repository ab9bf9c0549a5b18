"""``zoorepro lab``: JupyterLab on the user's own notebooks, as one process.

* the process: ``zoorepro lab`` replaces itself with JupyterLab (``os.execv``), so the PID it
  prints is JupyterLab's; stopping that PID (Ctrl-C, ``kill``) stops the server and its kernels;
* the options: every option goes to JupyterLab as it is; ours (the folder it serves) only
  where the user gave none (``--notebook-dir``, ``--ServerApp.root_dir`` or a folder);
  ``--port P`` is that port or an error, never a silent move to the next one;
* the notebooks: in a project checkout (a folder holding ``notebooks/`` with the 01..05
  notebooks: the working directory or one above it) those; otherwise (zoorepro installed
  from a wheel) a copy of the packaged notebooks in ``./zoorepro-notebooks/``, made once and
  never overwritten.  Never the installed package (site-packages): what is saved there is
  lost on the next install.
"""
from __future__ import annotations

import filecmp
import logging
import os
import shutil
import site
import socket
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

from zoorepro.errors import LabError

log = logging.getLogger(__name__)

WORKING_FOLDER = "zoorepro-notebooks"
NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
# the options that name the folder JupyterLab serves (traitlets: dashes or underscores)
ROOT_OPTIONS = {"--notebook-dir", "--ServerApp.root_dir", "--ServerApp.notebook_dir",
                "--NotebookApp.notebook_dir"}
PORT_OPTIONS = {"--port", "--ServerApp.port"}
RETRY_OPTIONS = {"--port-retries", "--ServerApp.port_retries"}
# JupyterLab's short options that take a value (jupyter_server's and LabApp's aliases); any
# other ``--name`` is a flag, ``--Class.trait`` takes one
VALUE_ALIASES = {"--app-dir", "--browser", "--certfile", "--client-ca", "--config", "--ip",
                 "--keyfile", "--log-level", "--notebook-dir", "--port", "--port-retries",
                 "--preferred-dir", "--pylab", "--sock", "--sock-mode", "--transport",
                 "--gateway-url"}


@dataclass
class LabPlan:
    argv: list            # the command line JupyterLab runs with (argv[0]: the interpreter)
    root: Path | None     # the folder it serves (None: the one the user's options name)
    notes: list = field(default_factory=list)   # what to tell the user first


def packaged_dir() -> Path:
    from zoorepro.runner import notebooks_dir
    return notebooks_dir()


def packaged_notebooks() -> list[str]:
    """The notebooks' file names (01_preprocess.ipynb .. 06_report.ipynb)."""
    return sorted(p.name for p in packaged_dir().glob(NOTEBOOK_GLOB))


def installed_dirs() -> list[Path]:
    """Folders pip installs into: the notebooks are never served or saved below these."""
    dirs = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
    try:
        dirs |= set(site.getsitepackages())
    except AttributeError:          # some virtualenvs' site module lacks it
        pass
    if site.ENABLE_USER_SITE:
        dirs.add(site.getusersitepackages())
    return [Path(d).resolve() for d in dirs if d]


def _inside(path: Path, dirs) -> bool:
    path = Path(path).resolve()
    return any(path == d or d in path.parents for d in dirs)


def project_notebooks(start: Path | None = None) -> Path | None:
    """``<project>/notebooks`` holding every packaged notebook, for the working directory or
    the nearest folder above it; None where there is none (outside a checkout)."""
    names = packaged_notebooks()
    here = Path(start or Path.cwd()).resolve()
    installed = installed_dirs()
    for folder in (here, *here.parents):
        cand = folder / "notebooks"
        if names and all((cand / n).is_file() for n in names) and not _inside(cand, installed):
            return cand
    return None


def working_copy(folder: Path) -> tuple[Path, list[str]]:
    """``folder`` holding a copy of the packaged notebooks: made on the first call; later
    calls add only notebooks it lacks and never overwrite one (the user's edits and
    outputs are theirs).  Returns (folder, notes for the user)."""
    folder = Path(folder).absolute()
    if _inside(folder, installed_dirs()):
        raise LabError(f"{folder} is inside the installed packages (site-packages); notebooks "
                       f"saved there are lost on the next install: run 'zoorepro lab' from a "
                       f"folder of your own (e.g. cd ~/work) or give --notebook-dir DIR")
    if folder.exists() and not folder.is_dir():
        raise LabError(f"{folder} exists and is not a folder; move it away or run "
                       f"'zoorepro lab' from another folder")
    src = packaged_dir()
    made = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        added, differ = [], []
        for name in packaged_notebooks():
            dst = folder / name
            if not dst.exists():
                shutil.copyfile(src / name, dst)
                added.append(name)
            elif not filecmp.cmp(src / name, dst, shallow=False):
                differ.append(name)
    except OSError as exc:
        raise LabError(f"{folder}: the notebooks cannot be copied there ({exc.strerror or exc}); "
                       f"run 'zoorepro lab' from a folder you can write to") from None
    if made:
        notes = [f"copied zoorepro's notebooks to {folder} (your copy: edit and save there)"]
    else:
        notes = [f"using your notebooks in {folder}"]
        if added:
            notes.append(f"added the notebooks it lacked: {', '.join(added)}")
        if differ:
            notes.append(f"kept your versions of {', '.join(differ)} (this zoorepro's differ); "
                         f"for the new ones move {folder} away and run 'zoorepro lab' again")
    return folder, notes


def _name(arg: str) -> str:
    """``--ServerApp.root-dir=/x`` -> ``--ServerApp.root_dir`` (traitlets takes both)."""
    name = arg.split("=", 1)[0]
    if "." in name:
        head, tail = name.rsplit(".", 1)
        name = f"{head}.{tail.replace('-', '_')}"
    return name


def _option_value(extra: list, names: set) -> str | None:
    """The value given to one of ``names`` (``--x=V`` or ``--x V``), the last one wins."""
    value = None
    for i, arg in enumerate(extra):
        if _name(arg) in names:
            if "=" in arg:
                value = arg.split("=", 1)[1]
            elif i + 1 < len(extra) and _takes_value(arg):
                value = extra[i + 1]
    return value


def _takes_value(arg: str) -> bool:
    """``--port`` or ``--ServerApp.port`` given without ``=``: the next argument is its value."""
    if not arg.startswith("-") or "=" in arg:
        return False
    return arg in VALUE_ALIASES or "." in arg


def _positional(extra: list) -> list[str]:
    """Arguments that are not options or their values (JupyterLab: a folder or a file)."""
    return [arg for i, arg in enumerate(extra) if not arg.startswith("-")
            and not (i and _takes_value(extra[i - 1]))]


def user_root(extra: list) -> bool:
    """Whether the user's options already name the folder JupyterLab serves."""
    return any(_name(a) in ROOT_OPTIONS for a in extra) or bool(_positional(extra))


def check_port(extra: list) -> list:
    """``--port P``: refused here when something listens on P (a JupyterLab left running
    would make the new one move to P+1 unseen); JupyterLab is told not to move."""
    value = _option_value(extra, PORT_OPTIONS)
    if value is None:
        return []
    try:
        port = int(value)
    except ValueError:
        raise LabError(f"--port {value}: not a port number; give e.g. --port 8899") from None
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        busy = s.connect_ex(("127.0.0.1", port)) == 0
    if busy:
        raise LabError(f"port {port} is in use (a JupyterLab still running? 'jupyter server "
                       f"list' shows them and 'jupyter server stop {port}' stops one); stop "
                       f"it or give another --port")
    if _option_value(extra, RETRY_OPTIONS) is None:
        return ["--ServerApp.port_retries=0"]
    return []


def plan(extra: list, cwd: Path | None = None) -> LabPlan:
    """What ``zoorepro lab EXTRA...`` runs, run from ``cwd``: JupyterLab's command line."""
    extra = list(extra)
    cwd = Path(cwd or Path.cwd())
    ours = check_port(extra)
    if user_root(extra):
        return LabPlan([sys.executable, "-m", "jupyterlab", *ours, *extra], None,
                       ["serving the folder your options name"])
    root = project_notebooks(cwd)
    if root is not None:
        notes = [f"the project's notebooks: {root}"]
    else:
        root, notes = working_copy(cwd / WORKING_FOLDER)
    return LabPlan([sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root}", *ours,
                    *extra], root, notes)


def start(lab: LabPlan):
    """Replace this process with JupyterLab (the same PID: one process to stop); its notes
    and PID first, to this module's logger at INFO (the CLI: stderr, none with ``-q``)."""
    import importlib.util
    if importlib.util.find_spec("jupyterlab") is None:
        raise LabError("JupyterLab is not installed in this environment; install it with "
                       "pip install jupyterlab (or pip install 'zoorepro[lab]')")
    for note in lab.notes:
        log.info(note)
    log.info(f"JupyterLab runs as this process, pid {os.getpid()}: stop it with Ctrl-C or "
             f"'kill {os.getpid()}' (its kernels stop with it)")
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(lab.argv[0], lab.argv)
    except OSError as exc:
        raise LabError(f"{lab.argv[0]} -m jupyterlab cannot be started ({exc.strerror}); "
                       f"install JupyterLab: pip install jupyterlab") from None
