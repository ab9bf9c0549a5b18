"""End to end with papermill: notebooks -> run folder -> report.html (a few images)."""
import json
import os
import re

import pytest

from zoorepro import config
from zoorepro import runner
from zoorepro.run.folder import Run

from conftest import small_params

pytestmark = pytest.mark.e2e


def test_run_folder_layout(finished_run):
    """The shared finished run (conftest: onnxruntime and torch, batch sizes 1 and 4)."""
    root = finished_run
    for name in ("report.html", "result.json", "metrics.json", "params.yaml"):
        assert (root / name).is_file(), name
    assert not (root / ".lock").exists()          # held while its own kernels ran, then released
    for nb in ("01_preprocess", "02_export", "03_infer", "04_evaluate", "05_ladder", "06_report"):
        assert (root / "notebooks" / f"{nb}.ipynb").is_file()
    assert json.loads((root / "metrics.json").read_text())["backend"] == "onnxruntime"
    assert (root / "results" / "torch" / "metrics.json").is_file()
    bench = json.loads((root / "records" / "bench.json").read_text())["records"]
    assert {(r["backend"], r["batch_size"]) for r in bench} == {
        ("onnxruntime", 1), ("onnxruntime", 4), ("torch", 1), ("torch", 4)}


def test_report_is_self_contained_and_complete(finished_run):
    html = (finished_run / "report.html").read_text()
    assert not re.search(r'<script[^>]+src=', html)
    assert not re.search(r'(src|href)="https?://', html)
    assert re.search(r'<img alt="Throughput by batch size" class="zr-plot" '
                     r'src="data:image/png;base64,', html)
    for text in ("Acc@1", "57.32", "58.18", "recipe Ascend310P3", "Throughput by batch size",
                 "not run here", "Provenance", "sha256", "Environment", "onnxruntime", "torch",
                 "0 tench", "Cross-backend parity", "100.00 %"):
        assert text in html, text
    assert "stages.ensure_for_report" not in html                # code hidden
    assert len(html) < 3_000_000


def test_failing_notebook_keeps_partial_report(tmp_path):
    """An aipp.config with an unknown field stops 02_export: the executed notebook is kept
    with its failing cell, the CLI exits 1 naming notebook and cell, a partial report says so."""
    import subprocess
    import sys
    from pathlib import Path
    import yaml
    from conftest import AIPP_CONFIG
    bad = tmp_path / "aipp.config"
    bad.write_text(AIPP_CONFIG.read_text().replace("crop: false",
                                                   "crop: false\n    colour_boost : 1"))
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(small_params(tmp_path, aipp_config=str(bad), max_images=3,
                                             batch_sizes=[1])))
    r = subprocess.run([sys.executable, "-m", "zoorepro", "run", str(p)], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 1
    assert "notebook 02_export.ipynb failed at cell" in r.stderr
    assert "aipp.config:9: unknown AIPP field 'colour_boost'" in r.stderr
    run_dir = Path(r.stdout.strip().splitlines()[-1])
    nb = json.loads((run_dir / "notebooks" / "02_export.ipynb").read_text())
    assert any(o.get("output_type") == "error" for c in nb["cells"] for o in c.get("outputs", []))
    assert not (run_dir / "notebooks" / "03_infer.ipynb").exists()       # stopped there
    html = (run_dir / "report.html").read_text()
    assert "This run failed" in html and "02_export.ipynb" in html and "colour_boost" in html
    assert (run_dir / "records" / "preprocess.json").is_file()   # what did run is shown


# ------------------------------------------------ every route gives the same run
def _records(root):
    from test_golden import _records as normalised
    return normalised(root)


def test_papermill_cli_route_gives_the_same_records(tmp_path):
    """papermill's own CLI, from the repository root and from notebooks/, with -f params/demo.yaml
    and one run_dir passed to every notebook, then zoorepro render == zoorepro run."""
    import subprocess
    import sys
    from conftest import ROOT
    extra = ["-p", "max_images", "4", "-y", "batch_sizes: [1]", "-y", "backends: [onnxruntime]"]
    cli_cfg = config.load(ROOT / "params" / "demo.yaml", {"max_images": 4, "batch_sizes": [1],
                                                          "backends": ["onnxruntime"],
                                                          "output_root": str(tmp_path / "cli")})
    reference = runner.run_all(cli_cfg)
    assert reference.ok
    for where, params in ((ROOT, "params/demo.yaml"), (ROOT / "notebooks", "../params/demo.yaml")):
        run_dir = tmp_path / f"pm-{where.name}"
        for nb in ("01_preprocess", "02_export", "03_infer", "04_evaluate"):
            r = subprocess.run([sys.executable, "-m", "papermill",
                                f"{'notebooks/' if where == ROOT else ''}{nb}.ipynb",
                                str(tmp_path / f"{nb}.ipynb"), "-f", params, "-p", "run_dir",
                                str(run_dir), *extra], cwd=where, capture_output=True, text=True)
            assert r.returncode == 0, r.stderr[-3000:]
        r = subprocess.run([sys.executable, "-m", "zoorepro", "render", str(run_dir)],
                           capture_output=True, text=True)
        assert r.returncode == 0 and (run_dir / "report.html").is_file(), r.stderr[-2000:]
        got, want = _records(run_dir), _records(reference.run_dir)
        assert got == want


def test_resume_continues_a_failed_run_and_keeps_what_ran(tmp_path, monkeypatch):
    cfg = config.from_mapping(small_params(tmp_path, max_images=3, batch_sizes=[1],
                                           backends=["onnxruntime"]))
    from zoorepro.run import records
    real = runner._execute_recording

    def failing_infer(nb, run, kernel, progress=True):
        if nb != "03_infer.ipynb":
            return real(nb, run, kernel, progress)
        failure = records.FailureRecord(notebook=nb, cell="1", error="RuntimeError: injected")
        run.write(failure)
        return failure.to_json()
    monkeypatch.setattr(runner, "_execute_recording", failing_infer)
    first = runner.run_all(cfg)
    assert not first.ok and first.failure["notebook"] == "03_infer.ipynb"
    kept = (first.run_dir / "records" / "dataset.json").read_bytes()
    monkeypatch.setattr(runner, "_execute_recording", real)
    lines = []
    before = dict(os.environ)
    second = runner.run_all(resume=Run.open(first.run_dir), say=lines.append)
    assert dict(os.environ) == before         # the kernels' environment is theirs alone
    assert second.ok and second.run_dir == first.run_dir and Run.open(first.run_dir).finished
    assert "01_preprocess.ipynb: done earlier, kept" in lines
    assert (first.run_dir / "records" / "dataset.json").read_bytes() == kept


def test_a_dead_kernel_still_leaves_a_partial_report(tmp_path, monkeypatch):
    """The kernel of 03_infer is killed (kill -9, as the OOM killer does): the run stops there
    with a failure record naming it, and report.html shows what did run."""
    import shutil
    import nbformat
    nbs = tmp_path / "nbs"
    shutil.copytree(runner.notebooks_dir(), nbs)
    nb = nbformat.read(str(nbs / "03_infer.ipynb"), as_version=4)
    nb.cells.insert(3, nbformat.v4.new_code_cell(
        "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"))
    nbformat.write(nb, str(nbs / "03_infer.ipynb"))
    monkeypatch.setattr(runner, "notebooks_dir", lambda: nbs)
    cfg = config.from_mapping(small_params(tmp_path, max_images=2, batch_sizes=[1],
                                           backends=["onnxruntime"]))
    out = runner.run_all(cfg)
    assert not out.ok and out.failure["notebook"] == "03_infer.ipynb"
    assert "kernel died" in out.failure["error"]
    assert (out.run_dir / "records" / "failure.json").is_file()
    html = (out.run_dir / "report.html").read_text()
    assert "This run failed" in html and "03_infer.ipynb" in html and "kernel died" in html


def test_a_notebook_opened_alone_continues_the_unfinished_run(tmp_path, monkeypatch):
    """01 then 02 opened alone (run_dir empty, as in JupyterLab): 02 continues 01's run."""
    monkeypatch.chdir(runner.notebooks_dir())
    params = {**small_params(tmp_path, max_images=2, batch_sizes=[1], backends=["onnxruntime"]),
              "run_dir": ""}
    first = runner.open_from_notebook(params, stage="preprocess")
    from zoorepro.run import stages
    stages.run_preprocess(first)
    again = runner.open_from_notebook(params, stage="export")
    assert again == first
    stages.run_export(again)
    (first / "report.html").write_text("done")                 # once finished, never reused
    assert runner.open_from_notebook(params, stage="export") != first


# ------------------------------------------------ one process at a time on a run (.lock)
@pytest.fixture
def held_elsewhere():
    """start(folder): another process holds the folder's run lock until the test ends."""
    from test_runlock import start_holder, stop_holders
    procs: list = []
    yield lambda folder: start_holder(folder, procs)
    stop_holders(procs)


def _small_run(tmp_path, **extra):
    return Run.create(config.from_mapping(small_params(
        tmp_path, max_images=2, batch_sizes=[1], backends=["onnxruntime"], **extra)))


def _fake_notebooks(monkeypatch, seen):
    """Stages that only record who holds the lock while they 'run'."""
    from zoorepro.run import runlock

    def fake(nb, run, kernel, progress=True):
        seen.append((nb, (runlock.holder(run.root) or {}).get("pid"),
                     runlock.kernel_env(run.root)))
    monkeypatch.setattr(runner, "_execute_recording", fake)


def test_run_all_holds_the_lock_throughout_and_releases_it(tmp_path, monkeypatch):
    import os
    from zoorepro.errors import DataError
    seen = []
    _fake_notebooks(monkeypatch, seen)
    out = runner.run_all(config.from_mapping(small_params(tmp_path)))
    assert [nb for nb, _, _ in seen][-1] == "06_report.ipynb" and len(seen) == 6
    assert all(pid == os.getpid() and env for _, pid, env in seen)   # held; token for kernels
    assert not (out.run_dir / ".lock").exists()

    def broken(nb, run, kernel, progress=True):
        raise DataError("injected")
    monkeypatch.setattr(runner, "_execute_recording", broken)
    with pytest.raises(DataError, match="injected"):
        runner.run_all(resume=Run.open(out.run_dir))
    assert not (out.run_dir / ".lock").exists()


def test_a_ctrl_c_swallowed_on_the_way_still_stops_the_run(tmp_path, monkeypatch):
    """asyncio's SIGINT handler (nbclient's loop) cancels a task that may swallow it: the
    run must stop anyway, naming its folder, and leave SIGINT's handler as it was."""
    import os
    import signal
    import time
    ran = []

    def swallowing(nb, run, kernel, progress=True):
        ran.append(nb)
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        except KeyboardInterrupt:
            pass                                  # what a cancelled task may do with it
    monkeypatch.setattr(runner, "_execute_recording", swallowing)
    # Python's own handler, as in a terminal (a suite started in the background by a
    # non-interactive shell inherits SIGINT ignored, which run_all rightly leaves alone)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(runner.RunInterrupted) as exc:
            runner.run_all(config.from_mapping(small_params(tmp_path)))
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler   # put back
    finally:
        signal.signal(signal.SIGINT, previous)
    assert ran == ["01_preprocess.ipynb"] and exc.value.signum == signal.SIGINT
    assert exc.value.run_dir is not None and exc.value.run_dir.is_dir()


def test_a_run_in_flight_is_refused_to_resume_and_to_notebooks(tmp_path, monkeypatch,
                                                               held_elsewhere):
    from zoorepro.run import runlock
    from zoorepro.errors import ZooreproError
    from zoorepro.run import stages
    run = _small_run(tmp_path)
    stages.run_preprocess(run, progress=False)          # 02 opened alone would continue it
    proc = held_elsewhere(run.root)
    seen = []
    _fake_notebooks(monkeypatch, seen)
    for attempt in (lambda: runner.run_all(resume=Run.open(run.root)),
                    lambda: runner.run_all(run.config),                   # -p run_dir
                    lambda: runner.open_from_notebook({"run_dir": str(run.root)}, "export")):
        with pytest.raises(ZooreproError) as exc:
            attempt()
        msg = str(exc.value)
        assert str(run.root) in msg and f"in use by process {proc.pid}" in msg
        assert f"zoorepro run --resume {run.root}" in msg
    assert seen == []                                  # nothing ran into it
    params = {**small_params(tmp_path, max_images=2, batch_sizes=[1],
                             backends=["onnxruntime"]), "run_dir": ""}
    with pytest.raises(ZooreproError, match="in use by process"):     # opened alone
        runner.open_from_notebook(params, "export")
    monkeypatch.setenv(runlock.TOKEN_ENV, runlock.holder(run.root)["token"])
    assert runner.open_from_notebook({"run_dir": str(run.root)}, "export") == run   # its kernel



# ------------------------------------------------ what a notebook is given is what it uses
def _notebook_namespace(nb: str, **injected) -> dict:
    """A kernel's globals after a notebook's parameters cell and papermill's injected cell
    (``In``: IPython's input history, as papermill leaves it)."""
    import nbformat
    cells = nbformat.read(str(runner.notebooks_dir() / nb), as_version=4).cells
    src = next(c.source for c in cells if "parameters" in c.metadata.get("tags", []))
    ns: dict = {}
    exec(src, ns)
    history = ["", src]
    if injected:
        history.append("# Parameters\n" + "".join(f"{k} = {v!r}\n" for k, v in injected.items()))
        exec(history[-1], ns)
    ns["In"] = history
    return ns


def test_parameters_beside_an_existing_run_dir_are_refused_not_ignored(tmp_path):
    from zoorepro.errors import ZooreproError
    run = _small_run(tmp_path)
    ns = _notebook_namespace("03_infer.ipynb", run_dir=str(run.root), accuracy_batch_size=4,
                             outfmt="NPY", backends="[torch]", max_images=2)
    with pytest.raises(ZooreproError) as exc:
        runner.open_from_notebook(ns, "infer")
    assert str(exc.value) == (
        f"{run.root}: this unfinished run was made with other parameters (accuracy_batch_size, "
        f"backends, outfmt); continue it with its own params.yaml (zoorepro run --resume "
        f"{run.root}) or leave run_dir empty for a new run")
    # only run_dir (the runner's own route), or values the run has: its own params
    assert runner.open_from_notebook(_notebook_namespace("03_infer.ipynb", run_dir=str(run.root)),
                                     "infer") == run
    same = _notebook_namespace("03_infer.ipynb", run_dir=str(run.root), max_images=2,
                               backends="[onnxruntime]", batch_sizes=[1])
    assert runner.open_from_notebook(same, "infer") == run
    hand = {**_notebook_namespace("03_infer.ipynb"), "run_dir": str(run.root), "outfmt": "BIN"}
    with pytest.raises(ZooreproError, match=r"other parameters \(outfmt\)"):   # edited by hand
        runner.open_from_notebook(hand, "infer")


def test_notebooks_opened_alone_from_one_folder_agree_on_paths(tmp_path, monkeypatch, capsys):
    """A clone of the project beside the installed zoorepro: every notebook opened alone from
    its notebooks/ takes every path (declared or not) from that clone, and prints them."""
    import shutil
    from conftest import AIPP_CONFIG, DEMO_IMAGES, DEMO_LABELS, DEMO_WEIGHTS
    from zoorepro.config import PATH_KEYS
    clone = tmp_path / "clone"
    images = clone / "demo" / "imagenet-sample-100" / "images"
    images.mkdir(parents=True)
    for p in sorted(DEMO_IMAGES.iterdir())[:2]:
        shutil.copy(p, images)
    shutil.copy(DEMO_LABELS, images.parent)
    (clone / "demo" / "weights").mkdir()
    shutil.copy(DEMO_WEIGHTS, clone / "demo" / "weights")
    shutil.copy(AIPP_CONFIG, clone)
    (clone / "notebooks").mkdir()
    monkeypatch.chdir(clone / "notebooks")
    used = {}
    for nb, stage in (("01_preprocess.ipynb", "preprocess"), ("02_export.ipynb", "export"),
                      ("03_infer.ipynb", "infer"), ("04_evaluate.ipynb", "evaluate"),
                      ("06_report.ipynb", None)):
        run = runner.open_from_notebook(_notebook_namespace(nb), stage)
        used[nb] = {k: getattr(run.config, k) for k in PATH_KEYS if k != "run_dir"}
    assert all(u == used["01_preprocess.ipynb"] for u in used.values()), used
    for key in ("data_dir", "label_file", "weights", "output_root"):
        assert used["01_preprocess.ipynb"][key].startswith(f"{clone}/"), key
    # the AIPP config is the recipe's, shipped with zoorepro (a recipe is data of the package)
    from zoorepro import recipebook
    assert used["01_preprocess.ipynb"]["aipp_config"] == recipebook.load("squeezenet1_1").aipp_path
    assert used["01_preprocess.ipynb"]["recipe"] == "squeezenet1_1"
    printed = capsys.readouterr().out
    assert f"  weights      {clone / 'demo' / 'weights' / DEMO_WEIGHTS.name}\n" in printed


# ------------------------------------------------ render: absolute paths, never a new run
def test_notebooks_get_an_absolute_run_dir(tmp_path, monkeypatch):
    import papermill as pm
    seen = {}
    monkeypatch.setattr(pm, "execute_notebook",
                        lambda src, dst, parameters, **kw: seen.update(parameters))
    monkeypatch.chdir(tmp_path)
    runner.execute("06_report.ipynb", Run("reports/my-run"))
    assert seen["run_dir"] == str(tmp_path / "reports" / "my-run")


def test_the_report_notebook_never_starts_a_run(tmp_path):
    from zoorepro.errors import ZooreproError
    where = tmp_path / "reports" / "my-run"
    with pytest.raises(ZooreproError, match="not a run folder"):
        runner.open_from_notebook({"run_dir": str(where)}, stage=None)
    assert not where.exists()


def test_the_report_notebook_opened_alone_says_which_command_finishes_the_run(
        tmp_path, capsys, monkeypatch):
    from zoorepro import config
    from zoorepro import runner
    from zoorepro.run import runlock
    from zoorepro.run.folder import Run
    from conftest import small_params
    run = Run.create(config.from_mapping(small_params(tmp_path)))
    monkeypatch.delenv(runlock.TOKEN_ENV, raising=False)
    runner.finish_hint(run)
    assert f"zoorepro render {run.root.resolve()}" in capsys.readouterr().out
    monkeypatch.setenv(runlock.TOKEN_ENV, "the runner's kernel")    # zoorepro's own route
    runner.finish_hint(run)
    assert capsys.readouterr().out == ""
    nb = (runner.notebooks_dir() / "06_report.ipynb").read_text()
    assert "runner.finish_hint(run)" in nb


def test_each_kernel_gets_its_own_environment_and_ours_is_left_alone(tmp_path, monkeypatch):
    """The run lock's token and where the progress bars go (``-q``: off) reach the kernel's
    launch as its env; this process's os.environ is the same before, during and after."""
    import asyncio
    import papermill as pm
    from jupyter_client.manager import AsyncKernelManager
    from zoorepro.host import PROGRESS_ENV
    from zoorepro.run import runlock
    launched, during = [], []

    async def start_kernel(self, **kw):          # what jupyter_client would launch with
        launched.append(kw["env"])

    def execute_notebook(src, dst, parameters, kernel_manager_class, **kw):
        during.append(dict(os.environ))
        asyncio.run(kernel_manager_class(kernel_name="python3").start_kernel(extra_arguments=[]))
    monkeypatch.setattr(AsyncKernelManager, "start_kernel", start_kernel)
    monkeypatch.setattr(pm, "execute_notebook", execute_notebook)
    run = _small_run(tmp_path)
    before = dict(os.environ)
    with runlock.hold(run.root):
        runner.execute("06_report.ipynb", run, progress=False)
        runner.execute("06_report.ipynb", run)
        token = runlock.kernel_env(run.root)[runlock.TOKEN_ENV]
    assert dict(os.environ) == before and during == [before, before]
    quiet, loud = launched
    assert (quiet[PROGRESS_ENV], loud[PROGRESS_ENV]) == ("off", "terminal")
    assert quiet[runlock.TOKEN_ENV] == loud[runlock.TOKEN_ENV] == token
    assert {k: v for k, v in quiet.items() if k not in (PROGRESS_ENV, runlock.TOKEN_ENV)} == {
        k: v for k, v in before.items() if k not in (PROGRESS_ENV, runlock.TOKEN_ENV)}


def test_run_all_hands_progress_to_every_notebook(tmp_path, monkeypatch):
    """``progress`` (False: ``zoorepro -q``, the matrix's runs) reaches each notebook's
    kernel, the report's too; the stage lines go to ``say``."""
    got, lines = [], []
    monkeypatch.setattr(runner, "_execute_recording",
                        lambda nb, run, kernel, progress=True: got.append((nb, progress)))
    runner.run_all(config.from_mapping(small_params(tmp_path)), say=lines.append,
                   progress=False)
    assert len(got) == 6 and not any(progress for _, progress in got)
    assert lines[0].startswith("run folder: ") and "01_preprocess.ipynb: running" in lines
