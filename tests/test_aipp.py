"""AIPP: parser, numpy reference == ONNX nodes == torchvision Normalize."""
import numpy as np
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper
from torchvision.transforms import functional as TF

from zoorepro.recipe import aipp

from conftest import AIPP_CONFIG

RECIPE = AIPP_CONFIG.read_text()


def identity_model(h=224, w=224):
    """A float NCHW -> same tensor ONNX model, to observe the AIPP output directly."""
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["-1", 3, h, w])
    y = helper.make_tensor_value_info("class", TensorProto.FLOAT, ["-1", 3, h, w])
    g = helper.make_graph([helper.make_node("Identity", ["image"], ["class"])], "id", [x], [y])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 11)])


def run_onnx(model, x):
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, {"image": x})[0]


def test_recipe_file_values():
    a = aipp.load(AIPP_CONFIG)
    assert a.min == (123.675, 116.28, 103.53)
    assert a.var_reci == (0.0171247538316637, 0.0175070028011204, 0.0174291938997821)
    assert a.mean == (0.0, 0.0, 0.0) and not a.crop and not a.swap_rb
    assert a.out_hw == (224, 224)
    # min = 255 * ImageNet mean, var_reci = 1 / (255 * std)
    np.testing.assert_allclose(a.min, np.array([0.485, 0.456, 0.406]) * 255, rtol=1e-12)
    np.testing.assert_allclose(a.var_reci, 1 / (255 * np.array([0.229, 0.224, 0.225])), rtol=1e-12)


def test_numpy_equals_onnx_equals_torchvision_normalize(demo_batch):
    a = aipp.load(AIPP_CONFIG)
    ref = aipp.apply_numpy(a, demo_batch)
    via_onnx = run_onnx(aipp.prepend_to_onnx(identity_model(), a), demo_batch)
    tv = TF.normalize(torch.from_numpy(demo_batch).permute(0, 3, 1, 2).float() / 255.0,
                      [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]).numpy()
    assert ref.shape == (8, 3, 224, 224) and ref.dtype == np.float32
    np.testing.assert_allclose(via_onnx, ref, rtol=0, atol=1e-6)   # same float ops
    np.testing.assert_allclose(ref, tv, rtol=0, atol=2e-6)          # float rounding only


def test_torch_module_equals_numpy(demo_batch):
    a = aipp.load(AIPP_CONFIG)
    out = aipp.torch_module(a)(torch.from_numpy(demo_batch)).numpy()
    np.testing.assert_allclose(out, aipp.apply_numpy(a, demo_batch), rtol=0, atol=1e-6)


def test_swap_and_crop_variant():
    text = """aipp_op {
      aipp_mode : static
      input_format : RGB888_U8
      src_image_size_w : 256
      src_image_size_h : 240
      crop : true
      load_start_pos_w : 16
      load_start_pos_h : 8
      crop_size_w : 224
      crop_size_h : 224
      rbuv_swap_switch : true
      mean_chn_0 : 10
      min_chn_0 : 1.5
      var_reci_chn_2 : 0.5
    }"""
    a = aipp.parse(text, "v.config")
    x = np.random.default_rng(0).integers(0, 256, (2, 240, 256, 3), dtype=np.uint8)
    ref = aipp.apply_numpy(a, x)
    manual = x[:, 8:232, 16:240, ::-1].astype(np.float32)
    manual[..., 0] = (manual[..., 0] - 11.5)
    manual[..., 2] = manual[..., 2] * 0.5
    np.testing.assert_allclose(ref, manual.transpose(0, 3, 1, 2), atol=1e-5)
    np.testing.assert_allclose(run_onnx(aipp.prepend_to_onnx(identity_model(), a), x), ref,
                               atol=1e-6)
    np.testing.assert_allclose(aipp.torch_module(a)(torch.from_numpy(x)).numpy(), ref, atol=1e-6)


@pytest.mark.parametrize("text,needle", [
    (RECIPE.replace("crop: false", "crop: false\n    colour_boost : 1"),
     "aipp.config:9: unknown AIPP field 'colour_boost'"),
    (RECIPE.replace("aipp_mode:static", "aipp_mode:dynamic"),
     "aipp.config:2: aipp_mode 'dynamic' is not supported"),
    (RECIPE.replace("crop: false", "crop false"), "aipp.config:8: expected 'field : value'"),
    (RECIPE.replace("}", ""), "never closed"),
    (RECIPE.replace("RGB888_U8", "YUV420SP_U8"), "input_format YUV420SP_U8 is not supported"),
    (RECIPE.replace("crop: false", "crop: maybe"), "crop must be true or false"),
    (RECIPE.replace("min_chn_1 : 116.28", "min_chn_1 : abc"),
     "aipp.config:11: min_chn_1 must be a number"),
    (RECIPE.replace("crop: false", "crop: false\n    matrix_r0c0 : 298"),
     "matrix_r0c0 is valid ATC AIPP but not supported"),
    (RECIPE.replace("min_chn_0 : 123.675", "min_chn_0 : 123.675\n    min_chn_0 : 1"),
     "given twice"),
])
def test_errors_name_line_and_field(text, needle):
    with pytest.raises(aipp.AippError) as e:
        aipp.parse(text, "aipp.config")
    assert needle in str(e.value)


def test_size_mismatch_with_model():
    a = aipp.parse(RECIPE.replace("src_image_size_w : 224", "src_image_size_w : 256"),
                   "aipp.config")
    with pytest.raises(aipp.AippError, match="AIPP output is 224x256 .* model takes 224x224"):
        a.check_model_input(224, 224)


@pytest.mark.parametrize("value", ["nan", "inf", "-1e400", "1e12"])
def test_non_finite_or_huge_values_are_refused(tmp_path, value):
    text = AIPP_CONFIG.read_text().replace("var_reci_chn_0:", f"var_reci_chn_0: {value} #")
    p = tmp_path / "aipp.config"
    p.write_text(text)
    with pytest.raises(aipp.AippError, match=r"var_reci_chn_0 must be a number \(finite"):
        aipp.load(p)


def test_a_config_that_is_not_text_is_an_error_naming_it(tmp_path):
    p = tmp_path / "aipp.config"
    p.write_bytes(b"aipp_op {\n aipp_mode : \xff\n}\n")
    with pytest.raises(aipp.AippError, match="not UTF-8 text") as e:
        aipp.load(p)
    assert str(p) in str(e.value)
