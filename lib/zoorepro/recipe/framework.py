"""Row a of the precision ladder: the framework's own float pipeline, torchvision's transforms
on the PIL image and the recipe's network in float32, as the framework's published accuracy
is measured (the recipe's numbers: ``preprocess.resize``, its interpolation, mean and std;
the crop is the network's input size).  Also the optional-import and batch checks the
ladder's other rows share (:mod:`zoorepro.recipe.ladder`)."""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from zoorepro.errors import DataError
from zoorepro.host import physical_cores


INTERPOLATION_MODES = {"bilinear": "BILINEAR", "bicubic": "BICUBIC", "nearest": "NEAREST",
                       "lanczos": "LANCZOS"}


def _need(module: str, what: str, install: str):
    """``module``, imported here (optional), or an error naming what needs it and the fix."""
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise DataError(f"the ladder's {what} needs {module}, which cannot be imported "
                        f"({exc}); install it: pip install {install}") from None


def _torchvision(pins: str = "torch==2.14.1 torchvision==0.29.1"):
    return _need("torch", "row a", pins), _need("torchvision.transforms", "row a", pins)


def _mode(recipe) -> str:
    name = recipe.preprocess.interpolation
    if name not in INTERPOLATION_MODES:
        raise DataError(f"{recipe.path}: preprocess.interpolation {name!r} has no torchvision "
                        f"mode in zoorepro.recipe.framework.INTERPOLATION_MODES: add it there")
    return INTERPOLATION_MODES[name]


def framework_crop(recipe) -> int:
    """The framework's centre crop: the network's input size (``model.size``).  A recipe
    whose AIPP crops keeps a larger ``.bin`` (``preprocess.crop``, e.g. 256 for 224)."""
    return recipe.model.size


def framework_transform(recipe):
    """torchvision's ``Compose([Resize(resize, interpolation), CenterCrop(size), ToTensor(),
    Normalize(mean, std)])`` with the recipe's numbers (``preprocess:`` in its recipe.yaml,
    the crop :func:`framework_crop`)."""
    _, tf = _torchvision()
    pp, mode = recipe.preprocess, getattr(tf.InterpolationMode, _mode(recipe))
    return tf.Compose([tf.Resize(pp.resize, interpolation=mode, antialias=True),
                       tf.CenterCrop(framework_crop(recipe)), tf.ToTensor(),
                       tf.Normalize(pp.mean, pp.std)])


def _open_rgb(path):
    from PIL import Image
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: ladder row a (PIL) cannot read it ({type(exc).__name__}: "
                        f"{exc}); replace or remove the image") from None


def framework_inputs(recipe, image_paths: Sequence[str | os.PathLike]) -> np.ndarray:
    """Row a's input, float32 ``[N, 3, crop, crop]``: ``Image.open(p).convert("RGB")``,
    then :func:`framework_transform`."""
    torch, _ = _torchvision()
    t = framework_transform(recipe)
    _check_batch(len(image_paths), 1, "row a")
    return torch.stack([t(_open_rgb(p)) for p in image_paths]).numpy()


def framework_logits(recipe, weights: str | os.PathLike,
                     image_paths: Sequence[str | os.PathLike], batch_size: int,
                     threads: int = 0) -> np.ndarray:
    """Row a: float32 logits ``[N, classes]``, the recipe's model with ``weights`` (eval,
    float32, CPU) on :func:`framework_inputs`, ``batch_size`` images at a time, in ``threads``
    torch threads (0: the physical cores; the previous setting is restored)."""
    from zoorepro.recipe.weights import build_model
    torch, _ = _torchvision()
    _check_batch(len(image_paths), batch_size, "row a")
    model = build_model(recipe, weights).float()
    before = torch.get_num_threads()
    torch.set_num_threads(threads or physical_cores())
    try:
        with torch.inference_mode():
            out = [model(torch.from_numpy(framework_inputs(recipe, image_paths[i:i + batch_size])))
                   .float().numpy() for i in range(0, len(image_paths), batch_size)]
    finally:
        torch.set_num_threads(before)
    return np.concatenate(out)


def _check_batch(n: int, batch_size: int, row: str) -> None:
    if n < 1 or batch_size < 1:
        raise DataError(f"ladder {row}: {n} image(s) in batches of {batch_size}: give at least "
                        f"one image (the run's scored images) and a batch size of at least 1")


def framework_how(recipe) -> str:
    """One sentence: how row a was computed (the transforms, the interpolation, versions)."""
    import torchvision
    torch, _ = _torchvision()
    pp = recipe.preprocess
    return (f"torchvision {torchvision.__version__} transforms on PIL.Image.open(path)"
            f".convert('RGB') (whatever the recipe's decoder): Resize({pp.resize}, "
            f"interpolation=InterpolationMode.{_mode(recipe)}), "
            f"CenterCrop({framework_crop(recipe)}), "
            f"ToTensor(), Normalize(mean={list(pp.mean)}, std={list(pp.std)}), then the "
            f"network in float32 (torch {torch.__version__}, eager, CPU), as the framework's "
            f"reference measures it")


def framework_engine() -> str:
    """What ran row a: ``torch <version> (CPU)``."""
    return f"torch {_torchvision()[0].__version__} (CPU)"
