"""ruff (configured in pyproject.toml) finds nothing in the library, tests, tools and benchmarks."""
import shutil
import subprocess

import pytest

from conftest import ROOT


def test_ruff_is_clean():
    ruff = shutil.which("ruff") or str(ROOT / ".venv" / "bin" / "ruff")
    if not shutil.which(ruff):
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    r = subprocess.run([ruff, "check", "lib", "tests", "tools", "benchmarks"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-1000:]


def test_package_is_typed():
    assert (ROOT / "lib" / "zoorepro" / "py.typed").is_file()
