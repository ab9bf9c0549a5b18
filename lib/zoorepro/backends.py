"""Inference backends behind one small registry.

Every backend takes the recipe's input -- uint8 NHWC ``[N, 224, 224, 3]``, the ``.bin``
bytes -- and returns float32 logits ``[N, 1000]``; normalisation is AIPP, read from
``aipp.config``.  Optional backends import their packages lazily and, when missing, say
what to install.
"""
from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from typing import Callable

import numpy as np


class BackendUnavailable(RuntimeError):
    """The backend's package or device is missing; the message says what to install."""


@dataclass(frozen=True)
class Artifacts:
    """What a backend may need: the AIPP ONNX model, the weights and the AIPP config."""
    aipp_onnx: str = ""
    weights: str = ""
    aipp_config: str = ""
    om_models: dict = field(default_factory=dict)   # batch size -> .om path (ais_bench)


class Backend:
    name = "base"

    def __init__(self, device: str = "cpu"):
        self.device = device

    def infer(self, batch: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def info(self) -> dict:
        """Flat description for records: backend, device (in words), versions, threads."""
        return {"backend": self.name, "device": self.device}

    def auto_streams(self) -> int:
        """How many concurrent inference streams a folder run uses when not told (1)."""
        return 1

    def replicas(self, n: int) -> list["Backend"]:
        """``n`` independent instances for concurrent streams, the threads split among them.
        Backends that cannot run concurrently return ``[self]`` (one stream)."""
        return [self]

    def release_memory(self) -> None:
        """Give back working memory kept for the largest batch seen (no-op by default)."""

    def close(self) -> None:
        """Release sessions and devices (no-op by default); the stages call it once."""


_REGISTRY: dict[str, Callable[..., Backend]] = {}


def register(name: str):
    def deco(factory):
        _REGISTRY[name] = factory
        return factory
    return deco


def names() -> list[str]:
    return list(_REGISTRY)


def create(name: str, artifacts: Artifacts, device: str = "auto", threads: int = 0,
           **options) -> Backend:
    if name not in _REGISTRY:
        raise BackendUnavailable(f"unknown backend {name!r}; known: {', '.join(_REGISTRY)}")
    return _REGISTRY[name](artifacts, device=device, threads=threads, **options)


def physical_cores() -> int:
    try:
        import psutil
        n = psutil.cpu_count(logical=False)
        if n:
            return int(n)
    except ImportError:
        pass
    return os.cpu_count() or 1


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# ------------------------------------------------------------- ONNX Runtime
@register("onnxruntime")
class OnnxRuntimeBackend(Backend):
    """ONNX Runtime on the AIPP model; CUDA when available and allowed, else CPU."""
    name = "onnxruntime"

    def __init__(self, artifacts: Artifacts, device: str = "auto", threads: int = 0, **_):
        try:
            import onnxruntime as ort
        except ImportError:
            raise BackendUnavailable("onnxruntime is not installed: pip install onnxruntime "
                                     "(or onnxruntime-gpu for CUDA)") from None
        if not artifacts.aipp_onnx or not os.path.isfile(artifacts.aipp_onnx):
            raise BackendUnavailable(f"{artifacts.aipp_onnx or 'AIPP ONNX model'}: not found; "
                                     f"run the export step first")
        available = ort.get_available_providers()
        use_cuda = device in ("auto", "cuda") and "CUDAExecutionProvider" in available
        if device == "cuda" and not use_cuda:
            raise BackendUnavailable("device cuda asked for, but this onnxruntime has no "
                                     "CUDAExecutionProvider: pip install onnxruntime-gpu")
        self.threads = threads or physical_cores()
        self.artifacts = artifacts
        self.cuda = use_cuda
        self._ort = ort
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        providers = (["CUDAExecutionProvider", "CPUExecutionProvider"] if use_cuda
                     else ["CPUExecutionProvider"])
        self.session = ort.InferenceSession(artifacts.aipp_onnx, opts, providers=providers)
        self.input_name = self.session.get_inputs()[0].name
        self.providers = self.session.get_providers()
        self._ort_version = ort.__version__
        super().__init__(self._describe(use_cuda))

    def _describe(self, cuda: bool) -> str:
        if cuda and self.providers[0] == "CUDAExecutionProvider":
            try:
                import torch
                return f"cuda: {torch.cuda.get_device_name(0)}"
            except Exception:
                return "cuda"
        return f"cpu: {cpu_name()}"

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: batch})[0]

    def auto_streams(self) -> int:
        """On the CPU, one single-threaded session per physical core: on this model the
        intra-op synchronisation of one multi-threaded session costs more than it gives
        (benchmarks/README.md); on CUDA, one stream."""
        return 1 if self.cuda else max(1, min(self.threads, physical_cores()))

    def replicas(self, n: int) -> list[Backend]:
        """``n`` sessions sharing ``threads`` (at most one stream per thread; the remainder
        goes to the first streams).  Each session keeps its own working memory: about
        90 MB plus 5 MB per image of the largest batch it ran."""
        n = min(n, self.threads)
        if self.cuda or n <= 1:
            return [self]
        per, extra = divmod(self.threads, n)
        return [OnnxRuntimeBackend(self.artifacts, device="cpu", threads=per + (k < extra))
                for k in range(n)]

    def release_memory(self) -> None:
        """Shrink ONNX Runtime's CPU arena to what one image needs (after batch 64 a session
        holds about 320 MB, and each stream is a session of its own).  Best effort: a model
        whose input cannot be guessed keeps its arena."""
        inp = self.session.get_inputs()[0]
        dtype = {"tensor(uint8)": np.uint8, "tensor(float)": np.float32}.get(inp.type)
        dims = list(inp.shape)
        if dtype is None or not dims or not all(isinstance(d, int) for d in dims[1:]):
            return
        ro = self._ort.RunOptions()
        ro.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        try:
            self.session.run(None, {self.input_name: np.zeros([1, *dims[1:]], dtype)}, ro)
        except Exception:   # noqa: BLE001 - best effort; the next real call still works
            pass

    def info(self) -> dict:
        return {**super().info(), "providers": ",".join(self.providers), "threads": self.threads,
                "precision": "fp32", "version": f"onnxruntime {self._ort_version}"}


# ------------------------------------------------------------------ PyTorch
@register("torch")
class TorchBackend(Backend):
    """PyTorch eager reference: the same AIPP (as a module) in front of torchvision's model."""
    name = "torch"

    def __init__(self, artifacts: Artifacts, device: str = "auto", threads: int = 0,
                 precision: str = "fp32", **_):
        try:
            import torch
        except ImportError:
            raise BackendUnavailable("torch is not installed: pip install torch==2.14.1 "
                                     "torchvision==0.29.1") from None
        from . import aipp as aipp_mod
        from .weights import build_model
        use_cuda = device in ("auto", "cuda") and torch.cuda.is_available()
        if device == "cuda" and not use_cuda:
            raise BackendUnavailable("device cuda asked for, but torch sees no CUDA device")
        self.threads = threads or physical_cores()
        torch.set_num_threads(self.threads)
        if precision == "fp16" and not use_cuda:
            raise BackendUnavailable("precision fp16 needs a CUDA device for the torch backend; "
                                     "use precision fp32 on the CPU")
        self.torch = torch
        self.precision = precision
        self.dev = torch.device("cuda" if use_cuda else "cpu")
        cfg = aipp_mod.load(artifacts.aipp_config)
        self.aipp = aipp_mod.torch_module(cfg).to(self.dev)
        self.net = build_model(artifacts.weights).to(self.dev)
        self.layout = torch.contiguous_format
        if use_cuda:   # NHWC convolutions; fp16 like ATC's default precision_mode force_fp16
            self.layout = torch.channels_last
            self.net = self.net.to(memory_format=self.layout)
            if precision == "fp16":
                self.net = self.net.half()
        super().__init__(f"cuda: {torch.cuda.get_device_name(0)}" if use_cuda
                         else f"cpu: {cpu_name()}")

    def infer(self, batch: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch))
            if self.dev.type == "cuda":
                x = x.pin_memory().to(self.dev, non_blocking=True)
            y = self.aipp(x)
            if self.precision == "fp16":
                y = y.half()
            out = self.net(y.contiguous(memory_format=self.layout))
            if self.dev.type == "cuda":
                torch.cuda.synchronize()
            return out.float().cpu().numpy()

    def info(self) -> dict:
        return {**super().info(), "threads": self.threads, "precision": self.precision,
                "version": f"torch {self.torch.__version__}"}


# ---------------------------------------------------------------- ais_bench
from . import aisbench  # noqa: E402,F401  registers "ais_bench" (imports ais_bench lazily)
