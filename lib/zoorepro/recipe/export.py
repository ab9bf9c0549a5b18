"""``.pth`` -> ONNX exactly as the recipe's upstream ``pth2onnx`` does, plus the AIPP model.

Upstream (each recipe's pth2onnx script): the recipe's model (``model.builder``) with the
state_dict, a dummy ``randn(export_batch, 3, size, size)``, input and output named as the
recipe says (``model.input``, ``model.output``), ``opset_version`` the recipe's; a dynamic
batch (``model.batch: dynamic``) is ``dynamic_axes={input: {0: '-1'}, output: {0: '-1'}}``,
a static one (``static``) has no ``dynamic_axes``, so the batch is ``export_batch``.  We use
the TorchScript exporter (``dynamo=False``), which the recipes' torch 1.x had as its only
one: the torch.export-based exporter, torch's default since 2.9, cannot target opset 11,
which is what ATC supports.  Upstream exports in eval mode (explicitly, or by the
exporter's default ``training=EVAL``): so does this.
"""
from __future__ import annotations

import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoorepro.errors import AippError
from zoorepro.files import atomic_write_bytes, writing
from zoorepro.recipe import aipp as aipp_mod

# the batch axis of a model zoorepro makes (the AIPP model of a static-batch ONNX): named as
# upstream names a dynamic one
BATCH_DIM = "-1"


def onnx_name(recipe) -> str:
    """The exported ONNX's file name: ``<recipe>.onnx``."""
    return f"{recipe.name}.onnx"


def aipp_onnx_name(recipe) -> str:
    """The AIPP model's file name: ``<recipe>_aipp.onnx``."""
    return f"{recipe.name}_aipp.onnx"


def export_onnx(recipe, weights: str | os.PathLike, dest: str | os.PathLike,
                opset: int | None = None) -> Path:
    """Export ``weights`` to ONNX at ``dest`` (atomic) as the recipe's pth2onnx does, then run
    ``onnx.checker``.  ``opset``: by default the recipe's (``model.opset``)."""
    import onnx
    import torch
    from zoorepro.recipe.weights import build_model

    m = recipe.model
    model = build_model(recipe, weights)
    dest = Path(dest)
    torch.manual_seed(0)
    dummy = torch.randn(m.export_batch, 3, m.size, m.size)
    axes = {m.input: {0: "-1"}, m.output: {0: "-1"}} if m.batch == "dynamic" else None
    with writing(dest), tempfile.TemporaryDirectory(dir=_made(dest.parent)) as tmp:
        tmp_path = Path(tmp) / dest.name
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(model, (dummy,), str(tmp_path), input_names=[m.input],
                              output_names=[m.output], opset_version=int(opset or m.opset),
                              dynamo=False, dynamic_axes=axes)
        onnx.checker.check_model(str(tmp_path))
        os.replace(tmp_path, dest)
    return dest


def _made(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def check_aipp(recipe, aipp: "aipp_mod.Aipp") -> None:
    """The AIPP config must take the recipe's ``.bin`` images (``src_image_size`` =
    ``preprocess.crop``) and give the network's input (its output = ``model.size``)."""
    crop, size = recipe.preprocess.crop, recipe.model.size
    if (aipp.src_h, aipp.src_w) != (crop, crop):
        raise AippError(f"{aipp.path}: src_image_size is {aipp.src_w}x{aipp.src_h}, but the "
                        f"recipe's preprocessing writes {crop}x{crop} images (preprocess.crop "
                        f"in {recipe.path}); set src_image_size_w/src_image_size_h to {crop}"
                        + _or_the_recipes(aipp, recipe))
    if aipp.out_hw != (size, size):
        which = "crop_size_h/crop_size_w" if aipp.crop else "src_image_size_h/src_image_size_w"
        raise AippError(f"{aipp.path}: AIPP gives {aipp.out_hw[0]}x{aipp.out_hw[1]} ({which}), "
                        f"but the network takes {size}x{size} (model.size in {recipe.path}); "
                        f"set {which} to {size} (and crop: true to cut it from the "
                        f"{crop}x{crop} input)" + _or_the_recipes(aipp, recipe))


def _or_the_recipes(aipp, recipe) -> str:
    """The other way out of an AIPP mismatch: the recipe's own config, unless that is the
    file at fault (then the recipe itself disagrees: fix one of its two files)."""
    if os.path.realpath(aipp.path) == os.path.realpath(recipe.aipp_path):
        return ("; the recipe's own AIPP config and its recipe.yaml disagree: fix one of "
                "the two")
    return f", or use the recipe's own AIPP config ({recipe.aipp_path})"


def build_aipp_model(recipe, onnx_path: str | os.PathLike, aipp: "aipp_mod.Aipp",
                     dest: str | os.PathLike) -> Path:
    """The portable stand-in for the ATC model: uint8 NHWC ``[N, src_h, src_w, 3]`` (the
    AIPP config's ``src_image_size``: the recipe's ``.bin`` images), the AIPP steps (crop,
    then normalise) as nodes in front of the ONNX.

    The batch axis is symbolic even when the ONNX's is static (``model.batch: static``, the
    export batch fixed): ATC's ``--input_shape`` re-fixes the batch for every ``.om`` it
    builds from that ONNX, and the AIPP model takes any batch in the same way (its output's
    batch axis is made symbolic too)."""
    import onnx
    check_aipp(recipe, aipp)
    model = onnx.load(str(onnx_path))
    names = [i.name for i in model.graph.input]
    if recipe.model.input not in names:
        raise AippError(f"{onnx_path}: has no input {recipe.model.input!r} (it has "
                        f"{', '.join(names)}), the recipe's model.input in {recipe.path}; "
                        f"export it with the recipe (leave onnx_model empty) or give the "
                        f"recipe's ONNX")
    dims = model.graph.input[names.index(recipe.model.input)].type.tensor_type.shape.dim
    hw = [d.dim_value for d in dims[2:4]]
    size = recipe.model.size
    if len(dims) != 4 or any(v and v != size for v in hw):
        raise AippError(f"{onnx_path}: input {recipe.model.input} is "
                        f"{[d.dim_value or d.dim_param for d in dims]}, not [N, 3, {size}, "
                        f"{size}] (model.size in {recipe.path}); give the recipe's ONNX")
    fused = aipp_mod.prepend_to_onnx(model, aipp, recipe.model.input)
    if recipe.model.batch == "static":
        _symbolic_batch(fused)
    onnx.checker.check_model(fused, full_check=True)
    return atomic_write_bytes(dest, fused.SerializeToString())


def _symbolic_batch(model) -> None:
    """Inputs' and outputs' first axis symbolic; value_info (shape hints, which name the
    export batch) dropped: the shapes follow from the input."""
    for vi in [*model.graph.input, *model.graph.output]:
        dims = vi.type.tensor_type.shape.dim
        if len(dims):
            dims[0].ClearField("dim_value")
            dims[0].dim_param = BATCH_DIM
    del model.graph.value_info[:]


@dataclass
class Parity:
    images: int
    max_abs_diff: float          # ONNX (float input) vs PyTorch
    max_abs_diff_aipp: float     # AIPP ONNX (uint8 input) vs PyTorch on host-normalised input
    top1_agreement: float        # fraction of images with the same top-1
    max_norm_diff: float         # AIPP numpy vs the framework's Normalize on the same pixels
    non_finite_images: int = 0   # images with a NaN/inf score anywhere: counted as disagreeing

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v or k != "non_finite_images"}


def host_normalise(recipe, batch_u8: np.ndarray) -> np.ndarray:
    """What the framework does on the host, float32 NCHW: the network's centre crop of the
    ``.bin`` images (offsets ``int(round((d - size) / 2))``, as torchvision's CenterCrop;
    nothing when they are the network's size), ``/ 255``, then ``(x - mean) / std`` with the
    recipe's ``preprocess.mean``/``std``."""
    import torch
    from torchvision.transforms import functional as TF
    size = recipe.model.size
    x = torch.from_numpy(np.ascontiguousarray(batch_u8)).permute(0, 3, 1, 2).float() / 255.0
    if tuple(x.shape[2:]) != (size, size):
        x = TF.center_crop(x, [size, size])
    return TF.normalize(x, list(recipe.preprocess.mean), list(recipe.preprocess.std)).numpy()


def _run(session, name: str, x: np.ndarray, batch: int | None) -> np.ndarray:
    """``session`` on ``x``; a static-batch model (``batch``) in chunks of that batch, the
    last padded with its final image and cut back."""
    if not batch:
        return session.run(None, {name: x})[0]
    out = []
    for i in range(0, len(x), batch):
        part = x[i:i + batch]
        pad = batch - len(part)
        if pad:
            part = np.concatenate([part, np.repeat(part[-1:], pad, axis=0)])
        out.append(session.run(None, {name: part})[0][:batch - pad])
    return np.concatenate(out)


def parity(recipe, weights: str | os.PathLike, onnx_path: str | os.PathLike,
           aipp_onnx_path: str | os.PathLike, aipp: "aipp_mod.Aipp",
           batch_u8: np.ndarray) -> Parity:
    """Compare PyTorch with both ONNX models on real preprocessed images
    ``[N, src_h, src_w, 3]``, and AIPP's normalisation with the framework's on the host."""
    import onnxruntime as ort
    import torch
    from zoorepro.recipe.weights import build_model

    model = build_model(recipe, weights)
    x_aipp = aipp_mod.apply_numpy(aipp, batch_u8)
    x_host = host_normalise(recipe, batch_u8)
    with torch.inference_mode():
        ref = model(torch.from_numpy(x_aipp)).numpy()
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    plain = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    fused = ort.InferenceSession(str(aipp_onnx_path), opts, providers=["CPUExecutionProvider"])
    dim0 = plain.get_inputs()[0].shape[0]
    static = dim0 if isinstance(dim0, int) else None
    out_plain = _run(plain, recipe.model.input, x_aipp, static)
    out_fused = fused.run(None, {recipe.model.input: batch_u8})[0]
    # NaN is never agreement: an image with a non-finite score on any side disagrees, and
    # the largest differences are over the finite images (NaN when there is none)
    ok = np.isfinite(ref).all(1) & np.isfinite(out_plain).all(1) & np.isfinite(out_fused).all(1)

    def worst(x):
        return float(np.abs(x[ok] - ref[ok]).max()) if ok.any() else float("nan")
    return Parity(images=int(batch_u8.shape[0]), max_abs_diff=worst(out_plain),
                  max_abs_diff_aipp=worst(out_fused),
                  top1_agreement=float((ok & (out_fused.argmax(1) == ref.argmax(1))).mean()),
                  max_norm_diff=float(np.abs(x_host - x_aipp).max()),
                  non_finite_images=int((~ok).sum()))
