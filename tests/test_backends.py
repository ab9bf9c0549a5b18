import numpy as np
import pytest

from zoorepro import backends

from conftest import AIPP_CONFIG, DEMO_WEIGHTS


@pytest.fixture(scope="module")
def arts(onnx_models):
    return backends.Artifacts(aipp_onnx=str(onnx_models[1]), weights=str(DEMO_WEIGHTS),
                              aipp_config=str(AIPP_CONFIG))


def test_registry_knows_portable_backends():
    assert {"onnxruntime", "torch"} <= set(backends.names())
    with pytest.raises(backends.BackendUnavailable, match="unknown backend"):
        backends.create("nope", backends.Artifacts())


def test_onnxruntime_and_torch_agree_on_real_images(arts, demo_batch):
    o = backends.create("onnxruntime", arts, device="cpu", threads=1)
    t = backends.create("torch", arts, device="cpu", threads=1)
    a, b = o.infer(demo_batch), t.infer(demo_batch)
    assert a.shape == b.shape == (8, 1000) and a.dtype == np.float32
    assert np.abs(a - b).max() < 1e-3
    assert (a.argmax(1) == b.argmax(1)).all()
    info = o.info()
    assert info["backend"] == "onnxruntime" and info["device"].startswith("cpu") and info["threads"] == 1


def test_cuda_requested_without_cuda_is_clear(arts):
    import torch
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(backends.BackendUnavailable, match="cuda"):
        backends.create("torch", arts, device="cuda")


def test_missing_model_is_named():
    with pytest.raises(backends.BackendUnavailable, match="run the export step"):
        backends.create("onnxruntime", backends.Artifacts(aipp_onnx="/nope.onnx"))
