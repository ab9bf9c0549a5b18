"""PyTorch: the same AIPP (as a module) in front of torchvision's model.

On CUDA it runs the fastest way this stack allows without changing the numbers: cuDNN
autotuning, channels-last convolutions, fp16 when asked (ATC's default precision; on the CPU
too, with torch's float16 kernels: weights and activations fp16), and one
captured CUDA graph per batch size (the launch overhead of ~70 small kernels removed; AIPP
stays in the graph).  :meth:`TorchBackend.measure_device` times the compute alone with CUDA
events, input already on the GPU, and the copies apart, as ais_bench reports
``NPU_compute_time``, ``H2D_latency`` and ``D2H_latency``."""
from __future__ import annotations

import numpy as np

from zoorepro.host import cpu_name, physical_cores
from zoorepro.backends.base import Artifacts, Backend
from zoorepro.errors import BackendUnavailable


class TorchBackend(Backend):
    """PyTorch eager reference: the same AIPP (as a module) in front of torchvision's model."""
    name = "torch"

    def __init__(self, artifacts: Artifacts, device: str = "auto", threads: int = 0,
                 precision: str = "fp32", cuda_graphs: bool = True, **_):
        try:
            import torch
        except ImportError:
            raise BackendUnavailable("torch is not installed: pip install torch==2.14.1 "
                                     "torchvision==0.29.1") from None
        from zoorepro.recipe import aipp as aipp_mod
        from zoorepro.recipe.weights import build_model
        use_cuda = device in ("auto", "cuda") and torch.cuda.is_available()
        if device == "cuda" and not use_cuda:
            raise BackendUnavailable("device cuda asked for, but torch sees no CUDA device")
        self.threads = threads or physical_cores()
        torch.set_num_threads(self.threads)
        precision = precision or "fp32"          # '': the recipe's (the framework's fp32)
        if precision not in ("fp32", "fp16"):
            raise BackendUnavailable(f"precision {precision}: the torch backend runs fp32 and "
                                     f"fp16 (it builds no {precision} model); use the "
                                     f"onnxruntime backend for int8")
        self.torch = torch
        self.precision = precision
        self.dev = torch.device("cuda" if use_cuda else "cpu")
        cfg = aipp_mod.load(artifacts.aipp_config)
        self.input_shape = cfg.input_shape          # one image as the model takes it (HWC)
        self.aipp = aipp_mod.torch_module(cfg).to(self.dev)
        self.net = build_model(artifacts.recipe, artifacts.weights).to(self.dev)
        self.layout = torch.contiguous_format
        self.cuda_graphs = bool(use_cuda and cuda_graphs)
        self._graphs: dict = {}        # batch size -> (graph, static input, static output)
        if use_cuda:   # NHWC convolutions
            torch.backends.cudnn.benchmark = True      # fastest kernels per input shape
            self.layout = torch.channels_last
            self.net = self.net.to(memory_format=self.layout)
        if precision == "fp16":   # like ATC's default precision_mode force_fp16; on the CPU
            self.net = self.net.half()   # torch's float16 kernels (slow, for accuracy)
        super().__init__(f"cuda: {torch.cuda.get_device_name(0)}" if use_cuda
                         else f"cpu: {cpu_name()}")

    def _step(self, x):
        """AIPP and the network on a device tensor (uint8 NHWC)."""
        y = self.aipp(x)
        if self.precision == "fp16":
            y = y.half()
        return self.net(y.contiguous(memory_format=self.layout))

    def _graph(self, batch_size: int):
        """The captured CUDA graph of one batch size (made on first use)."""
        torch = self.torch
        if batch_size not in self._graphs:
            static_in = torch.zeros((batch_size, *self.input_shape), dtype=torch.uint8,
                                    device=self.dev)
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):                    # warm up (and let cuDNN choose) first
                    self._step(static_in)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = self._step(static_in)
            self._graphs[batch_size] = (graph, static_in, static_out)
        return self._graphs[batch_size]

    def _run_on_device(self, x):
        """Logits of a uint8 batch already on the GPU (graph replay when enabled)."""
        if not self.cuda_graphs:
            return self._step(x)
        graph, static_in, static_out = self._graph(x.shape[0])
        static_in.copy_(x)
        graph.replay()
        return static_out

    def infer(self, batch: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch))
            if self.dev.type != "cuda":
                return self._step(x).float().numpy()
            x = x.pin_memory().to(self.dev, non_blocking=True)
            out = self._run_on_device(x).float().cpu()
            torch.cuda.synchronize()
            return out.numpy()

    def measure_device(self, batch: np.ndarray, iterations: int, min_seconds: float,
                       warmup: int) -> dict | None:
        """Compute times with CUDA events on an input already on the GPU, and the
        host-to-device and device-to-host copies timed apart (ms lists).  None on the CPU,
        where the call is the compute."""
        if self.dev.type != "cuda":
            return None
        import time
        torch = self.torch
        ev = lambda: torch.cuda.Event(enable_timing=True)   # noqa: E731
        with torch.inference_mode():
            host = torch.from_numpy(np.ascontiguousarray(batch)).pin_memory()
            x = host.to(self.dev)
            for _ in range(max(1, warmup)):
                out = self._run_on_device(x)
            torch.cuda.synchronize()
            pairs, h2d, d2h = [], [], []
            start = time.perf_counter()
            while len(pairs) < iterations or time.perf_counter() - start < min_seconds:
                a, b = ev(), ev()
                a.record()
                out = self._run_on_device(x)
                b.record()
                pairs.append((a, b))
            seconds = time.perf_counter() - start
            for _ in range(min(20, max(3, iterations))):   # the copies, timed apart
                a, b, c, d = ev(), ev(), ev(), ev()
                a.record()
                x2 = host.to(self.dev, non_blocking=True)
                b.record()
                c.record()
                out.float().to("cpu")
                d.record()
                h2d.append((a, b))
                d2h.append((c, d))
                del x2
            torch.cuda.synchronize()
        ms = lambda ps: [p.elapsed_time(q) for p, q in ps]   # noqa: E731
        return {"times": ms(pairs), "seconds": seconds, "h2d_ms": ms(h2d), "d2h_ms": ms(d2h)}

    def info(self) -> dict:
        return {**super().info(), "threads": self.threads, "precision": self.precision,
                "version": f"torch {self.torch.__version__}"
                + (", CUDA graphs, cuDNN autotune, channels-last" if self.cuda_graphs else "")}
