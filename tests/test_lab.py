"""``zoorepro lab``: one process (the PID it prints is JupyterLab's; stopping it stops the server
and its kernels), the user's options pass through without a clash, the user's notebooks (a
checkout's notebooks/, else a copy in ./zoorepro-notebooks/, never site-packages), and Run All
in JupyterLab ends with every progress bar green (headless Chromium, selenium)."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT

from zoorepro import cli, lab
from zoorepro.runner import notebooks_dir

NAMES = sorted(p.name for p in notebooks_dir().glob("[0-9][0-9]_*.ipynb"))


class Started(Exception):
    """os.execv stand-in: where JupyterLab would start, with its command line."""


@pytest.fixture
def execv(monkeypatch):
    seen = {}

    def fake(path, argv):
        seen["argv"] = list(argv)
        raise Started
    monkeypatch.setattr(os, "execv", fake)
    return seen


def roots(argv) -> list[str]:
    """The options that name the folder JupyterLab serves."""
    return [a for a in argv if a.split("=", 1)[0] in ("--notebook-dir", "--ServerApp.root_dir")]


# ------------------------------------------------------------ without JupyterLab running
def test_options_pass_through_and_the_users_folder_wins(execv, monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    for given in (["--notebook-dir=/x"], ["--notebook-dir", "/x"], ["--ServerApp.root_dir=/x"],
                  ["--ServerApp.root-dir=/x"], [str(tmp_path)]):
        with pytest.raises(Started):
            cli.main(["lab", "--no-browser", *given, "--allow-root"])
        argv = execv["argv"]
        assert argv[:3] == [sys.executable, "-m", "jupyterlab"], argv
        assert argv[3:] == ["--no-browser", *given, "--allow-root"], argv   # as given, once
    with pytest.raises(Started):
        cli.main(["lab", "--no-browser"])
    assert roots(execv["argv"]) == [f"--ServerApp.root_dir={ROOT / 'notebooks'}"]


def test_a_checkout_is_found_from_below_and_never_inside_site_packages(monkeypatch, tmp_path):
    assert lab.project_notebooks(ROOT / "params") == ROOT / "notebooks"
    assert lab.plan([], cwd=ROOT / "tests").root == ROOT / "notebooks"
    partial = tmp_path / "proj" / "notebooks"
    partial.mkdir(parents=True)
    shutil.copy(notebooks_dir() / NAMES[0], partial)       # one notebook: not a checkout
    assert lab.project_notebooks(partial.parent) is None
    monkeypatch.setattr(lab, "installed_dirs", lambda: [ROOT.resolve()])
    assert lab.project_notebooks(ROOT) is None              # the notebooks pip installed


def test_a_wheel_user_gets_a_working_copy_made_once_and_never_overwritten(monkeypatch, tmp_path,
                                                                          capsys):
    monkeypatch.setattr(lab, "project_notebooks", lambda start=None: None)
    p = lab.plan(["--no-browser"], cwd=tmp_path)
    work = tmp_path / "zoorepro-notebooks"
    assert p.root == work and roots(p.argv) == [f"--ServerApp.root_dir={work}"]
    assert sorted(f.name for f in work.iterdir()) == NAMES
    assert all((work / n).read_bytes() == (notebooks_dir() / n).read_bytes() for n in NAMES)
    assert any(str(work) in note for note in p.notes)
    (work / NAMES[2]).write_text("my edits")
    (work / NAMES[0]).unlink()
    again = lab.plan([], cwd=tmp_path)
    assert (work / NAMES[2]).read_text() == "my edits"                  # never overwritten
    assert (work / NAMES[0]).read_bytes() == (notebooks_dir() / NAMES[0]).read_bytes()
    assert any(NAMES[2] in n and "kept" in n for n in again.notes), again.notes
    # nothing is ever served or saved inside the installed packages
    site = tmp_path / "site-packages"
    monkeypatch.setattr(lab, "installed_dirs", lambda: [site.resolve()])
    (site / "zoorepro").mkdir(parents=True)
    with pytest.raises(lab.LabError, match="site-packages.*folder of your own"):
        lab.plan([], cwd=site / "zoorepro")
    assert not (site / "zoorepro" / "zoorepro-notebooks").exists()
    monkeypatch.chdir(site / "zoorepro")
    assert cli.main(["lab"]) == 2
    assert "error:" in capsys.readouterr().err


def test_a_busy_port_is_refused_and_a_free_one_is_kept(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(lab.LabError, match=f"port {port} is in use.*another --port"):
            lab.plan(["--port", str(port)], cwd=ROOT)
    p = lab.plan([f"--port={port}"], cwd=ROOT)
    assert "--ServerApp.port_retries=0" in p.argv          # that port or an error, no move
    p = lab.plan([f"--port={port}", "--port-retries=3"], cwd=ROOT)
    assert "--ServerApp.port_retries=0" not in p.argv


# ------------------------------------------------------------ JupyterLab for real
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _processes():
    """(pid, parent pid, command line) of every live process but this one."""
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            stat = (d / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if stat[0] != "Z":                                  # a zombie is gone
            yield int(d.name), int(stat[1]), cmd.strip()


def processes_naming(text: str) -> list[str]:
    return [f"{pid}: {cmd}" for pid, _, cmd in _processes() if text in cmd]


def kernel_pids(server) -> list[int]:
    """The server's child processes (its kernels)."""
    return [pid for pid, ppid, _ in _processes() if ppid == server.proc.pid]


class Lab:
    """``zoorepro lab`` started in ``cwd`` with its own Jupyter folders (settings, runtime)."""

    def __init__(self, cwd: Path, home: Path):
        self.port, self.token, self.home = free_port(), "zoorepro-test-token", home
        env = {k: v for k, v in os.environ.items()
               if k not in ("TQDM_DISABLE", "ZOOREPRO_PROGRESS", "JUPYTER_PORT")}
        for key in ("JUPYTER_RUNTIME_DIR", "JUPYTER_CONFIG_DIR", "JUPYTERLAB_WORKSPACES_DIR",
                    "IPYTHONDIR", "JUPYTER_DATA_DIR"):
            env[key] = str(home / key.lower())
        settings = home / "settings"
        env["JUPYTERLAB_SETTINGS_DIR"] = str(settings)
        news = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
        news.parent.mkdir(parents=True)
        news.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        env["JUPYTER_PATH"] = str(Path(sys.prefix) / "share" / "jupyter")
        args = ["--no-browser", f"--port={self.port}", f"--IdentityProvider.token={self.token}"]
        if os.geteuid() == 0:
            args.append("--allow-root")
        self.log = home / "lab.log"
        self.proc = subprocess.Popen([sys.executable, "-m", "zoorepro", "lab", *args], cwd=cwd,
                                     env=env, stdout=self.log.open("w"), stderr=subprocess.STDOUT)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}?token={self.token}"

    def api(self, path: str, method: str = "GET"):
        req = urllib.request.Request(self.url(path), method=method, data=b"{}" if method ==
                                     "POST" else None, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"null")

    def wait_serving(self, timeout: float = 90.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                self.api("/api/status")
                return
            except OSError:
                time.sleep(0.5)
        raise AssertionError(f"not serving after {timeout} s:\n{self.log.read_text()[-3000:]}")

    def stop_by_pid(self) -> None:
        """SIGTERM to the one PID; then nothing may be left of it."""
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running 60 s after SIGTERM:\n"
                                 f"{self.log.read_text()[-3000:]}") from None

    def cleanup(self) -> None:
        """After a failed test: the server (SIGTERM, then SIGKILL) and any kernel of it."""
        kids = kernel_pids(self) if self.proc.poll() is None else []
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        for pid in kids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def assert_nothing_left(server: Lab, kernel_pids) -> None:
    assert not listening(server.port), f"port {server.port} still served after SIGTERM"
    # a clean shutdown: the server's info file ('jupyter server list') and the kernels'
    # connection files are removed
    runtime = server.home / "jupyter_runtime_dir"
    assert sorted(p.name for p in runtime.glob("*.json")) == []
    assert processes_naming(str(server.home)) == []       # the server, its kernels
    alive = {pid for pid, _, _ in _processes()} & set(kernel_pids)
    assert not alive, f"kernels left running: {alive}"


@pytest.mark.e2e
def test_stopping_the_printed_pid_stops_jupyterlab_and_its_kernels(tmp_path):
    work = tmp_path / "work"        # a wheel user's folder: no checkout above /tmp
    work.mkdir()
    server = Lab(work, tmp_path / "jupyter")
    try:
        server.wait_serving()
        runtime = server.home / "jupyter_runtime_dir"         # what 'jupyter server list' reads
        assert [p.name for p in runtime.glob("jpserver-*.json")] == \
            [f"jpserver-{server.proc.pid}.json"]              # the PID known is JupyterLab's
        log = server.log.read_text()
        assert f"pid {server.proc.pid}" in log, log
        assert f"{work / 'zoorepro-notebooks'}" in log, log
        names = sorted(c["name"] for c in server.api("/api/contents")["content"])
        assert [n for n in names if n.endswith(".ipynb")] == NAMES
        server.api("/api/kernels", "POST")
        end = time.monotonic() + 60
        while not kernel_pids(server) and time.monotonic() < end:
            time.sleep(0.3)
        kids = kernel_pids(server)
        assert kids, "no kernel started"
        server.stop_by_pid()
        assert_nothing_left(server, kids)
    finally:
        server.cleanup()


# ------------------------------------------------------------ Run All in a real browser
SMALL_03 = """
# the test's small run (appended by tests/test_lab.py)
max_images = {images}
backends = ['onnxruntime']
infer_streams = 2
batch_sizes = [1]
bench_iterations = 2
bench_min_seconds = 0.0
workers = 1
output_root = {output_root!r}
"""
IMAGES = 16          # two streams: the threaded path whose last images the bar lost
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
PROMPTS = "return Array.from(document.querySelectorAll('.jp-CodeCell .jp-InputPrompt'))" \
          ".map(e => e.textContent.trim())"
KERNEL_IDLE = "return Array.from(document.querySelectorAll('.jp-StatusBar-TextItem'))" \
              ".some(e => /\\| Idle$/.test(e.textContent.trim()))"
BARS = "return Array.from(document.querySelectorAll('.widget-hprogress')).map(e => " \
       "[e.parentElement.textContent.trim(), e.querySelector('.progress-bar').className])"


def project(tmp_path: Path) -> Path:
    """A checkout's layout: notebooks/ (03 with small parameters), the demo and aipp.config
    beside it as the notebooks' default paths expect."""
    import nbformat
    proj = tmp_path / "proj"
    (proj / "notebooks").mkdir(parents=True)
    for name in NAMES:
        shutil.copy(notebooks_dir() / name, proj / "notebooks" / name)
    for name in ("demo", "aipp.config"):
        (proj / name).symlink_to(ROOT / name)
    path = proj / "notebooks" / "03_infer.ipynb"
    nb = nbformat.read(path, as_version=4)
    (cell,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    cell.source += SMALL_03.format(images=IMAGES, output_root=str(tmp_path / "reports"))
    nbformat.write(nb, path)
    return proj


def chromium(profile: Path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed "
                                    "(pip install -e '.[test]')")
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.skip("chromium and chromedriver are needed (Debian: chromium, chromium-driver)")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    opts = Options()
    opts.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", f"--user-data-dir={profile}", "--window-size=1400,1000"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def wait_for(drv, script: str, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if drv.execute_script(script):
            return
        time.sleep(0.5)
    raise AssertionError(f"{what}: not after {timeout} s")


def menu(drv, title: str, command: str) -> None:
    """Click ``title`` in JupyterLab's menu bar, then the item running ``command``."""
    drv.find_element("xpath", f"//li[contains(@class, 'lm-MenuBar-item')]"
                              f"[.//div[text()='{title}']]").click()
    time.sleep(0.5)
    drv.find_element("css selector", f"li.lm-Menu-item[data-command='{command}']").click()


@pytest.mark.e2e
@pytest.mark.browser
def test_run_all_in_03_ends_with_green_progress_bars_then_one_pid_stops_it(tmp_path):
    proj = project(tmp_path)
    server = Lab(proj, tmp_path / "jupyter")
    drv = None
    try:
        server.wait_serving()
        assert f"{proj / 'notebooks'}" in server.log.read_text()    # the checkout's notebooks
        drv = chromium(tmp_path / "chromium-profile")
        drv.set_page_load_timeout(120)
        drv.get(server.url("/lab/tree/03_infer.ipynb"))
        wait_for(drv, KERNEL_IDLE, 120, "the notebook's kernel idle")
        menu(drv, "Run", "runmenu:run-all")
        wait_for(drv, f"const p = ({PROMPTS[7:]}); return p.includes('[*]:')", 30,
                 "Run All started")
        wait_for(drv, f"const p = ({PROMPTS[7:]}); return !p.includes('[*]:')", 240,
                 "Run All finished")
        wait_for(drv, KERNEL_IDLE, 30, "the kernel idle after Run All")
        time.sleep(1.0)                                   # the last widget messages
        drv.execute_script("const b = document.querySelector('.widget-hprogress'); "
                           "if (b) b.scrollIntoView()")
        shot = ROOT / "test-artifacts" / "lab-03-run-all.png"
        shot.parent.mkdir(exist_ok=True)
        drv.save_screenshot(str(shot))
        prompts = drv.execute_script(PROMPTS)
        assert prompts and all(p[1:-2].isdigit() for p in prompts), prompts   # every cell ran
        menu(drv, "File", "docmanager:save")
        saved = proj / "notebooks" / "03_infer.ipynb"
        end = time.monotonic() + 30
        while time.monotonic() < end and not all(
                c.get("execution_count") for c in json.loads(saved.read_text())["cells"]
                if c["cell_type"] == "code"):
            time.sleep(0.5)
        cells = [c for c in json.loads(saved.read_text())["cells"] if c["cell_type"] == "code"]
        errors = [o for c in cells for o in c.get("outputs", []) if o["output_type"] == "error"]
        assert errors == [] and all(c["execution_count"] for c in cells), errors
        bars = drv.execute_script(BARS)
        assert len(bars) >= 2, bars                       # preprocess, onnxruntime bs1
        for text, classes in bars:
            assert "progress-bar-danger" not in classes, f"red progress bar: {text}"
            done = re.search(r"(\d+)/(\d+)", text)      # images, or the sweep's batch sizes
            assert "progress-bar-success" in classes and done and \
                done.group(1) == done.group(2), (text, classes)
            if "sweep" not in text:
                assert f"{IMAGES}/{IMAGES}" in text, (text, classes)
        kids = kernel_pids(server)
        assert kids, "no kernel under the server's PID"
        drv.quit()
        drv = None
        server.stop_by_pid()
        assert_nothing_left(server, kids)
    finally:
        if drv is not None:
            drv.save_screenshot(str(tmp_path / "failure.png"))
            drv.quit()
        server.cleanup()


# ------------------------------------------------------------ progress bars reach their total
class SlowBar:
    """A progress bar whose update takes a while (a notebook widget sending its state)."""

    n = 0

    def update(self, k):
        time.sleep(0.05)
        self.n += k


class SlowReplica:
    def infer(self, x):
        time.sleep(0.02)
        import numpy as np
        return np.zeros((len(x), 1000), np.float32)


def test_the_accuracy_bar_of_several_streams_reaches_its_total(tmp_path):
    """The red bar at 99/100 after Run All in 03 (infer_streams 2): every image counted
    (bench._infer_files reads the count once per update; it read it twice, and a batch a
    stream finished while the bar drew was never counted)."""
    import numpy as np
    from zoorepro.backends import bench
    shape = (224, 224, 3)
    files = [tmp_path / f"img_{i:03d}.bin" for i in range(40)]
    for f in files:
        np.zeros(shape, np.uint8).tofile(f)
    (tmp_path / "out").mkdir()
    bar = SlowBar()
    bench._infer_files([SlowReplica(), SlowReplica()], files, 1, tmp_path / "out", "NPY", shape,
                       bar=bar)
    assert bar.n == len(files)
