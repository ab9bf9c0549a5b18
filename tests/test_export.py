import onnx

from zoorepro.recipe import aipp, export

from conftest import AIPP_CONFIG, DEMO_WEIGHTS


def test_onnx_matches_recipe_export(onnx_models):
    plain, fused = onnx_models
    m = onnx.load(str(plain))
    onnx.checker.check_model(m)
    assert [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")] == [11]
    assert [i.name for i in m.graph.input] == ["image"]
    assert [o.name for o in m.graph.output] == ["class"]
    dims = m.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "-1" and [d.dim_value for d in dims[1:]] == [3, 224, 224]
    f = onnx.load(str(fused))
    t = f.graph.input[0].type.tensor_type
    assert f.graph.input[0].name == "image" and t.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_value for d in t.shape.dim[1:]] == [224, 224, 3]


def test_parity_with_pytorch_on_real_images(onnx_models, demo_batch):
    plain, fused = onnx_models
    p = export.parity(DEMO_WEIGHTS, plain, fused, aipp.load(AIPP_CONFIG), demo_batch)
    assert p.images == 8
    assert p.max_abs_diff < 1e-3 and p.max_abs_diff_aipp < 1e-3   # logits are O(10)
    assert p.top1_agreement == 1.0
    assert p.max_norm_diff < 2e-6


def test_parity_counts_nan_as_disagreement(tmp_path, demo_batch, monkeypatch):
    """PyTorch and both ONNX models all NaN (a NaN classifier): parity said "top-1
    agreement 100 %" next to a max difference of nan; NaN is disagreement now."""
    import torch
    from zoorepro.recipe import weights
    model = weights.build_model(DEMO_WEIGHTS)
    with torch.no_grad():
        model.classifier[1].weight.fill_(float("nan"))
    monkeypatch.setattr(weights, "build_model", lambda path: model)
    plain = tmp_path / export.ONNX_NAME
    torch.onnx.export(model, (torch.zeros(1, 3, 224, 224),), str(plain), input_names=["image"],
                      output_names=["class"], opset_version=11, dynamo=False,
                      dynamic_axes={"image": {0: "-1"}, "class": {0: "-1"}})
    a = aipp.load(AIPP_CONFIG)
    fused = export.build_aipp_model(plain, a, tmp_path / export.AIPP_ONNX_NAME)
    p = export.parity(DEMO_WEIGHTS, plain, fused, a, demo_batch[:2])
    assert p.top1_agreement == 0.0 and p.non_finite_images == 2
    assert p.to_dict()["non_finite_images"] == 2
