"""Every notebook runs on its own, top to bottom, with its default parameters (the demo),
as it does when opened in JupyterLab; only the output folder is redirected."""
import json

import papermill as pm
import pytest

from zoorepro.runner import notebooks_dir
from zoorepro.stages import NOTEBOOKS

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("nb", NOTEBOOKS)
def test_notebook_runs_standalone_with_defaults(nb, tmp_path):
    out = tmp_path / nb
    pm.execute_notebook(str(notebooks_dir() / nb), str(out), cwd=str(notebooks_dir()),
                        parameters={"output_root": str(tmp_path / "reports")},
                        kernel_name="python3", progress_bar=False)
    cells = json.loads(out.read_text())["cells"]
    assert not any(o.get("output_type") == "error" for c in cells for o in c.get("outputs", []))
    runs = list((tmp_path / "reports").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("demo-")
    records = {p.stem for p in (runs[0] / "records").glob("*.json")}
    assert {"environment", "dataset", "preprocess"} <= records
    if nb >= "04":
        assert json.loads((runs[0] / "metrics.json").read_text())["top1"] == 65.0
