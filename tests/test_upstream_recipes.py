"""zoorepro against the ModelZoo recipes' own scripts (``shared/third_party/modelzoo``).

For each of the three zoo recipes: the upstream ``pth2onnx`` script runs in a subprocess, from
a temporary folder holding a copy of it, on the same weights as :func:`export.export_onnx`
(the real demo weights for squeezenet1_1; random weights of the right shape, saved with
``torch.save``, for resnet50 and mobilenet_v2, whose torchvision weights cannot be had here),
and the two ONNX files are compared: op types in order, node names, attributes, initializers
(names and bytes), input/output names and the batch axis -- and then the whole graph. Then
the upstream postprocess script scores ais_bench-format TXT outputs and its result file is
compared, byte for byte, with :func:`evaluate.write_results`'.

The only shim is what the modelzoo README lists: torch >= 2.9's exporter needs
``dynamo=False`` (a ``sitecustomize.py`` on ``PYTHONPATH`` wraps ``torch.onnx.export``).
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from zoorepro import recipebook
from zoorepro.outputs import write_output
from zoorepro.recipe import evaluate, export

from conftest import DEMO_WEIGHTS

SHARED = Path(__file__).resolve().parents[2] / "shared"
MODELZOO = SHARED / "third_party" / "modelzoo"
pytestmark = pytest.mark.skipif(not MODELZOO.is_dir(),
                                reason=f"{MODELZOO} not present (the upstream recipes' scripts)")
ZOO = ("squeezenet1_1", "resnet50", "mobilenet_v2")
SHIM = """\
# torch >= 2.9: the default ONNX exporter is torch.export-based (needs onnxscript, cannot
# target opset 11); the recipes' torch 1.x had only the TorchScript one: dynamo=False.
import torch.onnx
_export = torch.onnx.export


def _torchscript_export(*args, **kwargs):
    kwargs.setdefault("dynamo", False)
    return _export(*args, **kwargs)


torch.onnx.export = _torchscript_export
"""


def _env(shim: Path | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if shim is not None:
        env["PYTHONPATH"] = str(shim)
    env["PYTHONWARNINGS"] = "ignore"
    return env


def _script(recipe, role: str, folder: Path) -> Path:
    """A copy of the recipe's upstream script ``role`` (pth2onnx, postprocess) in ``folder``."""
    src = MODELZOO / recipe.name / recipe.scripts[role]
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(src, folder / src.name))


def _run(argv: list, cwd: Path, shim: Path | None = None) -> str:
    r = subprocess.run([sys.executable, *map(str, argv)], cwd=cwd, env=_env(shim),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"{argv[0]} failed:\n{r.stderr[-3000:]}"
    return r.stdout


@pytest.fixture(scope="module")
def shim(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("shim")
    (d / "sitecustomize.py").write_text(SHIM)
    return d


def _random_weights(recipe, path: Path) -> Path:
    """Random weights of the recipe's model, every floating tensor drawn (BatchNorm's running
    variance positive), so that no initializer is a constant that could hide a difference."""
    import torch
    g = torch.Generator().manual_seed(7)
    sd = recipe.build_model().state_dict()
    for k, v in sd.items():
        if v.dtype.is_floating_point:
            r = torch.rand(v.shape, generator=g) if k.endswith("running_var") else \
                torch.randn(v.shape, generator=g) * 0.05
            sd[k] = r + 0.5 if k.endswith("running_var") else r
    torch.save(sd, path)
    return path


def upstream_export(recipe, weights: Path, work: Path, shim: Path) -> Path:
    """Run the recipe's pth2onnx as its README does, from ``work``; the ONNX it wrote."""
    script = _script(recipe, "pth2onnx", work)
    if recipe.name == "squeezenet1_1":       # pth2onnx.py PTH ONNX
        _run([script, weights, "upstream.onnx"], work, shim)
        return work / "upstream.onnx"
    if recipe.name == "resnet50":            # pth2onnx.py PTH -> ./resnet50_official.onnx
        _run([script, weights], work, shim)
        return work / "resnet50_official.onnx"
    # mobilenet_v2: ./mobilenet_v2-b0353104.pth -> ./output/mobilenet_v2.onnx (README: mkdir)
    shutil.copy(weights, work / "mobilenet_v2-b0353104.pth")
    (work / "output").mkdir()
    _run([script], work, shim)
    return work / "output" / "mobilenet_v2.onnx"


def _attrs(node) -> list:
    import onnx
    return [(a.name, onnx.helper.get_attribute_value(a)) for a in node.attribute]


def _batch_axis(vi):
    d = vi.type.tensor_type.shape.dim[0]
    return d.WhichOneof("value"), d.dim_param or d.dim_value


def _without_doc_strings(model):
    """The graph without doc strings: squeezenet1_1's upstream exports with verbose=True,
    which records the exporting machine's source locations in each node's doc_string."""
    import onnx
    m = onnx.ModelProto.FromString(model.SerializeToString())
    m.doc_string = ""
    m.graph.doc_string = ""
    for n in m.graph.node:
        n.doc_string = ""
    return m


def compare_onnx(ours_path: Path, theirs_path: Path, recipe) -> None:
    import onnx
    ours, theirs = onnx.load(str(ours_path)), onnx.load(str(theirs_path))
    assert [n.op_type for n in ours.graph.node] == [n.op_type for n in theirs.graph.node]
    assert [n.name for n in ours.graph.node] == [n.name for n in theirs.graph.node]
    assert [list(n.input) for n in ours.graph.node] == [list(n.input) for n in theirs.graph.node]
    for a, b in zip(ours.graph.node, theirs.graph.node):
        assert _attrs(a) == _attrs(b), a.name
    init = {t.name: (t.data_type, list(t.dims), onnx.numpy_helper.to_array(t).tobytes())
            for t in theirs.graph.initializer}
    assert [t.name for t in ours.graph.initializer] == list(init)
    for t in ours.graph.initializer:
        assert (t.data_type, list(t.dims), onnx.numpy_helper.to_array(t).tobytes()) == \
            init[t.name], t.name
    assert [i.name for i in ours.graph.input] == [i.name for i in theirs.graph.input] == \
        [recipe.model.input]
    assert [o.name for o in ours.graph.output] == [o.name for o in theirs.graph.output] == \
        [recipe.model.output]
    want = ("dim_param", "-1") if recipe.model.batch == "dynamic" else \
        ("dim_value", recipe.model.export_batch)
    for vi in (*ours.graph.input, *ours.graph.output, *theirs.graph.input,
               *theirs.graph.output):
        assert _batch_axis(vi) == want, vi.name
    assert [o.version for o in ours.opset_import] == [o.version for o in theirs.opset_import]
    # and nothing else differs either
    assert _without_doc_strings(ours).SerializeToString() == \
        _without_doc_strings(theirs).SerializeToString()


def _export_case(name: str, tmp_path: Path, shim: Path) -> None:
    recipe = recipebook.load(name)
    weights = DEMO_WEIGHTS if name == "squeezenet1_1" else \
        _random_weights(recipe, tmp_path / f"{name}.pth")
    theirs = upstream_export(recipe, weights, tmp_path / "upstream", shim)
    ours = export.export_onnx(recipe, weights, tmp_path / "ours" / export.onnx_name(recipe))
    compare_onnx(ours, theirs, recipe)
    if recipe.model.batch == "static":
        _aipp_model_takes_any_batch(recipe, ours, tmp_path)


def _aipp_model_takes_any_batch(recipe, onnx_path: Path, tmp_path: Path) -> None:
    """A static-batch ONNX (resnet50's 16): the AIPP model runs at batch 1 and 3, as ATC's
    --input_shape builds an OM per batch from it; the same image scores alike at both."""
    import onnxruntime as ort
    from zoorepro.recipe import aipp
    a = aipp.load(recipe.aipp_path)
    fused = export.build_aipp_model(recipe, onnx_path, a, tmp_path / export.aipp_onnx_name(recipe))
    s = ort.InferenceSession(str(fused), providers=["CPUExecutionProvider"])
    crop = recipe.preprocess.crop
    x = np.random.default_rng(0).integers(0, 256, (3, crop, crop, 3), dtype=np.uint8)
    three = s.run(None, {recipe.model.input: x})[0]
    one = s.run(None, {recipe.model.input: x[:1]})[0]
    assert three.shape == (3, recipe.model.classes) and one.shape == (1, recipe.model.classes)
    np.testing.assert_allclose(one[0], three[0], rtol=1e-4, atol=1e-4)


def test_squeezenet1_1_export_equals_upstream(tmp_path, shim):
    _export_case("squeezenet1_1", tmp_path, shim)


@pytest.mark.e2e       # about 8 s: MobileNetV2 exported twice (the quick tier keeps SqueezeNet's)
def test_mobilenet_v2_export_equals_upstream(tmp_path, shim):
    _export_case("mobilenet_v2", tmp_path, shim)


@pytest.mark.e2e       # about 10 s: ResNet-50 exported twice
def test_resnet50_export_equals_upstream(tmp_path, shim):
    _export_case("resnet50", tmp_path, shim)


# ------------------------------------------------------------------ scoring
def write_outputs(folder: Path, n: int, seed: int, ranks=None) -> Path:
    """``n`` images' ais_bench TXT outputs (random scores, all distinct as ``%f`` writes them,
    so no tie can order differently) and their ``val_label.txt``; the label of image i sits
    at rank ``ranks[i]`` (random by default: hits at top-1 and beyond, and misses)."""
    rng = np.random.default_rng(seed)
    out = folder / "result"
    out.mkdir(parents=True)
    lines = []
    ranks = rng.integers(0, 8, n) if ranks is None else ranks
    for i in range(n):
        key = f"ILSVRC2012_val_{i + 1:08d}"
        scores = (rng.permutation(1000) * 0.01 - 5.0).astype(np.float32)
        label = int(np.argsort(-scores, kind="stable")[int(ranks[i])])
        write_output(out / f"{key}_0.txt", scores[None], "TXT")
        lines.append(f"{key}.JPEG {label}\n")
    (folder / "val_label.txt").write_text("".join(lines))
    return out


def upstream_score(recipe, result_dir: Path, labels: Path, work: Path) -> Path:
    """Run the recipe's postprocess as its scoring.command says, from ``work`` (the result
    folder and the label file put in); the result file it wrote."""
    script = _script(recipe, "postprocess", work)
    words = shlex.split(recipe.scoring.command)
    assert words[0] == "python3" and words[1] == recipe.scoring.script == script.name
    out = _run([script, result_dir, labels, *words[4:]], work)
    if recipe.name == "mobilenet_v2":       # it prints what it writes
        assert "Top1 accuracy: " in out
    return work / recipe.scoring.result_file


def _ours(recipe, result_dir: Path, labels: Path, out: Path) -> tuple[dict, Path]:
    from zoorepro.recipe import data
    pred = evaluate.read_result_folder(result_dir)
    m = evaluate.score(pred, data.read_labels(labels))
    return m, evaluate.write_results(m, out, recipe.scoring.result_file)[0]


@pytest.mark.parametrize("name", ZOO)
def test_scoring_equals_upstream(tmp_path, name):
    recipe = recipebook.load(name)
    result = write_outputs(tmp_path, 20, seed=ZOO.index(name))
    theirs = upstream_score(recipe, result, tmp_path / "val_label.txt", tmp_path / "up")
    m, ours = _ours(recipe, result, tmp_path / "val_label.txt", tmp_path / "ours")
    assert ours.name == theirs.name == recipe.scoring.result_file
    assert ours.read_bytes() == theirs.read_bytes()
    up = {v["key"]: v["value"] for v in json.loads(theirs.read_text())["value"]}
    assert up["Number of images"] == "20" and up["Number of classes"] == "1000"
    tops = [float(up[f"Top{k} accuracy"].rstrip("%")) for k in range(1, 6)]
    assert tops == [round(m[f"top{k}"], 2) for k in range(1, 6)]
    assert tops[0] < tops[4] <= 100.0 and len(set(tops)) > 2     # the data exercise top-k


def test_scoring_rounds_as_upstream_where_python_would_not(tmp_path):
    """4,000 images, 1 hit at top-1: 0.025 %, which upstream's numpy round writes "0.02%"
    (Python's round gives 0.03): the smallest image count where the two differ."""
    recipe = recipebook.load("squeezenet1_1")
    ranks = np.full(4000, 9)
    ranks[0], ranks[1:4] = 0, 1
    result = write_outputs(tmp_path, 4000, seed=5, ranks=ranks)
    theirs = upstream_score(recipe, result, tmp_path / "val_label.txt", tmp_path / "up")
    m, ours = _ours(recipe, result, tmp_path / "val_label.txt", tmp_path / "ours")
    assert ours.read_bytes() == theirs.read_bytes()
    up = {v["key"]: v["value"] for v in json.loads(theirs.read_text())["value"]}
    assert up["Top1 accuracy"] == "0.02%" and up["Top2 accuracy"] == "0.1%"
    assert str(round(m["top1"], 2)) == "0.03"
