import dataclasses

import numpy as np
import onnx
import pytest

from zoorepro import recipebook
from zoorepro.errors import AippError
from zoorepro.recipe import aipp, export

from conftest import AIPP_CONFIG, DEMO_WEIGHTS

SQ = recipebook.load("squeezenet1_1")
R50 = recipebook.load("resnet50")


def _session(path):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def test_file_names_come_from_the_recipe():
    assert export.onnx_name(SQ) == "squeezenet1_1.onnx"
    assert export.aipp_onnx_name(SQ) == "squeezenet1_1_aipp.onnx"
    assert export.onnx_name(R50) == "resnet50.onnx"


def test_onnx_matches_recipe_export(onnx_models):
    plain, fused = onnx_models
    m = onnx.load(str(plain))
    onnx.checker.check_model(m)
    assert [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")] == [SQ.model.opset]
    assert [i.name for i in m.graph.input] == ["image"] == [SQ.model.input]
    assert [o.name for o in m.graph.output] == ["class"] == [SQ.model.output]
    dims = m.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "-1" and [d.dim_value for d in dims[1:]] == [3, 224, 224]
    f = onnx.load(str(fused))
    t = f.graph.input[0].type.tensor_type
    assert f.graph.input[0].name == "image" and t.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_value for d in t.shape.dim[1:]] == [224, 224, 3]


def test_parity_with_pytorch_on_real_images(onnx_models, demo_batch):
    plain, fused = onnx_models
    p = export.parity(SQ, DEMO_WEIGHTS, plain, fused, aipp.load(AIPP_CONFIG), demo_batch)
    assert p.images == 8
    assert p.max_abs_diff < 1e-3 and p.max_abs_diff_aipp < 1e-3   # logits are O(10)
    assert p.top1_agreement == 1.0
    assert p.max_norm_diff < 2e-6


def test_parity_counts_nan_as_disagreement(tmp_path, demo_batch, monkeypatch):
    """PyTorch and both ONNX models all NaN (a NaN classifier): parity said "top-1
    agreement 100 %" next to a max difference of nan; NaN is disagreement now."""
    import torch
    from zoorepro.recipe import weights
    model = weights.build_model(SQ, DEMO_WEIGHTS)
    with torch.no_grad():
        model.classifier[1].weight.fill_(float("nan"))
    monkeypatch.setattr(weights, "build_model", lambda recipe, path: model)
    plain = tmp_path / export.onnx_name(SQ)
    torch.onnx.export(model, (torch.zeros(1, 3, 224, 224),), str(plain), input_names=["image"],
                      output_names=["class"], opset_version=11, dynamo=False,
                      dynamic_axes={"image": {0: "-1"}, "class": {0: "-1"}})
    a = aipp.load(AIPP_CONFIG)
    fused = export.build_aipp_model(SQ, plain, a, tmp_path / export.aipp_onnx_name(SQ))
    p = export.parity(SQ, DEMO_WEIGHTS, plain, fused, a, demo_batch[:2])
    assert p.top1_agreement == 0.0 and p.non_finite_images == 2
    assert p.to_dict()["non_finite_images"] == 2


def test_a_static_batch_export_and_its_aipp_model_at_other_batches(tmp_path, demo_batch):
    """model.batch static (as resnet50's upstream): no dynamic_axes, the batch is
    export_batch; the AIPP model's batch is symbolic (ATC's --input_shape re-fixes it per OM)
    and it runs at batch 1 and 3; parity runs the static ONNX in chunks of its batch."""
    static = dataclasses.replace(SQ, model=dataclasses.replace(SQ.model, batch="static",
                                                               export_batch=2))
    plain = export.export_onnx(static, DEMO_WEIGHTS, tmp_path / "s.onnx")
    m = onnx.load(str(plain))
    for vi in (m.graph.input[0], m.graph.output[0]):
        d0 = vi.type.tensor_type.shape.dim[0]
        assert d0.dim_value == 2 and not d0.dim_param
    a = aipp.load(AIPP_CONFIG)
    fused = export.build_aipp_model(static, plain, a, tmp_path / "s_aipp.onnx")
    f = onnx.load(str(fused))
    for vi in (f.graph.input[0], f.graph.output[0]):
        d0 = vi.type.tensor_type.shape.dim[0]
        assert d0.dim_param == export.BATCH_DIM and not d0.dim_value
    s = _session(fused)
    whole = s.run(None, {"image": demo_batch[:3]})[0]
    one = s.run(None, {"image": demo_batch[:1]})[0]
    assert whole.shape == (3, 1000) and one.shape == (1, 1000)
    np.testing.assert_allclose(one[0], whole[0], atol=1e-4)
    p = export.parity(static, DEMO_WEIGHTS, plain, fused, a, demo_batch[:3])
    assert p.images == 3 and p.max_abs_diff < 1e-3 and p.top1_agreement == 1.0


R50_AIPP = """aipp_op{
    aipp_mode:static
    input_format : RGB888_U8
    src_image_size_w : 256
    src_image_size_h : 256
    crop: true
    load_start_pos_h : %d
    load_start_pos_w : %d
    crop_size_w : 224
    crop_size_h: 224
    min_chn_0 : 123.675
    min_chn_1 : 116.28
    min_chn_2 : 103.53
    var_reci_chn_0: 0.0171247538316637
    var_reci_chn_1: 0.0175070028011204
    var_reci_chn_2: 0.0174291938997821
}
"""


def _identity_onnx(size: int):
    """An ONNX that passes its float NCHW input through: what AIPP feeds a network."""
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info("actual_input_1", TensorProto.FLOAT, ["-1", 3, size, size])
    y = helper.make_tensor_value_info("output1", TensorProto.FLOAT, ["-1", 3, size, size])
    g = helper.make_graph([helper.make_node("Identity", ["actual_input_1"], ["output1"])],
                          "id", [x], [y])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 11)])


def test_aipp_crop_is_cut_from_the_source_image_then_normalised():
    """ATC's order for RGB888_U8: crop the crop_size box at (load_start_pos_w,
    load_start_pos_h) from the src_image_size input, then (x - mean - min) * var_reci per
    channel. Written here in plain numpy arithmetic, pixel by pixel for some pixels."""
    import torch
    a = aipp.parse(R50_AIPP % (16, 20), "aipp_resnet50.aippconfig")   # rows from 16, cols 20
    assert (a.src_h, a.src_w, a.out_hw) == (256, 256, (224, 224))
    x = np.random.default_rng(1).integers(0, 256, (2, 256, 256, 3), dtype=np.uint8)
    mins = np.array([123.675, 116.28, 103.53], np.float32)
    var = np.array([0.0171247538316637, 0.0175070028011204, 0.0174291938997821], np.float32)
    want = np.empty((2, 3, 224, 224), np.float32)
    for c in range(3):
        want[:, c] = (x[:, 16:240, 20:244, c].astype(np.float32) - mins[c]) * var[c]
    # one pixel by hand: output (0, 0) is source row 16, column 20
    assert want[1, 2, 0, 0] == np.float32((np.float32(x[1, 16, 20, 2]) - mins[2]) * var[2])
    np.testing.assert_array_equal(aipp.apply_numpy(a, x), want)
    fused = aipp.prepend_to_onnx(_identity_onnx(224), a, "actual_input_1")
    np.testing.assert_array_equal(_session_of(fused).run(None, {"actual_input_1": x})[0], want)
    got = aipp.torch_module(a)(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(got, want)


def _session_of(model):
    import onnxruntime as ort
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def test_host_normalisation_crops_the_centre_as_the_framework_does():
    """resnet50: the host's .bin is 256 x 256; torchvision's CenterCrop(224) cuts at 16, as the
    recipe's AIPP does. An AIPP crop elsewhere shows in max_norm_diff."""
    x = np.random.default_rng(2).integers(0, 256, (2, 256, 256, 3), dtype=np.uint8)
    host = export.host_normalise(R50, x)
    assert host.shape == (2, 3, 224, 224)
    centred = aipp.load(R50.aipp_path)
    assert np.abs(host - aipp.apply_numpy(centred, x)).max() < 2e-6
    off = aipp.parse(R50_AIPP % (0, 0), "off.aippconfig")
    assert np.abs(host - aipp.apply_numpy(off, x)).max() > 1.0


def test_aipp_that_does_not_fit_the_recipe_names_both_files(tmp_path):
    with pytest.raises(AippError) as e:
        export.build_aipp_model(SQ, tmp_path / "never-read.onnx", aipp.load(R50.aipp_path),
                                tmp_path / "x.onnx")
    msg = str(e.value)
    assert R50.aipp_path in msg and str(SQ.path) in msg and "256x256" in msg
    assert "preprocess.crop" in msg and "set src_image_size_w/src_image_size_h to 224" in msg
    small = aipp.parse(R50_AIPP.replace("crop_size_w : 224", "crop_size_w : 200")
                       % (16, 16), "small.aippconfig")
    with pytest.raises(AippError) as e:
        export.check_aipp(R50, small)
    msg = str(e.value)
    assert "small.aippconfig" in msg and str(R50.path) in msg and "model.size" in msg
    assert "224x200" in msg and "set crop_size_h/crop_size_w to 224" in msg


def test_an_onnx_without_the_recipes_input_is_refused(tmp_path):
    p = tmp_path / "other.onnx"
    onnx.save(_identity_onnx(224), str(p))
    with pytest.raises(AippError, match=r"has no input 'image' \(it has actual_input_1\)"):
        export.build_aipp_model(SQ, p, aipp.load(AIPP_CONFIG), tmp_path / "x.onnx")
