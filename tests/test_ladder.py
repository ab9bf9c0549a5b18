"""The precision ladder's arithmetic (zoorepro.recipe.ladder) on tiny inputs with known answers:
fp16 rounding, the fp16 AIPP model (row c) and the fp16 network emulation (row d) under ONNX
Runtime's full optimisation, the framework's pipeline (row a) on a made JPEG, the comparison
with row b and the per-image table.  The demo rows (100 images, the demo weights) are e2e."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from zoorepro.errors import AippError, EvaluationError
from zoorepro.recipe import aipp, ladder

from conftest import AIPP_CONFIG, DEMO_LABELS, DEMO_WEIGHTS
import jpegs

H, W = 4, 5
TINY_AIPP = aipp.parse(AIPP_CONFIG.read_text().replace("224", "X")
                       .replace("src_image_size_w : X", f"src_image_size_w : {W}")
                       .replace("src_image_size_h : X", f"src_image_size_h : {H}"), "tiny.config")
F16_ULP_AT_1 = 2.0 ** -10


def ulp16(v):
    """The fp16 spacing at each value of ``v`` (fp16-valued), as float32."""
    return np.spacing(np.abs(np.asarray(v, np.float16))).astype(np.float32)


# ----------------------------------------------------------------- round_fp16
@pytest.mark.parametrize("x, want", [
    (1 / 3, 0.333251953125),                    # 0x3555
    (65504.0, 65504.0),                         # fp16's largest
    (65519.99, 65504.0),                        # below the midpoint to 65536
    (65520.0, np.inf),                          # the midpoint: to even, which overflows
    (-65520.0, -np.inf),
    (1 + 2.0 ** -11, 1.0),                      # a tie: to the even mantissa (0)
    (1 + 3 * 2.0 ** -11, 1 + 2.0 ** -9),        # a tie: to the even mantissa (2)
    (2.0 ** -25, 0.0),                          # half the smallest subnormal: to even (0)
    (3 * 2.0 ** -25, 2.0 ** -23),               # 1.5 subnormal steps: to even (2 steps)
    (3 * 2.0 ** -26, 2.0 ** -24),               # 0.75 of a step: to the nearest (1 step)
    (5 * 2.0 ** -24, 5 * 2.0 ** -24),           # a subnormal is kept
    (-0.1, -0.0999755859375),
])
def test_round_fp16_known_values(x, want):
    got = ladder.round_fp16(np.array([x]))
    assert got.dtype == np.float32 and got.shape == (1,)
    assert got[0] == np.float32(want)


def test_round_fp16_keeps_nan_and_shape():
    got = ladder.round_fp16(np.full((2, 3), np.nan, np.float32))
    assert got.shape == (2, 3) and np.isnan(got).all()


# ----------------------------------------------------------------- tiny AIPP models
def tiny_network(body: str = "eye"):
    """float NCHW [N, 3, H, W] -> ``class``: ``eye``, a 1x1 convolution with the identity
    matrix (the output is its input, exactly); ``net``, Conv 3->4 (3x3, pad 1, bias) -> Relu
    ``act`` -> GlobalAveragePool -> Flatten."""
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, H, W])
    rng = np.random.default_rng(3)
    if body == "eye":
        inits = [numpy_helper.from_array(np.eye(3, dtype=np.float32).reshape(3, 3, 1, 1), "w")]
        nodes = [helper.make_node("Conv", ["image", "w"], ["class"], name="conv")]
        y = helper.make_tensor_value_info("class", TensorProto.FLOAT, ["N", 3, H, W])
    else:
        wts = (rng.normal(0, 0.3, (4, 3, 3, 3))).astype(np.float32)
        bias = rng.normal(0, 0.2, 4).astype(np.float32)
        inits = [numpy_helper.from_array(wts, "w"), numpy_helper.from_array(bias, "bias")]
        nodes = [helper.make_node("Conv", ["image", "w", "bias"], ["conv"], pads=[1] * 4,
                                  kernel_shape=[3, 3], name="conv"),
                 helper.make_node("Relu", ["conv"], ["act"], name="relu"),
                 helper.make_node("GlobalAveragePool", ["act"], ["pool"], name="pool"),
                 helper.make_node("Flatten", ["pool"], ["class"], name="flatten")]
        y = helper.make_tensor_value_info("class", TensorProto.FLOAT, ["N", 4])
    g = helper.make_graph(nodes, "tiny", [x], [y], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 7
    return aipp.prepend_to_onnx(model, TINY_AIPP, "image")


def save(model, path, expose=()):
    """``model`` at ``path`` with the tensors ``expose`` as extra float graph outputs."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    for name in expose:
        model.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    onnx.save(model, str(path))
    return path


def run_all(path, x):
    """Every graph output, ONNX Runtime with ORT_ENABLE_ALL (as the onnxruntime backend)."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    s = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in s.get_outputs()]
    return dict(zip(names, s.run(None, {"image": x})))


def pixels(n=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, H, W, 3), dtype=np.uint8)


def with_outputs(src, tmp_path, name, expose):
    return save(onnx.load(str(src)), tmp_path / name, expose)


def test_fp16_aipp_model_rounds_aipp_output_under_full_optimisation(tmp_path):
    x = pixels()
    exact = aipp.apply_numpy(TINY_AIPP, x)
    want = ladder.round_fp16(exact)
    assert (want != exact).mean() > 0.9          # the rounding is visible in nearly every value
    fp32 = save(tiny_network(), tmp_path / "fp32.onnx")
    c = ladder.fp16_aipp_model(fp32, tmp_path / "c.onnx")
    # the network's own output (an exact identity convolution), no extra graph output
    np.testing.assert_array_equal(run_all(c, x)["class"], want)
    np.testing.assert_array_equal(run_all(fp32, x)["class"], exact)
    # aipp_output itself, exposed as a graph output
    seen = run_all(with_outputs(c, tmp_path, "c_out.onnx", ["aipp_output"]), x)
    np.testing.assert_array_equal(seen["aipp_output"], want)
    seen32 = run_all(with_outputs(fp32, tmp_path, "b_out.onnx", ["aipp_output"]), x)
    np.testing.assert_array_equal(seen["aipp_output"], ladder.round_fp16(seen32["aipp_output"]))
    # everything else unchanged: the same nodes in the same order, two Casts added after AIPP
    before, after = onnx.load(str(fp32)).graph, onnx.load(str(c)).graph
    ops = [(n.op_type, n.name) for n in after.node]
    assert ops == [*[(n.op_type, n.name) for n in before.node[:4]],
                   ("Cast", "aipp_round_to_fp16"), ("Cast", "aipp_round_to_fp32"),
                   *[(n.op_type, n.name) for n in before.node[4:]]]
    assert [i.name for i in after.initializer] == [i.name for i in before.initializer]
    assert after.node[4].attribute[0].i == TensorProto.FLOAT16


def test_fp16_aipp_model_refuses_a_model_without_aipp(tmp_path):
    plain = tmp_path / "plain.onnx"
    m = tiny_network()
    for n in m.graph.node:
        n.name = n.name.replace("aipp_", "pre_")
    onnx.save(m, str(plain))
    with pytest.raises(AippError, match=r"plain\.onnx: not an AIPP model.*build_aipp_model"):
        ladder.fp16_aipp_model(plain, tmp_path / "c.onnx")
    with pytest.raises(AippError, match=r"missing\.onnx: AIPP model not found"):
        ladder.fp16_aipp_model(tmp_path / "missing.onnx", tmp_path / "c.onnx")


def conv_reference(x, w, b):
    """Conv 3x3, pad 1, in float64: ``x`` [N, C, H, W], ``w`` [O, C, 3, 3]."""
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((x.shape[0], w.shape[0], H, W))
    for i in range(3):
        for j in range(3):
            out += np.einsum("nchw,oc->nohw", xp[:, :, i:i + H, j:j + W], w[:, :, i, j])
    return out + b[None, :, None, None]


def test_fp16_network_emulation_is_fp16_storage_with_one_rounding_per_op(tmp_path):
    """Row d on Conv -> Relu -> GlobalAveragePool -> Flatten, against numpy: fp16 input,
    weights and bias, each op exact (float64) and rounded once to fp16.  ONNX Runtime adds in
    float32 in its own order, so an op's result may land on the other side of a rounding
    boundary: at most 1 fp16 ulp per element after the convolution (and nearly all equal),
    at most 2 after the average of those."""
    x = pixels(8, seed=1)
    fp32 = save(tiny_network("net"), tmp_path / "fp32.onnx")
    d = ladder.fp16_network_model(fp32, tmp_path / "d.onnx")
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(d)).graph.initializer}
    src = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(fp32)).graph.initializer}
    np.testing.assert_array_equal(inits["w"], ladder.round_fp16(src["w"]))
    np.testing.assert_array_equal(inits["bias"], ladder.round_fp16(src["bias"]))
    assert (inits["w"] != src["w"]).mean() > 0.9
    np.testing.assert_array_equal(inits["aipp_scale"], src["aipp_scale"])   # AIPP's are not
    np.testing.assert_array_equal(inits["aipp_offset"], src["aipp_offset"])
    got = run_all(with_outputs(d, tmp_path, "d_out.onnx", ["act"]), x)
    x16 = ladder.round_fp16(aipp.apply_numpy(TINY_AIPP, x))
    act = ladder.round_fp16(np.maximum(ladder.round_fp16(
        conv_reference(x16, inits["w"], inits["bias"])), 0))
    for name in ("act", "class"):                # every value is an fp16 value
        np.testing.assert_array_equal(got[name], ladder.round_fp16(got[name]))
    assert (np.abs(got["act"] - act) <= ulp16(act)).all()
    assert (got["act"] == act).mean() >= 0.95
    logits = ladder.round_fp16(act.astype(np.float64).mean(axis=(2, 3)))
    assert (np.abs(got["class"] - logits) <= 2 * ulp16(logits)).all()
    fp32_logits = run_all(fp32, x)["class"]
    assert np.abs(fp32_logits - got["class"]).max() > 0     # the rounding changed something
    ops = [n.op_type for n in onnx.load(str(d)).graph.node]
    assert ops.count("Cast") == 1 + 2 * 5                   # AIPP's, then a pair per output


# ----------------------------------------------------------------- row a
@pytest.fixture(scope="module")
def recipe():
    from zoorepro import recipebook
    return recipebook.load("squeezenet1_1")


@pytest.mark.parametrize("kind", ["420", "portrait", "small"])
def test_framework_inputs_equal_pil_resize_and_numpy_normalise(tmp_path, recipe, kind):
    """Independently: PIL's resize of the shorter side to 256 (long side int(256 * long /
    short)), the centre crop at int(round(...)) offsets, /255 and (x - mean) / std in float64.
    Within 2e-6 (float32 arithmetic on values up to 2.7).  And the same uint8 pixels as the
    recipe's .bin of a PIL-decoded image: row a and row b differ only in the normalisation."""
    from PIL import Image
    from zoorepro.recipe import decode
    path = jpegs.make(kind, tmp_path)
    img = Image.open(path).convert("RGB")
    w, h = img.size
    s = 256
    size = (s, int(s * h / w)) if w < h else (int(s * w / h), s)
    img = img.resize(size, Image.BILINEAR)
    left, top = int(round((size[0] - 224) / 2)), int(round((size[1] - 224) / 2))
    px = np.asarray(img.crop((left, top, left + 224, top + 224)), np.float64) / 255
    want = ((px - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]).transpose(2, 0, 1)
    got = ladder.framework_inputs(recipe, [path])
    assert got.shape == (1, 3, 224, 224) and got.dtype == np.float32
    assert np.abs(got[0] - want).max() < 2e-6
    pp = recipe.preprocess
    back = got[0].transpose(1, 2, 0) * np.array(pp.std) + np.array(pp.mean)
    np.testing.assert_array_equal(np.rint(back * 255).astype(np.uint8),
                                  decode.preprocess_array(path, pp))


def test_framework_logits_batch_and_how(tmp_path, recipe):
    import torch
    torch.manual_seed(0)
    model = recipe.build_model().eval()
    torch.save(model.state_dict(), tmp_path / "random.pth")
    paths = [jpegs.make(k, tmp_path) for k in ("420", "gray", "short256")]
    with torch.inference_mode():
        want = model(torch.from_numpy(ladder.framework_inputs(recipe, paths))).numpy()
    got = ladder.framework_logits(recipe, tmp_path / "random.pth", paths, batch_size=2,
                                  threads=1)
    assert got.shape == (3, 1000) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
    assert ladder.framework_engine() == f"torch {torch.__version__} (CPU)"
    how = ladder.framework_how(recipe)
    for part in ("Resize(256, interpolation=InterpolationMode.BILINEAR)", "CenterCrop(224)",
                 "ToTensor()", "Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, "
                 "0.225])", ".convert('RGB')", "float32"):
        assert part in how


# ----------------------------------------------------------------- compare
KEYS = ["i0", "i1", "i2", "i3"]
LABELS = np.array([0, 1, 2, 3])
BASE = np.array([[5, 4, 3, 2, 1, 0],          # top-1 0: right
                 [5, 4, 3, 2, 1, 0],          # top-1 0: wrong (label 1 second)
                 [0, 1, 2, 3, 4, 5],          # top-1 5: wrong (label 2 fourth)
                 [1, 1, 1, 1, 1, 1]], np.float32)   # ties: 0, 1, 2, ... (label 3 fourth)
ROW = np.array([[4, 5, 3, 2, 1, 0],           # 1: changed, broken (label second)
                [4, 5, 3, 2, 1, 0],           # 1: changed, fixed (label first)
                [0, 1, 2, 3, 4, 7],           # 5: unchanged (label fourth), delta 2
                [np.nan, 1, 1, 1, 1, 1]], np.float32)   # no class: changed, a miss


def test_compare_known_answers():
    m = ladder.compare(ROW, BASE, LABELS, KEYS)
    assert m == {"images": 4, "top1": 25.0, "top2": 50.0, "top3": 50.0, "top4": 75.0,
                 "top5": 75.0, "agreement_pct": 25.0, "compared": 4, "changed": 3,
                 "fixed": 1, "broken": 1,
                 "changed_examples": ["i0: 0 -> 1 (label 0)", "i1: 0 -> 1 (label 1)",
                                      "i3: 0 -> non-finite (label 3)"],
                 "max_abs_logit_delta": 2.0}
    assert ladder.compare(ROW, BASE, LABELS, KEYS, examples=1)["changed_examples"] == [
        "i0: 0 -> 1 (label 0)"]
    same = ladder.compare(BASE, BASE, LABELS, KEYS)
    assert (same["top1"], same["top2"], same["top4"], same["agreement_pct"], same["changed"],
            same["max_abs_logit_delta"]) == (25.0, 50.0, 100.0, 100.0, 0, 0.0)
    assert ladder.top1(ROW).tolist() == [1, 1, 5, -2]


def test_compare_fields_are_the_ladder_rows():
    from zoorepro.run.records import LadderRow
    row = LadderRow(step="d", name="fp16", how="-", status="ok",
                    **ladder.compare(ROW, BASE, LABELS, KEYS))
    assert row.changed == 3


def test_compare_1001_classes_shift_the_background():
    """A 1001-class row (class 0 background, 9 here: first everywhere) against a 1000-class
    base: classes shifted back by one, no logit delta (the class counts differ)."""
    row = np.full((4, 1001), -10, np.float32)
    row[:, 0], row[:, 1:7] = 9, ROW
    base = np.full((4, 1000), -10, np.float32)
    base[:, :6] = BASE
    m = ladder.compare(row, base, LABELS, KEYS)
    # ranks of the labels: i0 2, i1 1, i2 4, i3 non-finite
    assert m == {"images": 4, "top1": 0.0, "top2": 25.0, "top3": 50.0, "top4": 50.0,
                 "top5": 75.0, "agreement_pct": 0.0, "compared": 4, "changed": 4, "fixed": 0,
                 "broken": 1, "changed_examples": [
                     "i0: 0 -> background (label 0)", "i1: 0 -> background (label 1)",
                     "i2: 5 -> background (label 2)", "i3: 0 -> non-finite (label 3)"],
                 "max_abs_logit_delta": None}
    assert ladder.top1(row).tolist() == [-1, -1, -1, -2]
    row[:, 0] = -20                                  # background last: the base's classes
    row[3, 1] = 1
    m = ladder.compare(row, base, LABELS, KEYS)
    assert (m["top1"], m["changed"], m["changed_examples"]) == (
        25.0, 2, ["i0: 0 -> 1 (label 0)", "i1: 0 -> 1 (label 1)"])


def test_compare_all_non_finite_and_bad_shapes():
    m = ladder.compare(np.full_like(BASE, np.inf), BASE, LABELS, KEYS)
    assert (m["top5"], m["changed"], m["broken"], m["max_abs_logit_delta"]) == (0.0, 4, 1, None)
    note = ladder.non_finite_note(ROW, KEYS, "d")
    assert note.startswith("row d: 1 of 4 image(s) have NaN or infinite scores (e.g. i3)")
    assert ladder.non_finite_note(BASE, KEYS, "d") is None
    with pytest.raises(EvaluationError, match="4 key"):
        ladder.compare(ROW[:3], BASE, LABELS, KEYS)
    with pytest.raises(EvaluationError, match="labels must be 0-based class indices below 6"):
        ladder.compare(ROW, BASE, np.array([0, 1, 2, 6]), KEYS)
    with pytest.raises(EvaluationError, match="at least 5 classes"):
        ladder.compare(ROW[:, :4], BASE[:, :4], LABELS, KEYS)


# ----------------------------------------------------------------- ladder_csv
def test_ladder_csv_exact_text():
    text = ladder.ladder_csv(["x", "y", "z"], [0, 1, 2],
                             {"d": np.array([-2, 1, -1]), "b": np.array([0, 1, 2]),
                              "a": np.array([0, 1, 3])})
    assert text == ("image,label,top1_a,top1_b,top1_d,differs_a,differs_d\n"
                    "x,0,0,0,non-finite,0,1\n"
                    "y,1,1,1,1,0,0\n"
                    "z,2,3,2,background,1,1\n")
    assert [ladder.parse_class(t) for t in ("3", "0", "background", "non-finite")] == [
        3, 0, ladder.BACKGROUND, ladder.NO_CLASS]
    with pytest.raises(ValueError):
        ladder.parse_class("cat")
    with pytest.raises(EvaluationError, match="base step 'b' is not among the steps \\(a\\)"):
        ladder.ladder_csv(["x"], [0], {"a": np.array([0])})
    with pytest.raises(EvaluationError, match="top-1 a \\(2,\\)"):
        ladder.ladder_csv(["x"], [0], {"a": np.array([0, 1]), "b": np.array([0])})


# ----------------------------------------------------------------- the demo (e2e)
def backend_logits(model, bins, batch=8):
    """The rows' logits as the ladder gets them: the onnxruntime backend on the CPU."""
    from zoorepro import backends
    be = backends.create("onnxruntime", backends.Artifacts(aipp_onnx=str(model)), device="cpu")
    return np.concatenate([be.infer(bins[i:i + batch]) for i in range(0, len(bins), batch)])



@pytest.mark.e2e
def test_demo_rows_a_to_d(tmp_path, recipe, onnx_models, demo_images):
    """The 100 demo images with the demo weights: row b is the recipe's expected 65 / 87;
    rows a, c and d agree with it to within 2 images at top-1, a's logits within 1e-3 of b's
    (the same pixels, another normalisation order), c's and d's within 0.25 (fp16 spacing at
    the demo's largest logits, about 50, is 1/32)."""
    from zoorepro.recipe import data, preprocess
    _, fused = onnx_models
    labels_by_key = {data.image_key(line.split()[0]): int(line.split()[1])
                     for line in DEMO_LABELS.read_text().splitlines() if line.strip()}
    keys = [data.image_key(p.name) for p in demo_images]
    labels = np.array([labels_by_key[k] for k in keys])
    bins = np.stack([preprocess.preprocess_array(p, recipe.preprocess) for p in demo_images])
    b = backend_logits(fused, bins)
    rows = {"a": ladder.framework_logits(recipe, DEMO_WEIGHTS, demo_images, 8),
            "c": backend_logits(ladder.fp16_aipp_model(fused, tmp_path / "c.onnx"), bins),
            "d": backend_logits(ladder.fp16_network_model(fused, tmp_path / "d.onnx"), bins)}
    mb = ladder.compare(b, b, labels, keys)
    assert (mb["images"], mb["top1"], mb["top5"]) == (100, 65.0, 87.0)
    for step, tol in (("a", 1e-3), ("c", 0.25), ("d", 0.25)):
        m = ladder.compare(rows[step], b, labels, keys)
        assert m["changed"] <= 2 and abs(m["top1"] - 65.0) <= 2, (step, m)
        assert 0 < m["max_abs_logit_delta"] < tol, (step, m)
    d = rows["d"]
    np.testing.assert_array_equal(d, ladder.round_fp16(d))
