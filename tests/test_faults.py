"""Fault injection: what the machine does to a run (a preprocessing worker killed as the
out-of-memory killer does, a disk that fills up mid-run).  The run must stop with a message
that names the cause, keep what it wrote, and still render its partial report.

Faults are injected into the run's own processes (the CLI, the papermill kernel and the
preprocessing workers it forks) by a ``sitecustomize`` module on PYTHONPATH, driven by
environment variables; the library holds no test hook.  A full disk is a small tmpfs in a
private mount namespace where ``unshare`` is permitted, else a file-size limit
(RLIMIT_FSIZE) on the workers."""
from __future__ import annotations

import html
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DEMO_IMAGES, ROOT

pytestmark = pytest.mark.e2e

SITECUSTOMIZE = '''
import os, resource, shutil, signal
_MAIN = os.getpid()
_KILL = os.environ.get("ZOOREPRO_FAULT_KILL")      # image: the worker preprocessing it is SIGKILLed
_FSIZE = os.environ.get("ZOOREPRO_FAULT_FSIZE")    # image: from it on, its worker may not write
_FILL = os.environ.get("ZOOREPRO_FAULT_FILL")      # bytes left on the .bin disk after the check
if _KILL or _FSIZE or _FILL:
    from zoorepro.recipe import inputs, preprocess
    _load, _check = preprocess.load_rgb, inputs.check_free_space

    def load_rgb(path, spec, fast=True):
        name = os.path.basename(str(path))
        if os.getpid() != _MAIN and name == _KILL:
            os.kill(os.getpid(), signal.SIGKILL)
        if os.getpid() != _MAIN and name == _FSIZE:
            resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, resource.RLIM_INFINITY))
        return _load(path, spec, fast)

    def check_free_space(folder, *args, **kwargs):   # the check passes; then the disk fills up
        _check(folder, *args, **kwargs)
        if _FILL:
            with open(os.path.join(folder, ".someone-elses-file"), "wb") as fh:
                fh.write(bytes(max(0, shutil.disk_usage(folder).free - int(_FILL))))

    preprocess.load_rgb, inputs.check_free_space = load_rgb, check_free_space
'''
IMAGES = 24


def _unshare_tmpfs_works(tmp_path: Path) -> bool:
    if not shutil.which("unshare"):
        return False
    d = tmp_path / "probe"
    d.mkdir()
    r = subprocess.run(["unshare", "-rm", "sh", "-c", 'mount -t tmpfs -o size=1m tmpfs "$0"',
                        str(d)], capture_output=True)
    return r.returncode == 0


def run_cli(tmp_path: Path, env: dict, bin_dir: Path, tmpfs_bytes: int = 0):
    """``zoorepro run`` on the first IMAGES demo images with two preprocessing workers."""
    fault = tmp_path / "fault"
    fault.mkdir(exist_ok=True)
    (fault / "sitecustomize.py").write_text(SITECUSTOMIZE)
    argv = [str(Path(sys.executable).parent / "zoorepro"), "run",
            str(ROOT / "params" / "demo.yaml"),
            "-p", "max_images", str(IMAGES), "-p", "workers", "2",
            "-p", "backends", "[onnxruntime]",
            "-p", "output_root", str(tmp_path / "reports"), "-p", "bin_dir", str(bin_dir)]
    if tmpfs_bytes:   # bin_dir on a small tmpfs of its own, in a private mount namespace;
        bin_dir.mkdir(parents=True, exist_ok=True)     # what it holds is listed in <bin_dir>.ls
        argv = ["unshare", "-rm", "sh", "-c", f'mount -t tmpfs -o size={tmpfs_bytes} tmpfs "$0" '
                f'&& shift && "$@"; rc=$?; ls "$0" > "$0.ls"; exit $rc', str(bin_dir), "sh", *argv]
    full_env = dict(os.environ, TQDM_DISABLE="1", **env,
                    PYTHONPATH=os.pathsep.join([str(fault), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(argv, capture_output=True, text=True, env=full_env, timeout=300,
                          cwd=ROOT)
    run_dir = Path(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else None
    return proc, run_dir


def check_partial_report(run_dir: Path, *words: str) -> None:
    report = run_dir / "report.html"
    assert report.is_file(), "the partial report was not rendered"
    text = html.unescape(report.read_text(encoding="utf-8"))
    assert "This run failed" in text and "01_preprocess.ipynb" in text
    for w in words:
        assert w in text, w


def names() -> list[str]:
    from zoorepro.recipe import data
    return [p.name for p in data.list_images(DEMO_IMAGES, IMAGES)]


def test_a_killed_preprocessing_worker_stops_the_run_and_keeps_its_work(tmp_path):
    """The CLI waited forever at 1,986/2,000 when the OOM killer took a worker: now the run
    stops naming the cause, the .bin files written are kept and reused, and the partial
    report is rendered."""
    bins = tmp_path / "bins"
    proc, run_dir = run_cli(tmp_path, {"ZOOREPRO_FAULT_KILL": names()[IMAGES // 2]}, bins)
    assert proc.returncode == 1, proc.stderr
    assert "a preprocessing process died (killed by signal 9" in proc.stderr
    assert "set workers lower or free memory" in proc.stderr
    kept = sorted(p.name for p in bins.glob("*.bin"))
    assert 0 < len(kept) < IMAGES
    check_partial_report(run_dir, "preprocessing stopped after", "killed by signal 9")
    from zoorepro import recipebook
    from zoorepro.recipe import data, preprocess
    spec = recipebook.load(recipebook.DEFAULT).preprocess
    again = preprocess.preprocess_folder(data.list_images(DEMO_IMAGES, IMAGES), bins, spec, 1,
                                         False)
    assert again.reused >= len(kept) - 2 and again.ok == IMAGES and not again.failed


def test_a_disk_filling_up_mid_run_stops_with_the_path_and_the_cause(tmp_path):
    """A disk that fills after the free-space check (another process writes to it): the run
    stops at the first write error naming the .bin file and 'disk full' (or 'file too large'
    under a file-size limit), keeps the files written, and renders the partial report."""
    bins = tmp_path / "bins"
    if _unshare_tmpfs_works(tmp_path):
        env, size, cause = {"ZOOREPRO_FAULT_FILL": str(4 * 155_000)}, 8_000_000, "disk full"
    else:
        env, size, cause = {"ZOOREPRO_FAULT_FSIZE": names()[IMAGES // 2]}, 0, "file too large"
    proc, run_dir = run_cli(tmp_path, env, bins, size)
    assert proc.returncode == 1, proc.stderr
    assert f"cannot be written: {'no space left on the device (disk full)' if size else cause}" \
        in proc.stderr
    assert f"{bins}/" in proc.stderr and ".bin: cannot be written" in proc.stderr
    assert "Fix or remove these files" not in proc.stderr          # the images are not to blame
    check_partial_report(run_dir, "preprocessing stopped after", cause)
    kept = (Path(f"{bins}.ls").read_text().split() if size else [p.name for p in bins.iterdir()])
    assert 0 < len([n for n in kept if n.endswith(".bin")]) < IMAGES        # the work is kept


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_names_the_run_and_the_command_that_continues_it(tmp_path, signum):
    """SIGTERM (to the CLI) or Ctrl-C (SIGINT to the terminal's process group, kernels too)
    while 02_export runs: one line naming the run folder and the exact resume command, no
    traceback (no kernel ZMQError), exit 143 / 130, and the run's lock released."""
    import threading
    import yaml
    from conftest import small_params
    params = tmp_path / "p.yaml"
    params.write_text(yaml.safe_dump(small_params(tmp_path, max_images=2, batch_sizes=[1])))
    # SIGINT as a terminal's foreground job has it: a suite started in the background by a
    # non-interactive shell ignores SIGINT, and its children would inherit that
    proc = subprocess.Popen([sys.executable, "-m", "zoorepro", "run", str(params)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env=dict(os.environ, TQDM_DISABLE="1"),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines: list[str] = []
    started = threading.Event()

    def read():
        for line in proc.stderr:
            lines.append(line)
            if "02_export.ipynb: running" in line:
                started.set()
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert started.wait(240), "".join(lines)
        import time
        time.sleep(2)                                     # inside the notebook's cells
        if signum == signal.SIGINT:
            os.killpg(proc.pid, signal.SIGINT)            # Ctrl-C: the whole process group
        else:
            proc.send_signal(signal.SIGTERM)
        proc.wait(120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    reader.join(10)
    err = "".join(lines)
    assert proc.returncode == 128 + signum, err
    (run_dir,) = (tmp_path / "reports").glob("t-*")
    name = signal.Signals(signum).name
    tail = err[err.index("02_export.ipynb: running"):].strip().splitlines()[1:]
    assert tail == [f"interrupted ({name}); the run {run_dir} is unfinished; continue it with: "
                    f"zoorepro run --resume {run_dir}"], err
    assert "Traceback" not in err and "ZMQError" not in err and "RUN_DIR" not in err
    assert not (run_dir / ".lock").exists() and not (run_dir / "report.html").exists()
