"""Shared fixtures: small, real inputs (demo images shipped in the repo), one finished demo run
for the end-to-end tests that only read it, and the hypothesis profiles."""
from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "demo" / "imagenet-sample-100"
DEMO_IMAGES = DEMO / "images"
DEMO_LABELS = DEMO / "val_label.txt"
DEMO_WEIGHTS = ROOT / "demo" / "weights" / "squeezenet1_1_caffe_folded.pth"
AIPP_CONFIG = ROOT / "aipp.config"
SHARED = ROOT.parent / "shared"

os.environ.setdefault("TQDM_DISABLE", "1")

# Hypothesis profiles (tests/test_properties.py), chosen with --hypothesis-profile: 'ci' (100
# examples each, what 'make test' and so .ci/run use) and 'dev' (10 each, 'make quick' and a
# bare pytest). Both derandomized: the same examples on every run, so a failure repeats.
_HYPOTHESIS = dict(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=100, **_HYPOTHESIS)
settings.register_profile("dev", max_examples=10, **_HYPOTHESIS)
settings.load_profile("dev")


@pytest.fixture(scope="session")
def demo_images():
    from zoorepro.recipe import data
    return data.list_images(DEMO_IMAGES)


@pytest.fixture(scope="session")
def demo_batch(demo_images):
    """Eight real preprocessed demo images, uint8 [8, 224, 224, 3]."""
    from zoorepro import recipebook
    from zoorepro.recipe import preprocess
    spec = recipebook.load(recipebook.DEFAULT).preprocess
    return np.stack([preprocess.preprocess_array(p, spec) for p in demo_images[:8]])


@pytest.fixture(scope="session")
def onnx_models(tmp_path_factory):
    """(plain ONNX, AIPP ONNX) exported from the demo weights once per session."""
    from zoorepro import recipebook
    from zoorepro.recipe import aipp, export
    d = tmp_path_factory.mktemp("onnx")
    r = recipebook.load("squeezenet1_1")
    plain = export.export_onnx(r, DEMO_WEIGHTS, d / export.onnx_name(r))
    fused = export.build_aipp_model(r, plain, aipp.load(AIPP_CONFIG),
                                    d / export.aipp_onnx_name(r))
    return plain, fused


def small_params(tmp_path, **extra) -> dict:
    """A fast config mapping: a few demo images, tiny sweep."""
    base = dict(name="t", data_dir=str(DEMO_IMAGES), label_file=str(DEMO_LABELS),
                weights=str(DEMO_WEIGHTS), aipp_config=str(AIPP_CONFIG),
                output_root=str(tmp_path / "reports"), max_images=8, batch_sizes=[1, 4],
                backends=["onnxruntime"], bench_iterations=2, warmup=1, workers=1)
    base.update(extra)
    return base


@pytest.fixture
def other_holder():
    """start(folder): another process holds the folder's run lock until the test ends."""
    from test_runlock import start_holder, stop_holders
    procs: list = []
    yield lambda folder: start_holder(folder, procs)
    stop_holders(procs)


# ------------------------------------------------------------ the shared finished run
# The golden run's params (tests/golden/ was written from them: change them and regenerate the
# golden files): two backends, batch sizes 1 and 4, threads and streams pinned, so the run is
# the same on 1 core or 64.
FINISHED_PARAMS = dict(backends=["onnxruntime", "torch"], max_images=12, batch_sizes=[1, 4],
                       accuracy_batch_size=4, threads=2, infer_streams=2)
_FINISHED: dict = {}      # the shared run's folder and its files' state, once it is made


def _files_state(root: Path) -> dict:
    """Every file under ``root``: (size, mtime, inode); an edit or a rename-over shows."""
    return {p.relative_to(root).as_posix(): (st.st_size, st.st_mtime_ns, st.st_ino)
            for p in sorted(root.rglob("*")) if not stat.S_ISDIR((st := p.lstat()).st_mode)}


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory) -> Path:
    """The folder of one finished demo run (``runner.run_all`` on :data:`FINISHED_PARAMS`:
    every notebook executed by papermill, then the report), made once per session for every
    test that only reads a run. Read-only: a test that changes a run works on a copy
    (:func:`copy_run`); a test that changes this one fails at its teardown."""
    from zoorepro import config, runner
    tmp = tmp_path_factory.mktemp("finished-run")
    out = runner.run_all(config.from_mapping(small_params(tmp, **FINISHED_PARAMS)))
    assert out.ok, out.failure
    _FINISHED.update(root=out.run_dir, state=_files_state(out.run_dir))
    return out.run_dir


@pytest.fixture(autouse=True)
def _finished_run_stays_as_it_was():
    """After each test: the shared run (once made) is as it was made."""
    yield
    if _FINISHED:
        now = _files_state(_FINISHED["root"])
        was, _FINISHED["state"] = _FINISHED["state"], now      # each change reported once
        changed = sorted(k for k in was.keys() | now.keys() if was.get(k) != now.get(k))
        if changed:
            pytest.fail(f"this test changed the shared finished_run ({', '.join(changed[:5])}): "
                        "change a copy_run(tmp_path) instead", pytrace=False)


@pytest.fixture
def copy_run(finished_run):
    """``copy_run(dest)``: a copy of the shared run a test may change, at
    ``dest/reports/<run>`` (the shape of a run: ``<tmp>/reports/<run>``). Where its records
    name the run's own folder they name the original's."""
    def copy(dest: str | os.PathLike) -> Path:
        return Path(shutil.copytree(finished_run, Path(dest) / "reports" / finished_run.name,
                                    symlinks=True))
    return copy
