"""The pip route: a wheel (not editable) carries the notebooks and templates; installed into a
fresh virtual environment, ``zoorepro run`` works from any folder."""
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, small_params

pytestmark = pytest.mark.e2e


def test_wheel_installs_and_runs(tmp_path):
    dist = tmp_path / "dist"
    r = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir",
                        str(dist), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    (wheel,) = dist.glob("zoorepro-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for want in ("zoorepro/notebooks/01_preprocess.ipynb", "zoorepro/notebooks/06_report.ipynb",
                 "zoorepro/ascend/templates/run_on_npu.sh.j2",
                 "zoorepro/report/templates/zoorepro.css",
                 "zoorepro/report/templates/report/verdict.html.j2",
                 "zoorepro/report/templates/zoorepro/index.html.j2", "zoorepro/py.typed"):
        assert want in names, want
    lib = ROOT / "lib"          # every module and template of every package (none forgotten)
    source = {p.relative_to(lib).as_posix() for p in (lib / "zoorepro").rglob("*")
              if p.is_file() and p.suffix in (".py", ".j2", ".css", ".json")}
    assert sorted(source - set(names)) == []
    assert not any(n.startswith("zoorepro/demo") for n in names)        # the demo stays in git
    # a fresh venv that reuses this environment's packages (no downloads) but not its zoorepro
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    site = Path(subprocess.check_output(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        text=True).strip())
    (site / "reuse-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    r = subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    where = subprocess.check_output([str(py), "-c", "import zoorepro, zoorepro.runner as r; "
                                     "print(zoorepro.__file__); print(r.notebooks_dir())"],
                                    text=True, cwd=tmp_path).split()
    assert all(str(site) in w for w in where), where
    params = tmp_path / "p.yaml"
    params.write_text(yaml.safe_dump(small_params(tmp_path, max_images=3, batch_sizes=[1],
                                                  backends=["onnxruntime"])))
    # the reused packages' data files (nbconvert's templates, the python3 kernel) stay where
    # they were installed: point Jupyter there, as an installed environment would have them
    import os
    env = {**os.environ, "JUPYTER_PATH": str(Path(sys.prefix) / "share" / "jupyter")}
    r = subprocess.run([str(env_dir / "bin" / "zoorepro"), "-q", "run", str(params)],
                       capture_output=True, text=True, timeout=900, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    run = Path(r.stdout.strip().splitlines()[-1])
    assert (run / "report.html").is_file() and (run / "accuracy.csv").is_file()
