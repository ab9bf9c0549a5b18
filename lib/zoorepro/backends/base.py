"""What every backend is: :class:`Backend` (the portable path's folder run and sweep by
default), the :class:`Artifacts` it may need, and the jobs it is given.

Every backend takes the recipe's input -- uint8 NHWC ``[N, H, W, 3]``, the ``.bin`` bytes,
H x W the AIPP config's ``src_image_size`` -- and returns float32 logits ``[N, classes]``;
normalisation (and a crop, where the recipe has one) is AIPP, read from the AIPP config.
Optional backends import their packages lazily and, when missing, say
what to install.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np



@dataclass(frozen=True)
class Artifacts:
    """What a backend may need: the AIPP ONNX model (and its int8 version, built only when a
    run asks for int8), the weights and the AIPP config, and the recipe
    (:class:`zoorepro.recipebook.Recipe`: the model builder, the command lines)."""
    aipp_onnx: str = ""
    int8_onnx: str = ""
    weights: str = ""
    aipp_config: str = ""
    om_models: dict = field(default_factory=dict)   # batch size -> .om path (ais_bench)
    recipe: object = None
    atc_extra_args: tuple = ()       # the params' extra ATC options (the .om's precision)


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
        from zoorepro.backends import bench
        from zoorepro.ascend.aisformat import result_dirname
        return bench.run_folder(self, job.input_dir, job.output, result_dirname(job.batch_size),
                                job.batch_size, job.outfmt, job.warmup, job.progress,
                                files=job.files, streams=job.streams, shape=job.input_shape)

    def run_sweep(self, job: "SweepJob") -> list[dict]:
        """One bench record per batch size."""
        from zoorepro.backends import bench
        return bench.sweep(self, job.samples, job.settings, job.files, job.outfmt, job.streams)


@dataclass(frozen=True)
class AccuracyJob:
    """What an accuracy run needs: the ``.bin`` folder and this run's files in it, where the
    results go, and how (ais_bench's options; ``streams`` for the portable path;
    ``scratch``: a folder of the run a backend may fill, e.g. with a subset of inputs;
    ``input_shape``: each input's uint8 HWC shape)."""
    input_dir: Path
    files: Sequence[Path]
    output: Path
    batch_size: int
    input_shape: tuple
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
