"""Weights: load a ``.pth`` safely and check it against the recipe's model.

The model is the recipe's (``model.builder`` in its ``recipe.yaml``, built untrained by
:meth:`~zoorepro.recipebook.Recipe.build_model`): a state_dict must hold exactly its tensors,
with its shapes, as real floating point that float32 can hold.  The builder itself is checked
against the recipe: its learnable-parameter count must be ``model.parameters``.  How a
recipe's demo weights are made (a conversion from another framework) is the recipe's own
code, in its folder (``weights.demo.convert``), never here.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path

from zoorepro.errors import RecipeError, WeightsError  # noqa: F401  (raised here)

# (recipe.yaml, its sha256, builder, parameters) -> _Expected: a builder is run once per recipe
_EXPECTED: dict = {}


# ------------------------------------------------------------------- .pth
class _Expected:
    """What the recipe's model's state_dict holds: each tensor's shape, whether it is
    floating point (the weights) and the keys a file may leave out (counters such as
    BatchNorm's ``num_batches_tracked``, which PyTorch fills in when a file lacks them)."""

    def __init__(self, shapes: dict, floating: set, optional: set):
        self.shapes, self.floating, self.optional = shapes, floating, optional


def learnable_parameters(model) -> int:
    """What ``model.parameters`` counts: the elements of the parameters that train."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))


def expected(recipe) -> _Expected:
    """The recipe's model's state_dict, as a file must hold it; the builder's model is checked
    against ``model.parameters`` (a :class:`RecipeError` naming recipe.yaml when they differ)."""
    key = (str(recipe.path), recipe.sha256, recipe.model.builder, recipe.model.parameters)
    if key not in _EXPECTED:
        model = recipe.build_model()
        n = learnable_parameters(model)
        if n != recipe.model.parameters:
            raise RecipeError(
                f"{recipe.path}: model.builder {recipe.model.builder} builds a model with "
                f"{n:,} learnable parameters, but model.parameters says "
                f"{recipe.model.parameters:,}: the builder and the recipe disagree. Fix the "
                f"builder, or set model.parameters to {n} if the builder is right")
        sd = model.state_dict()
        floating = {k for k, v in sd.items() if v.dtype.is_floating_point}
        # PyTorch's own rule for what may be absent: load only the floating tensors and see
        # which of the others it does not report missing
        missing = set(model.load_state_dict({k: sd[k] for k in floating},
                                            strict=False).missing_keys)
        optional = {k for k in sd if k not in floating and k not in missing}
        _EXPECTED[key] = _Expected({k: tuple(v.shape) for k, v in sd.items()}, floating,
                                   optional)
    return _EXPECTED[key]


def expected_shapes(recipe) -> dict:
    """``{name: shape}`` of the recipe's model's state_dict (the builder checked first)."""
    return dict(expected(recipe).shapes)


def _what(recipe) -> str:
    return f"{recipe.title} ({recipe.name}, {recipe.model.builder})"


def check_state_dict(recipe, sd: dict, path: str) -> None:
    """Raise :class:`WeightsError` naming every missing, unexpected or mis-shaped tensor."""
    import torch
    exp = expected(recipe)
    want = exp.shapes
    odd = [f"{str(k)[:60]!r} ({type(v).__name__})" for k, v in sd.items()
           if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if odd:
        raise WeightsError(f"{path}: not a state_dict of tensors: {', '.join(odd[:6])}"
                           f"{' ...' if len(odd) > 6 else ''} are not named tensors. Give a "
                           f"{recipe.name} state_dict saved with "
                           f"torch.save(model.state_dict(), ...)")
    _check_storage(sd, path)
    missing = [k for k in want if k not in sd and k not in exp.optional]
    unexpected = [k for k in sd if k not in want]
    shapes = [f"{k}: file {tuple(sd[k].shape)} vs {recipe.name} {want[k]}"
              for k in want if k in sd and tuple(sd[k].shape) != want[k]]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)}: {', '.join(missing[:6])}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)}: {', '.join(unexpected[:6])}")
        if shapes:
            parts.append("wrong shape: " + "; ".join(shapes[:6]))
        raise WeightsError(f"{path}: not a state_dict of the recipe's model {_what(recipe)} "
                           f"({' | '.join(parts)}). Give {recipe.weights.hint} (another "
                           f"model's weights, even a close variant, differ)")
    weights = [k for k in want if k in exp.floating]
    kinds = [f"{k} ({sd[k].dtype})" for k in weights
             if sd[k].is_complex() or not sd[k].dtype.is_floating_point]
    if kinds:
        raise WeightsError(f"{path}: tensor(s) {', '.join(kinds[:6])}"
                           f"{' ...' if len(kinds) > 6 else ''} are not real floating point: "
                           f"cast to float32 they give garbage (a complex one loses its "
                           f"imaginary part). Give the weights as trained, e.g. torch.float32 "
                           f"(float16, bfloat16 and float64 are read with a note)")
    # the model reads float32: checked as it will be read (float64 1e300 is finite, but inf
    # in float32)
    bad = [k for k in weights if not bool(sd[k].isfinite().all())]
    if bad:
        raise WeightsError(f"{path}: tensor(s) {', '.join(bad[:6])} hold NaN or infinite values: "
                           f"the weights are damaged (every prediction would be meaningless); "
                           f"download or export them again")
    huge = [k for k in weights if not bool(sd[k].to(torch.float32).isfinite().all())]
    if huge:
        raise WeightsError(f"{path}: tensor(s) {', '.join(huge[:6])} hold values beyond "
                           f"float32's range (about 3.4e38): the model reads its weights as "
                           f"float32, where they become infinite (every prediction would be "
                           f"meaningless). The weights are damaged or scaled by mistake; "
                           f"download or export them again")


# floating dtypes the checks and the cast to float32 handle (float8 and others are refused)
_READABLE_FLOATS = ("float16", "bfloat16", "float32", "float64")


def _check_storage(sd: dict, path: str) -> None:
    """Refuse, by name, tensors no check can look at: meta (no values), sparse or other
    non-strided layouts, quantized ones, float8 and other exotic floating dtypes."""
    odd = []
    for k, v in sd.items():
        dtype = str(v.dtype).removeprefix("torch.")
        if v.is_meta:
            odd.append(f"{k} (a meta tensor: it holds no values)")
        elif str(v.layout) != "torch.strided":
            odd.append(f"{k} ({v.layout})")
        elif v.is_quantized:
            odd.append(f"{k} (quantized, {v.dtype})")
        elif v.dtype.is_floating_point and dtype not in _READABLE_FLOATS:
            odd.append(f"{k} ({v.dtype})")
    if odd:
        raise WeightsError(f"{path}: tensor(s) {', '.join(odd[:6])}"
                           f"{' ...' if len(odd) > 6 else ''} cannot be checked or read as "
                           f"weights. Give dense tensors with their values, saved with "
                           f"torch.save(model.state_dict(), ...) from a model on the CPU "
                           f"(float32, or float16, bfloat16, float64)")


def dtype_notes(path: str | os.PathLike) -> list[str]:
    """Notes for a run's records (a checked state_dict of another float dtype than float32,
    which the model reads as float32): one line per dtype; [] for float32 weights.  Integer
    buffers (BatchNorm's ``num_batches_tracked``) are counters, not weights: not noted."""
    sd = _read(Path(path), "")
    by_dtype: dict = {}
    for k, v in sd.items():
        if _is_tensor(v) and v.dtype.is_floating_point and v.dtype != _float32():
            by_dtype.setdefault(str(v.dtype), []).append(k)
    return [f"weights {Path(path).name}: {len(keys)} tensor(s) in {dtype} (e.g. {keys[0]}), "
            f"read as torch.float32: " + (
                "rounded to float32, as the recipe's model is" if dtype == "torch.float64"
                else f"the accuracy is that of the {dtype.removeprefix('torch.')}-rounded "
                     f"weights, not of the float32 originals")
            for dtype, keys in sorted(by_dtype.items())]


def _float32():
    import torch
    return torch.float32


def _is_tensor(v) -> bool:
    import torch
    return isinstance(v, torch.Tensor)


def load_state_dict(recipe, path: str | os.PathLike) -> dict:
    """Load a ``.pth`` without executing pickled code (``weights_only=True``) and check it
    against the recipe's model."""
    path = Path(path)
    sd = _read(path, recipe.weights.hint)
    check_state_dict(recipe, sd, str(path))
    return sd


def _read(path: Path, hint: str) -> dict:
    """The state_dict in ``path`` (unwrapped from ``{"state_dict": ...}``, without
    DataParallel's ``module.``), read safely; not yet checked."""
    import torch
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found (set weights to "
                           f"{hint or 'the recipe model state_dict .pth'})")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"{path}: refused: the file's pickle asks for more than tensors, so it "
                           f"was not executed (weights_only=True). {first}. Use a plain state_dict "
                           f"saved with torch.save(model.state_dict(), ...)") from None
    except Exception as exc:
        raise WeightsError(f"{path}: not a readable PyTorch file ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''}); the file may be "
                           f"truncated or not a .pth: download it again") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise WeightsError(f"{path}: holds a {type(obj).__name__}, not a state_dict")
    return _strip_module_prefix(obj, path)


def _strip_module_prefix(obj: dict, path: Path) -> dict:
    """Keys without DataParallel's ``module.``; two keys that become one are refused (which
    holds the weights is unknown: a dict keeps the later one)."""
    sd: dict = {}
    origin: dict = {}
    clashes = []
    for k, v in obj.items():
        name = k[7:] if isinstance(k, str) and k.startswith("module.") else k
        if name in sd:
            clashes.append(f"{origin[name]!r} and {k!r}")
        sd[name], origin[name] = v, k
    if clashes:
        raise WeightsError(f"{path}: key(s) {'; '.join(clashes[:6])}"
                           f"{' ...' if len(clashes) > 6 else ''} name the same tensor once "
                           f"DataParallel's 'module.' prefix is stripped; which one holds the "
                           f"weights is unknown. Save a state_dict that holds only one of "
                           f"them (keep one: model.module.state_dict() for a DataParallel "
                           f"model)")
    return sd


def build_model(recipe, path: str | os.PathLike):
    """The recipe's model (``model.builder``) with the checked weights at ``path``, in eval
    mode."""
    sd = load_state_dict(recipe, path)
    model = recipe.build_model()
    model.load_state_dict(sd)
    return model.eval()
