"""ONNX Runtime on the AIPP model (the CPU default; CUDA when available and allowed), or on
its int8 version (precision int8: the QDQ model the run builds, CPU only)."""
from __future__ import annotations

import os

import numpy as np

from zoorepro.host import cpu_name, physical_cores
from zoorepro.backends.base import Artifacts, Backend
from zoorepro.errors import BackendUnavailable


class OnnxRuntimeBackend(Backend):
    """ONNX Runtime on the AIPP model; CUDA when available and allowed, else CPU.  With
    precision int8, on ``artifacts.int8_onnx`` (recipe/quantize.py builds it), on the CPU."""
    name = "onnxruntime"

    def __init__(self, artifacts: Artifacts, device: str = "auto", threads: int = 0,
                 precision: str = "fp32", **_):
        precision = precision or "fp32"     # '': the recipe's own, the fp32 AIPP model
        if precision not in ("fp32", "int8"):   # honoured or refused: never fp32 recorded as asked
            raise BackendUnavailable(f"precision {precision}: the onnxruntime backend runs the "
                                     f"fp32 AIPP model or its int8 version (it builds no "
                                     f"{precision} model); use precision fp32 or int8, or the "
                                     f"torch backend on CUDA for fp16")
        if precision == "int8" and device == "cuda":
            raise BackendUnavailable("precision int8 on device cuda: the int8 (QDQ) model runs on "
                                     "ONNX Runtime's CPU kernels here; use device cpu (or auto), "
                                     "or precision fp32 on CUDA")
        try:
            import onnxruntime as ort
        except ImportError:
            raise BackendUnavailable("onnxruntime is not installed: pip install onnxruntime "
                                     "(or onnxruntime-gpu for CUDA)") from None
        model = artifacts.int8_onnx if precision == "int8" else artifacts.aipp_onnx
        if precision == "int8" and not (model and os.path.isfile(model)
                                        and os.path.getsize(model) > 0):
            raise BackendUnavailable(f"{model or 'int8 model'}: not found or empty; the int8 "
                                     f"model is built by the run when precision is int8 (from "
                                     f"the fp32 AIPP model, calibrated on calibration_images "
                                     f"of the run's inputs); run with precision int8, or use "
                                     f"precision fp32")
        if not model or not os.path.isfile(model):
            raise BackendUnavailable(f"{model or 'AIPP ONNX model'}: not found; "
                                     f"run the export step first")
        if precision == "int8":
            device = "cpu"          # never CUDA: 'auto' means the CPU for the int8 model
        available = ort.get_available_providers()
        use_cuda = device in ("auto", "cuda") and "CUDAExecutionProvider" in available
        use_trt = use_cuda and "TensorrtExecutionProvider" in available
        if device == "cuda" and not use_cuda:
            raise BackendUnavailable("device cuda asked for, but this onnxruntime has no "
                                     "CUDAExecutionProvider: pip install onnxruntime-gpu")
        self.threads = threads or physical_cores()
        self.artifacts = artifacts
        self.precision = precision
        self.model = model
        self.cuda = use_cuda
        self._ort = ort
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        # TensorRT, then CUDA, when installed: the GPU's own fastest paths (AIPP stays in the graph)
        providers = (["TensorrtExecutionProvider"] if use_trt else []) + (
            ["CUDAExecutionProvider", "CPUExecutionProvider"] if use_cuda
            else ["CPUExecutionProvider"])
        self.session = ort.InferenceSession(model, opts, providers=providers)
        self.input_name = self.session.get_inputs()[0].name
        self.providers = self.session.get_providers()
        self._ort_version = ort.__version__
        super().__init__(self._describe(use_cuda))

    def _describe(self, cuda: bool) -> str:
        if cuda and self.providers[0] in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
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
        return [OnnxRuntimeBackend(self.artifacts, device="cpu", threads=per + (k < extra),
                                   precision=self.precision) for k in range(n)]

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
                "precision": self.precision, "version": f"onnxruntime {self._ort_version}"}
