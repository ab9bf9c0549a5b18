"""``.pth`` -> ONNX as the recipe's ``squeezenet1_1_pth2onnx.py`` does, plus the AIPP model.

Recipe: torchvision ``squeezenet1_1`` + state_dict, ``eval()``, dummy ``randn(1,3,224,224)``,
input ``image``, output ``class``, ``dynamic_axes={'image': {0: '-1'}, 'class': {0: '-1'}}``,
``opset_version=11``.  We use the TorchScript exporter (``dynamo=False``) because the
torch.export-based one cannot target opset 11, which is what ATC supports.
"""
from __future__ import annotations

import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoorepro.recipe import aipp as aipp_mod
from zoorepro.files import atomic_write_bytes, writing

INPUT_NAME = "image"
OUTPUT_NAME = "class"
ONNX_NAME = "squeezenet1_1.onnx"
AIPP_ONNX_NAME = "squeezenet1_1_aipp.onnx"


def export_onnx(weights: str | os.PathLike, dest: str | os.PathLike, opset: int = 11) -> Path:
    """Export ``weights`` to ONNX at ``dest`` (atomic), then run ``onnx.checker``."""
    import onnx
    import torch
    from zoorepro.recipe.weights import build_model

    model = build_model(weights)
    dest = Path(dest)
    torch.manual_seed(0)
    dummy = torch.randn(1, 3, 224, 224)
    with writing(dest), tempfile.TemporaryDirectory(dir=_made(dest.parent)) as tmp:
        tmp_path = Path(tmp) / dest.name
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(model, (dummy,), str(tmp_path), input_names=[INPUT_NAME],
                              output_names=[OUTPUT_NAME], opset_version=opset, dynamo=False,
                              dynamic_axes={INPUT_NAME: {0: "-1"}, OUTPUT_NAME: {0: "-1"}})
        onnx.checker.check_model(str(tmp_path))
        os.replace(tmp_path, dest)
    return dest


def _made(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def build_aipp_model(onnx_path: str | os.PathLike, aipp: "aipp_mod.Aipp",
                     dest: str | os.PathLike) -> Path:
    """The portable stand-in for the ATC model: uint8 NHWC input, AIPP nodes in front."""
    import onnx
    model = onnx.load(str(onnx_path))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    # symbolic H/W: the recipe's ATC command fixes them (--input_shape image:N,3,224,224)
    aipp.check_model_input(dims[2].dim_value or 224, dims[3].dim_value or 224)
    fused = aipp_mod.prepend_to_onnx(model, aipp, INPUT_NAME)
    onnx.checker.check_model(fused, full_check=True)
    return atomic_write_bytes(dest, fused.SerializeToString())


@dataclass
class Parity:
    images: int
    max_abs_diff: float          # ONNX (float input) vs PyTorch
    max_abs_diff_aipp: float     # AIPP ONNX (uint8 input) vs PyTorch on host-normalised input
    top1_agreement: float        # fraction of images with the same top-1
    max_norm_diff: float         # AIPP numpy vs torchvision Normalize on the same pixels
    non_finite_images: int = 0   # images with a NaN/inf score anywhere: counted as disagreeing

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v or k != "non_finite_images"}


def parity(weights: str | os.PathLike, onnx_path: str | os.PathLike,
           aipp_onnx_path: str | os.PathLike, aipp: "aipp_mod.Aipp",
           batch_u8: np.ndarray) -> Parity:
    """Compare PyTorch with both ONNX models on real preprocessed images ``[N,224,224,3]``."""
    import onnxruntime as ort
    import torch
    from torchvision.transforms import functional as TF
    from zoorepro.recipe.weights import TORCHVISION_MEAN, TORCHVISION_STD, build_model

    model = build_model(weights)
    x_aipp = aipp_mod.apply_numpy(aipp, batch_u8)
    x_tv = TF.normalize(torch.from_numpy(batch_u8).permute(0, 3, 1, 2).float() / 255.0,
                        TORCHVISION_MEAN, TORCHVISION_STD)
    with torch.inference_mode():
        ref = model(torch.from_numpy(x_aipp)).numpy()
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    plain = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    fused = ort.InferenceSession(str(aipp_onnx_path), opts, providers=["CPUExecutionProvider"])
    out_plain = plain.run(None, {INPUT_NAME: x_aipp})[0]
    out_fused = fused.run(None, {INPUT_NAME: batch_u8})[0]
    # NaN is never agreement: an image with a non-finite score on any side disagrees, and
    # the largest differences are over the finite images (NaN when there is none)
    ok = np.isfinite(ref).all(1) & np.isfinite(out_plain).all(1) & np.isfinite(out_fused).all(1)

    def worst(x):
        return float(np.abs(x[ok] - ref[ok]).max()) if ok.any() else float("nan")
    return Parity(images=int(batch_u8.shape[0]), max_abs_diff=worst(out_plain),
                  max_abs_diff_aipp=worst(out_fused),
                  top1_agreement=float((ok & (out_fused.argmax(1) == ref.argmax(1))).mean()),
                  max_norm_diff=float(np.abs(x_tv.numpy() - x_aipp).max()),
                  non_finite_images=int((~ok).sum()))
