"""Every notebook runs on its own, top to bottom, with its default parameters (the demo),
as it does when opened in JupyterLab; only the output folder is redirected."""
import json

import papermill as pm
import pytest

from zoorepro.runner import notebooks_dir
from zoorepro.run.stages import NOTEBOOKS

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


def _small_run(tmp_path):
    from zoorepro import config
    from zoorepro.run.folder import Run
    from conftest import small_params
    return Run.create(config.from_mapping(small_params(tmp_path, max_images=2, batch_sizes=[1])))


def _execute(nb, tmp_path, **parameters):
    out = tmp_path / f"out-{nb}"
    with pytest.raises(pm.PapermillExecutionError) as exc:
        pm.execute_notebook(str(notebooks_dir() / nb), str(out), cwd=str(notebooks_dir()),
                            parameters=parameters, kernel_name="python3", progress_bar=False)
    return exc.value


def test_papermill_values_beside_an_existing_run_dir_are_refused(tmp_path):
    """papermill -p run_dir RUN -p accuracy_batch_size 4 -p outfmt NPY -p backends "[torch]":
    the run's own params would win silently; the notebook stops and names them instead."""
    run = _small_run(tmp_path)
    err = _execute("03_infer.ipynb", tmp_path, run_dir=str(run.root), accuracy_batch_size=4,
                   outfmt="NPY", backends="[torch]")
    assert "made with other parameters (accuracy_batch_size, backends, outfmt)" in err.evalue
    assert not (run.root / "records" / "infer.json").exists()


def test_a_kernel_the_lock_holder_did_not_start_is_refused(tmp_path, other_holder):
    """A run 'zoorepro run' is executing (its lock held by another process): a notebook run on
    it by papermill stops at once; the runner's own kernels are let in (test_runner's runs)."""
    run = _small_run(tmp_path)
    proc = other_holder(run.root)
    err = _execute("02_export.ipynb", tmp_path, run_dir=str(run.root))
    assert f"in use by process {proc.pid}" in err.evalue
    assert not (run.root / "records" / "export.json").exists()


def test_a_mistyped_papermill_parameter_stops_the_notebook_with_a_suggestion(tmp_path):
    """papermill -p max_image 5: not a run over every image with rc 0 and a warning."""
    err = _execute("01_preprocess.ipynb", tmp_path, max_image=5,
                   output_root=str(tmp_path / "reports"))
    assert "unknown key 'max_image' (did you mean 'max_images'?)" in err.evalue
    assert not (tmp_path / "reports").exists()
