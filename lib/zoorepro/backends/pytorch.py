"""PyTorch eager: the same AIPP (as a module) in front of torchvision's model."""
from __future__ import annotations

import numpy as np

from ..host import cpu_name, physical_cores
from . import Artifacts, Backend, BackendUnavailable


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
        from .. import aipp as aipp_mod
        from ..weights import build_model
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
