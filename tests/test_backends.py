import numpy as np
import pytest

from zoorepro import backends, recipebook

from conftest import AIPP_CONFIG, DEMO_WEIGHTS


@pytest.fixture(scope="module")
def arts(onnx_models):
    return backends.Artifacts(aipp_onnx=str(onnx_models[1]), weights=str(DEMO_WEIGHTS),
                              aipp_config=str(AIPP_CONFIG),
                              recipe=recipebook.load("squeezenet1_1"))


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
    assert info["backend"] == "onnxruntime" and info["device"].startswith("cpu")
    assert info["threads"] == 1


def test_cuda_requested_without_cuda_is_clear(arts):
    import torch
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(backends.BackendUnavailable, match="cuda"):
        backends.create("torch", arts, device="cuda")


def test_missing_model_is_named():
    with pytest.raises(backends.BackendUnavailable, match="run the export step"):
        backends.create("onnxruntime", backends.Artifacts(aipp_onnx="/nope.onnx"))


def test_onnxruntime_streams_split_threads_and_agree(arts, demo_batch):
    o = backends.create("onnxruntime", arts, device="cpu", threads=2)
    from zoorepro import host
    assert o.auto_streams() == min(2, host.physical_cores())
    reps = o.replicas(2)
    assert len(reps) == 2 and all(r.info()["threads"] == 1 for r in reps)
    assert reps[0].session is not reps[1].session
    ref = o.infer(demo_batch)
    for r in reps:   # same model, same bytes in, same logits out (fp32, single thread)
        np.testing.assert_allclose(r.infer(demo_batch), ref, rtol=0, atol=1e-4)
    assert o.replicas(1) == [o]
    three = backends.create("onnxruntime", arts, device="cpu", threads=3)
    assert [r.info()["threads"] for r in three.replicas(2)] == [2, 1]   # threads in all: 3
    assert len(o.replicas(8)) == 2                      # a stream per thread at most
    o.release_memory()          # arena shrunk; the session still works and gives the same
    np.testing.assert_array_equal(o.infer(demo_batch), ref)
    t = backends.create("torch", arts, device="cpu", threads=1)
    assert t.auto_streams() == 1 and t.replicas(4) == [t]


def test_a_registered_backend_is_accepted_by_the_config_and_created(tmp_path, monkeypatch):
    """A plug-in registered by name: the config's backends check and the stages read the
    registry (names and capabilities), so nothing else has to learn the name."""
    from zoorepro import config
    from zoorepro.backends import registry
    from zoorepro.errors import BackendUnavailable, ConfigError
    from conftest import small_params

    monkeypatch.setattr(registry, "_SPECS", dict(registry._SPECS))     # undone after the test
    with pytest.raises(ConfigError, match="unknown backend 'echo'"):
        config.from_mapping(small_params(tmp_path, backends=["echo"]))

    @registry.register("echo", devices=("cpu",))
    class Echo(backends.Backend):
        name = "echo"

        def __init__(self, artifacts, device="cpu", threads=0, **options):
            super().__init__(device)

    cfg = config.from_mapping(small_params(tmp_path, backends=["echo"]))
    assert list(cfg.backends) == ["echo"]
    assert isinstance(backends.create("echo", backends.Artifacts()), Echo)
    assert not registry.needs_om("echo") and not registry.runs_on_npu("echo")
    assert registry.needs_om("ais_bench") and registry.runs_on_npu("ais_bench")
    with pytest.raises(BackendUnavailable, match="already registered"):
        registry.register("echo")(Echo)


def test_onnxruntime_refuses_a_precision_it_does_not_run(arts):
    """precision fp16 is honoured (torch on CUDA) or refused: the onnxruntime backend runs
    the fp32 AIPP model, so it is refused by name, never run as fp32 and recorded as fp32."""
    with pytest.raises(backends.BackendUnavailable,
                       match="precision fp16: the onnxruntime backend runs the fp32 AIPP model"):
        backends.create("onnxruntime", arts, device="cpu", precision="fp16")
    be = backends.create("onnxruntime", arts, device="cpu", precision="fp32")
    assert be.info()["precision"] == "fp32"


def test_a_run_asking_fp16_of_onnxruntime_records_it_not_run(tmp_path):
    from zoorepro import config
    from zoorepro.run import records, stages
    from zoorepro.run.folder import Run
    from conftest import small_params
    run = Run.create(config.from_mapping(small_params(tmp_path, precision="fp16",
                                                      backends=["onnxruntime"], max_images=2)))
    made, skipped = stages.create_backends(run)
    assert not made and skipped["onnxruntime"].status == "not run"
    assert "precision fp16" in skipped["onnxruntime"].reason
    assert isinstance(skipped["onnxruntime"], records.InferEntry)


def test_precision_fp16_runs_on_torch_and_is_refused_by_onnxruntime(arts, demo_batch):
    """Both sides of "honoured or refused": torch runs fp16 on the CPU (torch's float16
    kernels) and records fp16; its logits are fp32's within fp16's resolution at their size;
    onnxruntime refuses it by name; and the registry says which backend runs what."""
    fp32 = backends.create("torch", arts, device="cpu", precision="")
    fp16 = backends.create("torch", arts, device="cpu", precision="fp16")
    assert (fp32.info()["precision"], fp16.info()["precision"]) == ("fp32", "fp16")
    x = demo_batch[:4]
    a, b = fp32.infer(x), fp16.infer(x)
    assert b.dtype == np.float32 and not np.array_equal(a, b)       # it really ran fp16
    # an fp16 value near the logits' size (|x| < 64) is 1/32 apart from the next; a few
    # rounded layers stay within a few steps
    assert np.abs(a - b).max() < 8 / 32
    assert (a.argmax(1) == b.argmax(1)).all()
    with pytest.raises(backends.BackendUnavailable, match="precision fp16: the onnxruntime"):
        backends.create("onnxruntime", arts, device="cpu", precision="fp16")
    assert backends.precisions("onnxruntime") == ("fp32", "int8")
    assert backends.precisions("torch") == ("fp32", "fp16")
    assert backends.refuses("torch", "int8") == "precision int8: the torch backend runs fp32, " \
                                                "fp16 only"
    assert backends.refuses("onnxruntime", "") is None
