"""Inference backends behind a lazy registry.

Every backend takes the recipe's input -- uint8 NHWC ``[N, 224, 224, 3]``, the ``.bin``
bytes -- and returns float32 logits ``[N, 1000]``; normalisation is AIPP, read from
``aipp.config``.  Optional backends import their packages lazily and, when missing, say
what to install.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..errors import BackendUnavailable


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

    # The portable path: ais_bench's folder run and a timed sweep, done here in Python.  The
    # Ascend backend overrides both with the recipe's ais_bench commands.
    def run_accuracy(self, job: "AccuracyJob") -> dict:
        """The accuracy run over ``job.files`` in ais_bench's layout; returns its summary."""
        from .. import bench
        from ..aisformat import result_dirname
        return bench.run_folder(self, job.input_dir, job.output, result_dirname(job.batch_size),
                                job.batch_size, job.outfmt, job.warmup, job.progress,
                                files=job.files, streams=job.streams)

    def run_sweep(self, job: "SweepJob") -> list[dict]:
        """One bench record per batch size."""
        from .. import bench
        return bench.sweep(self, job.samples, job.settings, job.files, job.outfmt, job.streams)


@dataclass(frozen=True)
class AccuracyJob:
    """What an accuracy run needs: the ``.bin`` folder and this run's files in it, where the
    results go, and how (ais_bench's options; ``streams`` for the portable path;
    ``scratch``: a folder of the run a backend may fill, e.g. with a subset of inputs)."""
    input_dir: Path
    files: Sequence[Path]
    output: Path
    batch_size: int
    outfmt: str = "TXT"
    warmup: int = 1
    progress: bool = True
    streams: int = 1
    scratch: Path | None = None


@dataclass(frozen=True)
class SweepJob:
    """What a throughput sweep needs: sample images, the settings, the accuracy run's files
    (for end-to-end figures) and where a backend may write (its results folder)."""
    samples: np.ndarray
    settings: object
    files: Sequence[Path] = ()
    outfmt: str = "TXT"
    streams: int = 1
    output: Path | None = None


# name -> "module:class", imported only when that backend is created
_MODULES = {
    "onnxruntime": "zoorepro.backends.ort:OnnxRuntimeBackend",
    "torch": "zoorepro.backends.pytorch:TorchBackend",
    "ais_bench": "zoorepro.backends.ascend:AisBenchBackend",
}
_REGISTRY: dict[str, Callable[..., Backend]] = {}


def register(name: str):
    """Add a backend factory under ``name`` (a plug-in; the built-in ones load lazily)."""
    def deco(factory):
        _REGISTRY[name] = factory
        return factory
    return deco


def names() -> list[str]:
    return list(dict.fromkeys([*_MODULES, *_REGISTRY]))


def factory(name: str) -> Callable[..., Backend]:
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name not in _MODULES:
        raise BackendUnavailable(f"unknown backend {name!r}; known: {', '.join(names())}")
    module, cls = _MODULES[name].split(":")
    return getattr(importlib.import_module(module), cls)


def create(name: str, artifacts: Artifacts, device: str = "auto", threads: int = 0,
           **options) -> Backend:
    return factory(name)(artifacts, device=device, threads=threads, **options)
