"""ais_bench, the recipe's NPU inference tool, as a backend.

``infer(batch)`` uses ``InferSession(device_id, om).infer([batch])`` with the OM built for
that batch size; the accuracy run and the ``--loop`` sweep run the recipe's command lines
(``Artifacts.recipe``'s templates, built by :mod:`zoorepro.ascend.aiscommands`) and read what
ais_bench writes through the contract (:mod:`zoorepro.ascend.aisformat`).

The ``ais_bench`` package (plus its ``aclruntime`` runtime, both built from Ascend/tools
``ais-bench_workload/tool/ais_bench``) is imported only when the backend is created; when
it is missing the error says what to install.  Nothing here fakes an NPU figure: without
the package and an NPU, nothing runs.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from zoorepro.ascend.aiscommands import accuracy_argv, perf_argv, shell_line
from zoorepro.ascend.aisformat import (NAME, list_inputs, perf_dirname, read_summary,
                                       result_dirname, summary_path)
from zoorepro.backends.bench import bench_record
from zoorepro.ascend.atc import (ATC_ASK, cann_version_from_env, detect_soc_version,
                                 npu_device_name, precision_of)
from zoorepro.errors import AisBenchError, IngestError
from zoorepro.files import atomic_copy
from zoorepro.backends.base import AccuracyJob, Artifacts, Backend, SweepJob
from zoorepro.errors import BackendUnavailable

INSTALL_HINT = (
    "ais_bench is not installed here: build and pip-install the two wheels 'aclruntime' and "
    "'ais_bench' from Ascend/tools, folder ais-bench_workload/tool/ais_bench "
    "(https://gitee.com/ascend/tools/tree/master/ais-bench_workload/tool/ais_bench, see its "
    "README), on a host with an Ascend NPU and the CANN toolkit installed, with CANN's "
    "set_env.sh sourced (e.g. source /usr/local/Ascend/ascend-toolkit/set_env.sh)")


def available() -> bool:
    """True when the ``ais_bench`` package can be imported (says nothing about an NPU)."""
    try:
        import ais_bench.infer.interface  # noqa: F401
    except Exception:
        return False
    return True


# ais_bench (infer/common/path_security_check.py) refuses inputs and models that group or
# others can write, and an existing --output folder that they can write or read.
UMASK = 0o027
_INPUT_FORBIDDEN = 0o022
_OUTPUT_FORBIDDEN = 0o027


def prepare_paths(inputs: Sequence = (), output: str | os.PathLike | None = None) -> list[str]:
    """Make what ais_bench will read or write pass its permission checks: take group/other
    write permission off inputs (a folder and its files, or files), and group/other access
    off an existing output folder.  Returns what was changed; a path this user cannot change
    is an error naming it and the command that fixes it."""
    changed = []

    def tighten(path: Path, forbidden: int) -> None:
        mode = path.stat().st_mode & 0o7777
        if mode & forbidden:
            try:
                os.chmod(path, mode & ~forbidden)
            except OSError as exc:
                raise AisBenchError(
                    f"{path}: ais_bench refuses it (mode {mode:o}: group or others may "
                    f"{'write' if forbidden == _INPUT_FORBIDDEN else 'read or write'} it) and "
                    f"it cannot be changed here ({exc.strerror}); run: chmod go-w "
                    f"{shlex.quote(str(path))}") from None
            changed.append(str(path))

    for item in inputs:
        path = Path(item)
        if path.is_dir():
            tighten(path, _INPUT_FORBIDDEN)
            for e in os.scandir(path):
                if e.is_file(follow_symlinks=False):
                    tighten(Path(e.path), _INPUT_FORBIDDEN)
        elif path.is_file():
            tighten(path, _INPUT_FORBIDDEN)
    if output is not None and Path(output).is_dir():
        tighten(Path(output), _OUTPUT_FORBIDDEN)
    return changed


def log_path(output: str | os.PathLike, dirname: str) -> Path:
    """Where a backend call keeps ais_bench's log: beside ``--output``, never inside it
    (ais_bench checks an existing output folder's permissions)."""
    output = Path(output)
    return output.parent / f"{output.name}_logs" / f"{dirname}.log"


def run_command(argv: Sequence[str], log: str | os.PathLike, changed: Sequence[str] = ()) -> int:
    """Run one ais_bench command under umask 027, stdout and stderr kept in ``log`` (which
    first lists the paths whose permissions were tightened for ais_bench); raise on
    failure."""
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w", encoding="utf-8") as fh:
        for path in changed:
            fh.write(f"# zoorepro: took group/other access off {path} (ais_bench refuses it)\n")
        fh.write("+ " + shell_line(argv) + "\n")
        fh.flush()
        proc = subprocess.run(list(argv), stdout=fh, stderr=subprocess.STDOUT, umask=UMASK)
    if proc.returncode != 0:
        raise AisBenchError(f"ais_bench failed (exit {proc.returncode}); see {log}. Check that "
                            f"CANN's set_env.sh was sourced, the .om exists and the device id "
                            f"is free ('npu-smi info')")
    return proc.returncode


def _read_summary(path: Path, log: Path) -> dict:
    if not path.is_file():
        raise AisBenchError(f"ais_bench wrote no {path.name} beside {path.parent}; see {log}")
    try:
        return read_summary(path)
    except IngestError as exc:
        raise AisBenchError(f"{exc}; see {log}") from None


class AisBenchBackend(Backend):
    """The recipe's OMs on an Ascend NPU through ais_bench.

    ``infer(batch)`` uses ``InferSession(device_id, om).infer([batch])`` with the OM built
    for that batch size (static batch, as the recipe's ATC builds them).  Whole-folder
    accuracy runs and the ``--loop`` sweep go through the recipe's CLI
    (:meth:`run_accuracy`, :meth:`run_perf`)."""
    name = NAME

    def __init__(self, artifacts: Artifacts, device: str = "auto", threads: int = 0,
                 device_id: int = 0, soc_version: str = "", cann_version: str = "",
                 precision: str = "", **_):
        try:
            from ais_bench.infer.interface import InferSession
        except ImportError:
            raise BackendUnavailable(INSTALL_HINT) from None
        if not artifacts.om_models:
            raise BackendUnavailable("no .om models: build them with ATC first (atc on PATH, "
                                     "CANN's set_env.sh sourced, soc_version set or npu-smi "
                                     "available)")
        missing = [str(p) for p in artifacts.om_models.values() if not os.path.isfile(p)]
        if missing:
            raise BackendUnavailable(f"{', '.join(missing)}: .om model(s) not found; rerun ATC")
        self._session_cls = InferSession
        self.artifacts = artifacts
        if artifacts.recipe is None:     # its command lines are the recipe's: never a default
            raise BackendUnavailable("the ais_bench backend runs the recipe's ais_bench lines: "
                                     "give it the recipe (Artifacts(recipe=...), as the stages "
                                     "do)")
        self.recipe = artifacts.recipe
        # the .om's precision is ATC's: honoured when it is the one asked for, else refused
        self.precision, self.atc_mode = precision_of([*self.recipe.atc.argv,
                                                      *artifacts.atc_extra_args])
        if precision and precision != self.precision:
            ask = ATC_ASK.get(precision)
            raise BackendUnavailable(
                f"precision {precision}: the recipe's .om models run {self.precision} (ATC "
                f"--precision_mode {self.atc_mode}); " + (
                    f"add {ask} to atc_extra_args for {precision} on the NPU"
                    if ask else f"the ais_bench backend runs no {precision} model (no AMCT "
                                f"quantization here)") + ", or leave precision '' (the recipe's)")
        self.device_id = int(device_id)
        self.threads = threads
        self._sessions: dict = {}
        if not soc_version:
            soc_version = detect_soc_version() or ""
        self.soc_version = soc_version
        self.cann_version = cann_version or cann_version_from_env()
        super().__init__(npu_device_name(soc_version, self.cann_version))

    def session(self, batch_size: int):
        if batch_size not in self._sessions:
            self._sessions[batch_size] = self._session_cls(self.device_id, self._om(batch_size))
        return self._sessions[batch_size]

    def infer(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.uint8)
        out = self.session(batch.shape[0]).infer([batch])
        return np.asarray(out[0], dtype=np.float32).reshape(batch.shape[0], -1)

    def _om(self, batch_size: int) -> str:
        om = self.artifacts.om_models.get(batch_size)
        if om is None:
            raise BackendUnavailable(
                f"no .om for batch size {batch_size} (have "
                f"{', '.join(map(str, sorted(self.artifacts.om_models)))}); the recipe's OMs "
                f"are static-batch: build {self.recipe.om_name(batch_size)}.om with ATC")
        return str(om)

    def run_accuracy(self, job: AccuracyJob) -> dict:
        """The recipe's accuracy command over ``job.files``; returns its summary JSON.
        ais_bench reads a whole folder and refuses symbolic links, so a subset of a folder is
        hard-linked (copied across file systems) into ``job.scratch`` first."""
        inputs = Path(job.input_dir)
        files = list(job.files)
        if len(files) != len(list_inputs(inputs)[0]):
            inputs = Path(job.scratch or Path(job.output).parent / "inputs")
            inputs.mkdir(parents=True, exist_ok=True)
            for f in files:
                if not (inputs / f.name).exists():
                    try:
                        os.link(f, inputs / f.name)
                    except OSError:
                        atomic_copy(f, inputs / f.name)
        summary = self.run_folder(inputs, job.output, job.batch_size, job.outfmt)
        summary.setdefault("foreign_files", [])
        summary.setdefault("e2e_throughput", None)
        return summary

    def run_folder(self, input_dir: str | os.PathLike, output: str | os.PathLike,
                   batch_size: int, outfmt: str = "TXT") -> dict:
        """``python -m ais_bench --input DIR --output OUT ...`` as the recipe runs it."""
        dirname = result_dirname(batch_size)
        om = self._om(batch_size)
        argv = accuracy_argv(self.recipe, om, batch_size, str(input_dir), str(output),
                             dirname, outfmt, self.device_id, python=sys.executable)
        log = log_path(output, dirname)
        run_command(argv, log, prepare_paths([input_dir, om], output))
        return _read_summary(summary_path(output, dirname), log)

    def run_sweep(self, job: SweepJob) -> list[dict]:
        """The recipe's ``--loop`` pure inference (``ais_bench.loop``) at every batch size
        (device compute only, zero input), one record per summary."""
        info = self.info()
        out = Path(job.output)
        return [bench_record(self.run_perf(bs, out), summary_path(out, perf_dirname(bs)),
                             info["device"], info.get("version", ""))
                for bs in job.settings.batch_sizes]

    def run_perf(self, batch_size: int, output: str | os.PathLike,
                 loop: int | None = None) -> dict:
        """The recipe's ``--loop`` pure-inference command (zero input; ``loop`` defaults to
        the recipe's); returns its summary."""
        dirname = perf_dirname(batch_size)
        om = self._om(batch_size)
        argv = perf_argv(self.recipe, om, batch_size, loop, self.device_id, str(output),
                         dirname, python=sys.executable)
        log = log_path(output, dirname)
        run_command(argv, log, prepare_paths([om], output))
        return _read_summary(summary_path(output, dirname), log)

    def close(self) -> None:
        """ais_bench's teardown (``infer_process.main``): ``free_resource()`` on each session,
        then the static ``InferSession.finalize()`` once."""
        if not self._sessions:
            return
        problems = []
        for s in self._sessions.values():
            try:
                s.free_resource()
            except Exception as exc:     # keep freeing the others
                problems.append(f"free_resource: {exc}")
        self._sessions.clear()
        try:
            self._session_cls.finalize()
        except Exception as exc:
            problems.append(f"finalize: {exc}")
        if problems:
            raise AisBenchError("ais_bench teardown failed: " + "; ".join(problems))

    def info(self) -> dict:
        versions = []
        for pkg in ("ais_bench", "aclruntime"):
            try:
                from importlib import metadata
                versions.append(f"{pkg} {metadata.version(pkg)}")
            except Exception:
                versions.append(f"{pkg} ?")
        return {**super().info(), "device_id": self.device_id, "soc_version": self.soc_version,
                "cann": self.cann_version, "version": ", ".join(versions),
                "precision": self.precision}
