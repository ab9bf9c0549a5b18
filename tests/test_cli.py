import subprocess
import sys
from pathlib import Path

import yaml

from conftest import ROOT, small_params


def zoorepro(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "zoorepro", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=900)


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
