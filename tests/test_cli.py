import ast
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, small_params


def zoorepro(*args, cwd=ROOT, env=None):
    return subprocess.run([sys.executable, "-m", "zoorepro", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=900, env=env)


@pytest.fixture
def zoorepro_logger():
    """The ``zoorepro`` logger as it was before the test (cli.main configures it)."""
    logger = logging.getLogger("zoorepro")
    level, handlers = logger.level, list(logger.handlers)
    yield logger
    logger.setLevel(level)
    logger.handlers[:] = handlers


@pytest.mark.e2e
def test_run_prints_run_folder_last_and_overrides_apply(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(small_params(tmp_path)))
    r = zoorepro("run", str(p), "-p", "max_images", "4", "-p", "batch_sizes", "[2]")
    assert r.returncode == 0, r.stderr[-3000:]
    run_dir = Path(r.stdout.strip().splitlines()[-1])
    assert run_dir.parent == tmp_path / "reports" and (run_dir / "report.html").is_file()
    params = yaml.safe_load((run_dir / "params.yaml").read_text())
    assert params["max_images"] == 4 and params["batch_sizes"] == [2]


def test_bad_params_exit_2_with_message(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("batch_sizes: [0]\nfoo: 1\n")
    r = zoorepro("run", str(p))
    assert r.returncode == 2
    assert "unknown key 'foo'" in r.stderr and "batch_sizes" in r.stderr
    assert "valid keys:" in r.stderr


def test_version_and_exit_codes_are_documented():
    r = zoorepro("--version")
    assert r.returncode == 0 and r.stdout.startswith("zoorepro ")
    h = zoorepro("--help")
    assert "exit codes: 0 done, 1 a notebook failed" in h.stdout and "-q, --quiet" in h.stdout


def test_lab_passes_its_options_to_jupyterlab(monkeypatch):
    import os
    from zoorepro import cli

    class Execd(Exception):
        pass
    seen = {}

    def execv(path, argv):
        seen["argv"] = argv
        raise Execd
    monkeypatch.setattr(os, "execv", execv)      # zoorepro lab becomes JupyterLab (one PID)
    monkeypatch.chdir(ROOT)
    import socket
    with socket.socket() as s:              # a free port: a busy one is refused before JupyterLab
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    with pytest.raises(Execd):
        cli.main(["lab", "--no-browser", "--allow-root", "--port", port])
    argv = seen["argv"]
    assert argv[1:3] == ["-m", "jupyterlab"] and argv[-4:] == ["--no-browser", "--allow-root",
                                                              "--port", port]
    assert argv[3] == f"--ServerApp.root_dir={ROOT / 'notebooks'}"
    assert zoorepro("run", "x.yaml", "--no-such-option").returncode == 2


@pytest.mark.e2e
def test_quiet_prints_only_the_run_folder(tmp_path):
    """-q: the run folder on stdout, nothing on stderr, no progress bar from the kernels
    (the tests' TQDM_DISABLE is not given here: the kernels are told by zoorepro)."""
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(small_params(tmp_path, max_images=2, batch_sizes=[1],
                                             backends=["onnxruntime"])))
    env = {k: v for k, v in os.environ.items() if k not in ("TQDM_DISABLE", "ZOOREPRO_PROGRESS")}
    r = zoorepro("-q", "run", str(p), env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().count("\n") == 0
    assert "running" not in r.stderr and "done in" not in r.stderr and "report:" not in r.stderr
    assert not re.search(r"\d+%\|", r.stderr), r.stderr[-2000:]           # no bar
    r = zoorepro("run", str(p), env=env)
    assert "01_preprocess.ipynb: done in" in r.stderr
    assert "06_report.ipynb: report written" in r.stderr
    assert r.stderr.startswith("run folder: ") and "01_preprocess.ipynb: running\n" in r.stderr
    assert re.search(r"preprocess: +\d+%\|", r.stderr), r.stderr[-2000:]   # the kernels' bars
    assert "running over TCP" not in r.stderr


@pytest.mark.e2e
def test_render_of_a_relative_run_dir_renders_that_run_from_any_folder(tmp_path):
    """zoorepro render reports/my-run from the user's folder: the report of that run, in it;
    never a new run (with the notebook's defaults) filed there; a folder that is no run: 2."""
    from zoorepro import config
    from zoorepro.run.folder import Run
    from zoorepro.runner import notebooks_dir
    mine = tmp_path / "reports" / "my-run"
    Run.create(config.from_mapping(small_params(tmp_path, max_images=2, batch_sizes=[1],
                                                run_dir=str(mine))))
    r = zoorepro("render", "reports/my-run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().splitlines()[-1] == str(mine)
    assert (mine / "report.html").is_file() and (mine / "records" / "accuracy.json").is_file()
    assert sorted(p.name for p in (tmp_path / "reports").iterdir() if p.is_dir()) == ["my-run"]
    assert not (notebooks_dir() / "reports").exists()
    assert not (mine / ".lock").exists()
    r = zoorepro("render", "reports", cwd=tmp_path)
    assert r.returncode == 2 and "not a zoorepro run folder (no records/)" in r.stderr


def test_an_index_that_cannot_be_written_is_a_warning_not_the_commands_failure(
        tmp_path, capsys, monkeypatch, zoorepro_logger):
    from zoorepro import cli
    from zoorepro.report import index
    from zoorepro.errors import WriteError

    def refuse(root):
        raise WriteError(f"{root}/index.html: cannot write (read-only file system)")
    monkeypatch.setattr(index, "refresh", refuse)
    cli.configure_logging(cli.log_level(quiet=True))          # a warning: shown with -q too
    cli._refresh_index(tmp_path)
    out, err = capsys.readouterr()
    assert err == (f"warning: {tmp_path / 'index.html'} not updated: {tmp_path}/index.html: "
                   f"cannot write (read-only file system)\n") and out == ""


def test_q_and_v_set_the_zoorepro_loggers_level_with_one_plain_handler_on_stderr(
        tmp_path, capsys, zoorepro_logger):
    from zoorepro import cli
    for flags, level in (([], logging.INFO), (["-q"], logging.WARNING),
                         (["-v"], logging.DEBUG), (["-q", "-v"], logging.WARNING)):
        assert cli.main([*flags, "index", str(tmp_path)]) == 0
        assert zoorepro_logger.level == level, flags
        ours = [h for h in zoorepro_logger.handlers if isinstance(h, cli.StderrHandler)]
        assert len(ours) == 1                      # once, however often main runs
    logging.getLogger("zoorepro.runner").info("01_preprocess.ipynb: running")
    logging.getLogger("zoorepro.runner").warning("a warning")
    out, err = capsys.readouterr()
    assert err.count("zoorepro index: ") == 1    # -v's debug line, once
    assert err.endswith("\na warning\n") and "running" not in err   # -q: warnings only
    assert out == f"{tmp_path / 'index.html'}\n" * 4
    assert cli.main(["-v", "index", str(tmp_path)]) == 0
    logging.getLogger("zoorepro.runner").info("01_preprocess.ipynb: running")
    err = capsys.readouterr().err
    assert err.startswith("zoorepro index: ") and err.endswith("\n01_preprocess.ipynb: running\n")


# the modules the -q/-v switches once lived in: cli.VERBOSITY, runner.QUIET, and matrix set
# runner.QUIET["on"]; runner set os.environ["ZOOREPRO_PROGRESS"] in its own process mid-run
SWITCHES = {"cli": ("VERBOSITY", "say"), "runner": ("QUIET",)}
ENV_MUTATORS = {"update", "pop", "popitem", "setdefault", "clear", "putenv", "unsetenv"}


def _zoorepro_modules(tree: ast.AST) -> set[str]:
    """Names a module binds to zoorepro modules (``from zoorepro import runner`` ...)."""
    pkg = ROOT / "lib"
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("zoorepro"):
            for a in node.names:
                path = pkg / Path(*f"{node.module}.{a.name}".split("."))
                if path.with_suffix(".py").is_file() or (path / "__init__.py").is_file():
                    names.add(a.asname or a.name)
        elif isinstance(node, ast.Import):
            names |= {a.asname for a in node.names if a.name.startswith("zoorepro") and a.asname}
    return names


def test_no_module_level_switches_and_the_environment_is_never_set():
    """Library code never sets another module's attribute (or an item of one), never changes
    os.environ, and the old switches are gone: -q/-v are the logger's level and parameters."""
    import importlib
    for name, attrs in SWITCHES.items():
        module = importlib.import_module(f"zoorepro.{name}")
        assert not [a for a in attrs if hasattr(module, a)], name
    found = []
    for path in sorted((ROOT / "lib" / "zoorepro").rglob("*.py")):
        tree = ast.parse(path.read_text())
        modules = _zoorepro_modules(tree)
        for node in ast.walk(tree):
            targets = (node.targets if isinstance(node, (ast.Assign, ast.Delete)) else
                       [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else [])
            for t in targets:
                while isinstance(t, ast.Subscript):
                    t = t.value
                if (isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name)
                        and t.value.id in modules | {"os"}):
                    found.append(f"{path.name}:{node.lineno}: {ast.unparse(t)} set")
                if isinstance(t, ast.Attribute) and ast.unparse(t) == "os.environ":
                    found.append(f"{path.name}:{node.lineno}: os.environ set")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and (
                    node.func.attr in ENV_MUTATORS and ast.unparse(node.func.value) in (
                        "os.environ", "os")):
                found.append(f"{path.name}:{node.lineno}: {ast.unparse(node.func)}()")
    assert not found, found


def test_a_sharded_run_with_nothing_at_its_scheduler_stops_before_a_folder(tmp_path):
    from zoorepro import config
    from zoorepro import runner
    from zoorepro.errors import ZooreproError
    from conftest import small_params
    cfg = config.from_mapping(small_params(tmp_path, shards=2, scheduler="tcp://127.0.0.1:1"))
    with pytest.raises(ZooreproError, match="127.0.0.1:1"):
        runner.run_all(cfg)
    assert not (tmp_path / "reports").exists() or not list((tmp_path / "reports").iterdir())
