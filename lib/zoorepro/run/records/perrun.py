"""The records of one run as a whole (``records/<name>.json``, one each): what produced it,
its images, their preprocessing, the export, ATC, a failure, an ingest, the shards."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from zoorepro.run.recordcheck import (OPSET, REQUIRED, Record, at_most, count, nbytes, rate,
                                      ruled)


@dataclass
class EnvironmentRecord(Record):
    """What produced the run: this machine (run) or the NPU host (ingested)."""
    NAME: ClassVar[str] = "environment"
    os: str | None = None
    python: str | None = None
    cpu: str | None = None
    logical_cores: int | None = count()
    physical_cores: int | None = count()
    memory_gib: float | None = rate()
    gpu: str | None = None
    packages: dict = field(default_factory=dict)
    zoorepro_git_commit: str | None = None
    cann: str | None = None
    # ingested results: the NPU host
    produced_on: str | None = None
    npu: str | None = None
    npu_chips: str | None = None
    npu_device_id: int | None = count()
    ais_bench_args: str | None = None
    npu_smi_info: str | None = None
    ingested_on: str | None = None

    def to_json(self):
        out = super().to_json()
        local = ("os", "python", "cpu", "logical_cores", "physical_cores", "memory_gib", "gpu",
                 "packages")
        npu = ("produced_on", "npu", "npu_chips", "npu_device_id", "ais_bench_args",
               "npu_smi_info", "ingested_on")
        drop = local if self.produced_on else npu
        return {k: v for k, v in out.items() if k not in drop}


@dataclass
class RecipeRecord(Record):
    """The recipe the run followed: its name and source, and the copy kept in the run folder
    (``recipe/<name>/``), which the report reads (a later change to the recipe changes no
    finished run)."""
    NAME: ClassVar[str] = "recipe"
    name: str
    title: str
    kind: str
    source: str
    folder: str        # where the recipe was read from
    sha256: str        # of its recipe.yaml
    copy: str          # the copy, relative to the run folder
    files: list = field(default_factory=list)


@dataclass
class DatasetRecord(Record):
    NAME: ClassVar[str] = "dataset"
    data_dir: str
    images: int = count(REQUIRED)
    image_list_sha256: str | None
    label_file: str
    label_file_sha256: str
    keys: list
    bin_dir: str
    max_images: int | None = count()
    labels_without_image: int | None = count(0)
    labels_without_image_examples: list = field(default_factory=list)
    unlabelled_images: int | None = count(0)
    unlabelled_examples: list = field(default_factory=list)
    label_mismatch_allowed: bool = False


@dataclass
class PreprocessRecord(Record):
    NAME: ClassVar[str] = "preprocess"
    out_dir: str
    decoder: str
    total: int = count(REQUIRED)
    written: int = count(REQUIRED)
    reused: int = count(REQUIRED)
    ok: int = count(REQUIRED)
    failed: list
    non_rgb: list
    not_jpeg: list
    bin_bytes: int = nbytes(REQUIRED)
    RELATIONS: ClassVar[tuple] = (at_most("total", "written", "reused", "ok"),)


@dataclass
class ExportRecord(Record):
    NAME: ClassVar[str] = "export"
    OMIT_NONE: ClassVar[frozenset] = frozenset({"parity_not_run", "weights_notes"})
    onnx: str
    onnx_sha256: str
    opset: int = ruled(OPSET, REQUIRED)
    aipp: dict
    aipp_config_sha256: str
    weights: str | None = None
    weights_sha256: str | None = None
    aipp_onnx: str | None = None
    aipp_onnx_sha256: str | None = None
    parity: dict | None = None
    parity_not_run: str | None = None
    weights_notes: list | None = None      # weights of another float dtype than float32


@dataclass
class AtcRecord(Record):
    NAME: ClassVar[str] = "atc"
    OMIT_NONE: ClassVar[frozenset] = frozenset({"reason", "models"})
    status: str
    soc_version: str | None
    commands: list
    reason: str | None = None
    models: list | None = None


@dataclass
class FailureRecord(Record):
    NAME: ClassVar[str] = "failure"
    notebook: str
    cell: str
    error: str


@dataclass
class IngestRecord(Record):
    NAME: ClassVar[str] = "ingest"
    source: str
    result_dir: str
    labels: str
    device: str
    accuracy_summary: str | None = None
    throughput_from_accuracy_run: str = "no"
    sweep_summaries: list = field(default_factory=list)
    manifest: str | None = None
    soc_version: str | None = None
    cann: str | None = None
    npu_chips: list = field(default_factory=list)
    device_id: int | None = count()
    notes: list = field(default_factory=list)
    read_warnings: list = field(default_factory=list)
    devices: list | None = None
    ais_bench_args: list | None = None




@dataclass
class ShardsRecord(Record):
    """``records/shards.json``: how a sharded run ran (:mod:`zoorepro.scale.shards`).
    ``stages``: "preprocess" and "infer/<backend>" -> {images, seconds, tasks: [{shard,
    first, last, images, worker, host, pid, threads, seconds, peak_rss_mib, start_rss_mib,
    attempts}]}."""
    NAME: ClassVar[str] = "shards"
    shards: int = count(REQUIRED)
    scheduler: str
    cluster: str
    workers: int = count(REQUIRED)
    worker_threads: int = count(REQUIRED)
    hosts: dict = field(default_factory=dict)
    stages: dict = field(default_factory=dict)
