"""STAND-IN for ais_bench's C++ runtime ``aclruntime`` (tests only; no NPU, no CANN).

The names and call shapes are those ais_bench's Python front end uses
(``ais_bench/infer/interface.py``, ``infer_process.py``, ``common/io_operations.py``); what the
C++ would do on the NPU is replaced by a deterministic function of the input bytes
(:func:`scores_for`).  See ``tests/standin/README.md``.
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import os
import threading
import time

import numpy as np

__version__ = "0.0.2"
CLASSES = 1000

# ("session", device, model) / ("free_resource", model) / ("finalize",)
CALLS: list = []
_LOCK = threading.Lock()


def _log(*event) -> None:
    CALLS.append(event)
    path = os.environ.get("ACLRUNTIME_STANDIN_LOG")
    if path:
        with _LOCK, open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps([os.getpid(), *event]) + "\n")


# ------------------------------------------------------------------ the "model"
def ranking(image_bytes: bytes, classes: int = CLASSES) -> np.ndarray:
    """Classes best first, for one image's bytes."""
    seed = int.from_bytes(hashlib.sha256(bytes(image_bytes)).digest()[:8], "little")
    return np.random.default_rng(seed).permutation(classes)


def scores_for(image_bytes: bytes, classes: int = CLASSES) -> np.ndarray:
    """float32 scores: the class at rank r gets (classes - r) / 1024."""
    order = ranking(image_bytes, classes)
    s = np.empty(classes, dtype=np.float32)
    s[order] = (classes - np.arange(classes)) / 1024.0
    return s


def stub_om(path, batch_size: int, outputs=(("class", "float32", CLASSES),),
            input_name: str = "image") -> str:
    """Write a stand-in ``.om``: JSON naming the input (uint8 NHWC, as AIPP makes it) and the
    outputs (name, dtype, classes).  Returns the path."""
    model = {"standin_om": 1,
             "inputs": [{"name": input_name, "shape": [batch_size, 224, 224, 3], "dtype": "uint8"}],
             "outputs": [{"name": n, "shape": [batch_size, c], "dtype": d} for n, d, c in outputs]}
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(model, fh)
    return str(path)


class _Desc:
    """A tensor description as the front end reads it (name, shape, datatype, size, realsize)."""

    def __init__(self, spec: dict):
        self.name = spec["name"]
        self.shape = list(spec["shape"])
        self.dtype = np.dtype(spec["dtype"])
        self.datatype = str(self.dtype)
        self.format = 0
        self.size = int(np.prod(self.shape)) * self.dtype.itemsize
        self.realsize = self.size

    def __repr__(self):
        return f"<desc {self.name} {self.shape} {self.datatype}>"


# ------------------------------------------------------------------- tensors
class BaseTensor:
    """A host buffer given by address and size (the front end passes numpy's data pointer)."""

    def __init__(self, ptr: int, size: int):
        self.data = ctypes.string_at(ptr, size)
        self.size = size


class Tensor:
    def __init__(self, array=None):
        self._array = None if array is None else np.ascontiguousarray(array)
        self.on_device = False

    @property
    def shape(self):
        return list(self._array.shape)

    def to_device(self, device_id: int) -> None:
        t0 = time.perf_counter()
        self._array = self._array.copy()
        _MEMORY.H2D_time_list.append((time.perf_counter() - t0) * 1000.0)
        self.on_device = True

    def to_host(self) -> None:
        if self.on_device:
            t0 = time.perf_counter()
            self._array = self._array.copy()
            _MEMORY.D2H_time_list.append((time.perf_counter() - t0) * 1000.0)
            self.on_device = False

    def __array__(self, dtype=None, copy=None):
        return self._array if dtype is None else self._array.astype(dtype)

    def tobytes(self) -> bytes:
        return self._array.tobytes()


class _MemorySummaryData:
    def __init__(self):
        self.H2D_time_list: list = []
        self.D2H_time_list: list = []

    def reset(self):
        self.H2D_time_list.clear()
        self.D2H_time_list.clear()


_MEMORY = _MemorySummaryData()


def MemorySummary():   # noqa: N802 (the C++ binding's name)
    return _MEMORY


class session_options:   # noqa: N801
    def __init__(self):
        self.acl_json_path = ""
        self.log_level = 2
        self.loop = 1


class infer_options:   # noqa: N801
    def __init__(self):
        self.output_dir = ""
        self.auto_dym_shape = False
        self.auto_dym_dims = False
        self.out_format = "BIN"
        self.pure_infer_mode = False


class _Summary:
    def __init__(self):
        self.exec_time_list: list = []


def _bytes_of(feed) -> bytes:
    if isinstance(feed, BaseTensor):
        return feed.data
    if isinstance(feed, Tensor):
        return feed.tobytes()
    return np.ascontiguousarray(feed).tobytes()


def _ostream(v) -> str:
    """How C++ ``std::ostream << float`` writes a value (precision 6, general format)."""
    return "%g" % float(v)


# ------------------------------------------------------------------- session
class InferenceSession:
    _finalized = False

    def __init__(self, model_path: str, device_id: int, options: session_options):
        if InferenceSession._finalized:
            InferenceSession._finalized = False       # a new session initialises ACL again
        with open(model_path, encoding="utf-8") as fh:
            try:
                model = json.load(fh)
            except ValueError:
                raise RuntimeError(f"{model_path}: not a stand-in model (aclmdlLoadFromFile "
                                   f"failed)") from None
        if model.get("standin_om") != 1:
            raise RuntimeError(f"{model_path}: not a stand-in model")
        self.model_path = model_path
        self.device_id = int(device_id)
        self._options = options
        self._inputs = [_Desc(s) for s in model["inputs"]]
        self._outputs = [_Desc(s) for s in model["outputs"]]
        self._summary = _Summary()
        self._freed = False
        _log("session", self.device_id, os.path.basename(model_path))

    # descriptions and modes
    def get_inputs(self):
        return list(self._inputs)

    def get_outputs(self):
        return list(self._outputs)

    def options(self):
        return self._options

    def set_staticbatch(self):
        pass

    def set_context(self):
        pass

    def get_dym_aipp_input_exist(self):
        return 0

    def check_dym_aipp_input_exist(self):
        pass

    def _dynamic(self, *_):
        raise RuntimeError("stand-in aclruntime: the recipe's OMs are static-batch")

    set_dynamic_batchsize = set_dynamic_hw = set_dynamic_dims = set_dynamic_shape = _dynamic
    set_custom_outsize = _dynamic

    def get_max_dym_batchsize(self):
        return -1

    def sumary(self):      # sic: the binding's spelling
        return self._summary

    def reset_sumaryinfo(self):
        self._summary.exec_time_list.clear()

    # inference
    def _compute(self, data: bytes) -> list[np.ndarray]:
        if self._freed:
            raise RuntimeError("stand-in aclruntime: session used after free_resource()")
        want = self._inputs[0].realsize
        if len(data) != want:
            raise RuntimeError(f"stand-in aclruntime: input is {len(data)} bytes, the model "
                               f"takes {want}")
        bs = self._inputs[0].shape[0]
        rows = np.frombuffer(data, dtype=np.uint8).reshape(bs, -1)
        outs = []
        for k, desc in enumerate(self._outputs):
            classes = desc.shape[-1]
            block = np.stack([scores_for(r.tobytes(), classes) for r in rows])
            if k > 0:                       # further outputs: something else, same shape
                block = block[:, ::-1].copy()
            outs.append(block.astype(desc.dtype))
        return outs

    def _timed(self, data: bytes):
        outs = None
        for _ in range(max(1, int(self._options.loop))):
            t0 = time.perf_counter() * 1000.0
            outs = self._compute(data)
            t1 = time.perf_counter() * 1000.0
            self._summary.exec_time_list.append((t0, max(t1, t0 + 1e-6)))
        return outs

    def run(self, output_names, inputs):
        if len(inputs) != len(self._inputs):
            raise RuntimeError(f"stand-in aclruntime: {len(inputs)} inputs, the model has "
                               f"{len(self._inputs)}")
        outs = self._timed(_bytes_of(inputs[0]))
        tensors = []
        for a in outs:
            t = Tensor(a)
            t.on_device = True
            tensors.append(t)
        return tensors

    def create_tensor_from_fileslist(self, desc, files):
        data = b"".join(open(f, "rb").read() for f in files)
        return Tensor(np.frombuffer(data, dtype=np.uint8))

    def run_pipeline(self, infilelist, opts: infer_options, extra_sessions=()):
        """The C++ pipeline: one file per input, per inference; outputs saved as
        ``<output_dir>/<stem>_<i>.<ext>``; extra sessions share the work round-robin."""
        sessions = [self, *extra_sessions]
        for n, files in enumerate(infilelist):
            sess = sessions[n % len(sessions)]
            first = files[0]
            if opts.pure_infer_mode:
                data = bytes(self._inputs[0].realsize)
            elif first.lower().endswith(".npy"):
                data = np.load(first).tobytes()
            else:
                with open(first, "rb") as fh:
                    data = fh.read()
            t0 = time.perf_counter() * 1000.0
            outs = sess._compute(data)
            t1 = time.perf_counter() * 1000.0
            self._summary.exec_time_list.append([t0, max(t1, t0 + 1e-6)])
            if not opts.output_dir:
                continue
            stem = os.path.basename(first)
            for tail in (".npy", ".bin", ".NPY", ".BIN"):
                if stem.endswith(tail):
                    stem = stem[: -len(tail)]
                    break
            for i, a in enumerate(outs):
                path = os.path.join(opts.output_dir, f"{stem}_{i}")
                fmt = opts.out_format
                if fmt == "NPY":
                    np.save(path + ".npy", a)
                elif fmt == "TXT":
                    rows = a.reshape(-1, a.shape[-1])
                    with open(path + ".txt", "w") as fh:
                        for r in rows:
                            fh.write("".join(_ostream(v) + " " for v in r) + "\n")
                else:
                    a.tofile(path + ".bin")

    def free_resource(self):
        self._freed = True
        _log("free_resource", os.path.basename(self.model_path))

    @staticmethod
    def finalize():
        if InferenceSession._finalized:
            _log("finalize-again")
            raise RuntimeError("stand-in aclruntime: finalize() called twice (aclFinalize "
                               "repeated)")
        InferenceSession._finalized = True
        _log("finalize")
