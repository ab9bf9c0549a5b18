"""Shared fixtures: small, real inputs (demo images shipped in the repo)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "demo" / "imagenet-sample-100"
DEMO_IMAGES = DEMO / "images"
DEMO_LABELS = DEMO / "val_label.txt"
DEMO_WEIGHTS = ROOT / "demo" / "weights" / "squeezenet1_1_caffe_folded.pth"
AIPP_CONFIG = ROOT / "aipp.config"
SHARED = ROOT.parent / "shared"

os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture(scope="session")
def demo_images():
    from zoorepro.recipe import data
    return data.list_images(DEMO_IMAGES)


@pytest.fixture(scope="session")
def demo_batch(demo_images):
    """Eight real preprocessed demo images, uint8 [8, 224, 224, 3]."""
    from zoorepro.recipe import preprocess
    return np.stack([preprocess.preprocess_array(p) for p in demo_images[:8]])


@pytest.fixture(scope="session")
def onnx_models(tmp_path_factory):
    """(plain ONNX, AIPP ONNX) exported from the demo weights once per session."""
    from zoorepro.recipe import aipp, export
    d = tmp_path_factory.mktemp("onnx")
    plain = export.export_onnx(DEMO_WEIGHTS, d / export.ONNX_NAME)
    fused = export.build_aipp_model(plain, aipp.load(AIPP_CONFIG), d / export.AIPP_ONNX_NAME)
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
