"""``zoorepro`` command line.  Every command calls the same library functions as the notebooks.

    zoorepro run PARAMS.yaml [-p KEY VALUE]...   notebooks -> a new run folder -> report.html
    zoorepro run --resume RUN_DIR                continue an unfinished (failed, interrupted) run
    zoorepro render RUN_DIR                      report.html for a run folder (papermill route)
    zoorepro bench PARAMS.yaml [-p KEY VALUE]... throughput sweep only -> bench.json/csv
    zoorepro recipes [NAME_OR_FOLDER]            the recipes (or one recipe's facts) and needs
    zoorepro labels --official OUT               write the official 50,000-line val_label.txt
    zoorepro convert-weights SRC OUT [--recipe R] a recipe's demo weights -> .pth (its hook)
    zoorepro lab [JUPYTERLAB OPTIONS]...         start JupyterLab on the notebooks
    zoorepro ingest RESULT_DIR --labels FILE     ais_bench results from an NPU host -> run folder
    zoorepro kit PARAMS.yaml OUT_DIR             a folder + script to run the recipe on an NPU host
    zoorepro compare RUN_DIR RUN_DIR [...] --out DIR   one comparison report of several run folders
    zoorepro index [OUTPUT_ROOT]                 reports/index.html: every run, with links
    zoorepro matrix PARAMS.yaml --grid KEY=V,V   a grid of runs on Dask, then one compare report

``run``, ``bench``, ``ingest`` and ``compare`` print the folder they wrote as their last line
(stdout); progress goes to stderr (``-q``: none, ``-v``: more).  Progress and warnings are
records of the ``zoorepro`` logger (each module logs to its own child, ``zoorepro.runner``
...): :func:`configure_logging` gives it one handler, plain lines on stderr, at WARNING with
``-q``, INFO by default, DEBUG with ``-v``.

Exit codes: 0 done; 1 a notebook failed (the partial report says where); 2 bad input or a
problem the message names (params, files, nothing could run); 130 interrupted.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from zoorepro.cli.commands import (  # noqa: F401  (the commands, one function each)
    _overrides, _refresh_index, cmd_bench, cmd_compare, cmd_convert_weights, cmd_index,
    cmd_ingest, cmd_kit, cmd_lab, cmd_labels, cmd_recipes, cmd_render, cmd_run)
from zoorepro.errors import ZooreproError

log = logging.getLogger(__name__)


class StderrHandler(logging.StreamHandler):
    """Records as they are written, one line each, on ``sys.stderr`` as it is when the record
    comes (a redirect or a test's capture made after the handler still gets them); stdout
    stays for what scripts read: the folder a command wrote."""

    def __init__(self, level: int = logging.NOTSET):
        super().__init__(sys.stderr)
        self.setLevel(level)
        self.setFormatter(logging.Formatter("%(message)s"))

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:      # StreamHandler.__init__ sets it: always sys.stderr
        pass


def log_level(quiet: bool = False, verbose: bool = False) -> int:
    """``-q``: warnings only; ``-v``: debug lines too; else progress (INFO).  ``-q`` wins."""
    return logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO


def configure_logging(level: int = logging.INFO) -> logging.Logger:
    """The ``zoorepro`` logger at ``level`` with one :class:`StderrHandler` (added once, however
    often :func:`main` runs in a process).  Only the command line calls this: the library
    never configures logging."""
    logger = logging.getLogger("zoorepro")
    logger.setLevel(level)
    if not any(isinstance(h, StderrHandler) for h in logger.handlers):
        logger.addHandler(StderrHandler())
    return logger


def build_parser() -> argparse.ArgumentParser:
    from importlib import metadata
    p = argparse.ArgumentParser(prog="zoorepro", description=__doc__.split("\n\n")[0],
                                epilog="exit codes: 0 done, 1 a notebook failed (partial report), "
                                       "2 bad input or nothing could run, 130 interrupted",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version",
                   version=f"zoorepro {metadata.version('zoorepro')}")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("-v", "--verbose", action="store_true", help="more progress on stderr")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="execute the notebooks into a new run folder and render "
                                   "report.html")
    r.add_argument("params", nargs="?", help="params YAML, e.g. params/demo.yaml")
    r.add_argument("-p", "--param", nargs=2, action="append", metavar=("KEY", "VALUE"),
                   help="override one parameter (VALUE is read as YAML)")
    r.add_argument("--resume", metavar="RUN_DIR", help="continue this unfinished run (failed "
                   "or interrupted) with its own params.yaml; finished runs are never modified")
    r.add_argument("--kernel", default=None, help="Jupyter kernel name (default python3)")
    r.set_defaults(func=cmd_run)
    rd = sub.add_parser("render", help="execute the report notebook on a run folder and write "
                                       "its report.html")
    rd.add_argument("run_dir", help="a run folder (e.g. made by papermill -p run_dir DIR)")
    rd.add_argument("--kernel", default=None, help="Jupyter kernel name (default python3)")
    rd.set_defaults(func=cmd_render)
    ix = sub.add_parser("index", help="write OUTPUT_ROOT/index.html listing every run")
    ix.add_argument("output_root", nargs="?", default="reports")
    ix.set_defaults(func=cmd_index)
    b = sub.add_parser("bench", help="batch-size throughput sweep only (bench.json, bench.csv)")
    b.add_argument("params", help="params YAML, e.g. params/demo.yaml")
    b.add_argument("-p", "--param", nargs=2, action="append", metavar=("KEY", "VALUE"),
                   help="override one parameter (VALUE is read as YAML)")
    b.set_defaults(func=cmd_bench)
    rc = sub.add_parser("recipes", help="list the recipes, or show one recipe's facts")
    rc.add_argument("recipe", nargs="?", help="a recipe's name or folder")
    rc.set_defaults(func=cmd_recipes)
    lab = sub.add_parser("labels", help="write the official ImageNet val_label.txt")
    lab.add_argument("--official", required=True, metavar="OUT", help="where to write it")
    lab.set_defaults(func=cmd_labels)
    cw = sub.add_parser("convert-weights", help="the recipe's demo weights -> a .pth (its "
                                                "weights.demo.convert hook)")
    cw.add_argument("source", help="the file the recipe's hook reads (the hook's docstring, "
                                   "in the recipe's folder, says which)")
    cw.add_argument("dest", help="output .pth")
    from zoorepro import recipebook
    cw.add_argument("--recipe", default=recipebook.DEFAULT,
                    help="the recipe (a name or folder) whose hook converts (default: "
                         "%(default)s)")
    cw.set_defaults(func=cmd_convert_weights)
    jl = sub.add_parser("lab", help="JupyterLab on your notebooks (a checkout's notebooks/, "
                                    "else a copy in ./zoorepro-notebooks/; other options, "
                                    "e.g. --no-browser --port 8899, go to JupyterLab)",
                        description="JupyterLab as this very process (the PID it prints is "
                                    "JupyterLab's) on a checkout's notebooks/, else on a copy of "
                                    "the notebooks in ./zoorepro-notebooks/ (made once, never "
                                    "overwritten). Every other option goes to JupyterLab; "
                                    "--notebook-dir DIR serves DIR instead.")
    jl.set_defaults(func=cmd_lab, extra=[])
    ing = sub.add_parser("ingest", help="ais_bench results from an NPU host -> run folder + report")
    ing.add_argument("result_dir", help="the folder ais_bench wrote, e.g. result/result_bs1")
    ing.add_argument("--labels", required=True, help="val_label.txt")
    ing.add_argument("--summary", action="append", metavar="FILE",
                     help="a pure-inference (--loop) *_summary.json; repeat for a sweep")
    ing.add_argument("--accuracy-summary", metavar="FILE", default=None,
                     help="the accuracy run's summary (default: <RESULT_DIR>_summary.json "
                          "beside it)")
    ing.add_argument("--npu-smi", metavar="FILE", help="saved output of 'npu-smi info'")
    ing.add_argument("--cann-version", metavar="TEXT", help="CANN version, e.g. 6.0.RC1")
    ing.add_argument("--soc-version", metavar="TEXT", help="chip, e.g. Ascend310P3 "
                     "(default: from --npu-smi)")
    ing.add_argument("--manifest", metavar="FILE", help="the kit's kit.json (hashes, image list)")
    ing.add_argument("--recipe", metavar="NAME_OR_FOLDER", default=None,
                     help="the recipe the results followed, for results made without a kit "
                          "(a kit's kit.json names its own)")
    ing.add_argument("--ladder-from", metavar="RUN_DIR", default=None,
                     help="a local run of the same recipe whose precision ladder was "
                          "measured: its rows a-e, and row f (the NPU) against its row b")
    ing.add_argument("--out", default="reports", help="folder for the new run folder")
    ing.add_argument("--name", default="npu", help="run folder name prefix")
    ing.add_argument("--no-report", action="store_true", help="write records only, no report.html")
    ing.add_argument("--kernel", default=None, help="Jupyter kernel name (default python3)")
    ing.set_defaults(func=cmd_ingest)
    kt = sub.add_parser("kit", help="write a folder + run_on_npu.sh to run the recipe on an "
                                    "NPU host")
    kt.add_argument("params", help="params YAML (its recipe is the kit's: 'zoorepro recipes')")
    kt.add_argument("out_dir", help="new folder for the kit")
    kt.add_argument("-p", "--param", nargs=2, action="append", metavar=("KEY", "VALUE"),
                    help="override one parameter (VALUE is read as YAML)")
    kt.add_argument("--no-bins", action="store_true",
                    help="do not include the .bin files; the script makes them on the NPU host "
                         "with the recipe's upstream script (its source.scripts.preprocess)")
    kt.set_defaults(func=cmd_kit)
    cmp = sub.add_parser("compare", help="one comparison report of several run folders")
    cmp.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                     help="run folders made by 'zoorepro run' or 'zoorepro ingest' (two or more)")
    cmp.add_argument("--out", default="reports", metavar="DIR",
                     help="folder for the new compare-<time> folder (default: reports)")
    cmp.set_defaults(func=cmd_compare)
    from zoorepro.scale import matrix
    matrix.add_matrix_parser(sub)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and args.command != "lab":
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command == "lab":
        args.extra = list(unknown)
    configure_logging(log_level(args.quiet, args.verbose))
    log.debug(f"zoorepro {args.command}: {sys.executable}, working directory {Path.cwd()}")
    import signal
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        return args.func(args)
    except ZooreproError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"error: {exc.filename}: not found ({exc.strerror}); check the path", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        return _interrupted(exc, args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _terminated(signum, frame):
    """SIGTERM: unwound like Ctrl-C (kernels shut down, the run's lock released)."""
    from zoorepro.runner import RunInterrupted
    raise RunInterrupted(None, signum)


def _interrupted(exc: KeyboardInterrupt, args) -> int:
    """One line: which signal, the run folder and the exact command that continues it."""
    import signal
    signum = getattr(exc, "signum", signal.SIGINT)
    run_dir = getattr(exc, "run_dir", None)
    if run_dir is None and getattr(args, "command", None) == "render":
        run_dir = Path(args.run_dir).resolve()
    name = signal.Signals(signum).name
    if run_dir is None:
        print(f"interrupted ({name}) before a run folder was made; nothing to continue",
              file=sys.stderr)
    else:
        print(f"interrupted ({name}); the run {run_dir} is unfinished; continue it with: "
              f"zoorepro run --resume {run_dir}", file=sys.stderr)
    return 128 + signum


if __name__ == "__main__":
    sys.exit(main())
