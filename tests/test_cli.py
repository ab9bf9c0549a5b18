import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, small_params


def zoorepro(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "zoorepro", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=900)


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
    assert "unknown key 'foo'" in r.stderr and "batch_sizes" in r.stderr and "valid keys:" in r.stderr


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
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(small_params(tmp_path, max_images=2, batch_sizes=[1],
                                             backends=["onnxruntime"])))
    r = zoorepro("-q", "run", str(p))
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().count("\n") == 0
    assert "running" not in r.stderr and "done in" not in r.stderr and "report:" not in r.stderr
    r = zoorepro("run", str(p))
    assert "01_preprocess.ipynb: done in" in r.stderr and "05_report.ipynb: report written" in r.stderr
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
        tmp_path, capsys, monkeypatch):
    from zoorepro import cli
    from zoorepro.report import index
    from zoorepro.errors import WriteError

    def refuse(root):
        raise WriteError(f"{root}/index.html: cannot write (read-only file system)")
    monkeypatch.setattr(index, "refresh", refuse)
    cli._refresh_index(tmp_path)
    assert "warning:" in capsys.readouterr().err


def test_a_sharded_run_with_nothing_at_its_scheduler_stops_before_a_folder(tmp_path):
    from zoorepro import config
    from zoorepro import runner
    from zoorepro.errors import ZooreproError
    from conftest import small_params
    cfg = config.from_mapping(small_params(tmp_path, shards=2, scheduler="tcp://127.0.0.1:1"))
    with pytest.raises(ZooreproError, match="127.0.0.1:1"):
        runner.run_all(cfg)
    assert not (tmp_path / "reports").exists() or not list((tmp_path / "reports").iterdir())
