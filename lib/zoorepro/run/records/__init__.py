"""The records of a run folder (``records/<name>.json``): one dataclass each, with their JSON
keys plus ``schema_version``.  A record is built by calling its class (a mistyped field is a
``TypeError`` where it is written) and read by :func:`from_json` (an unknown or missing key is
a :class:`RecordError` naming the file), so a gap never renders silently as "—".  Every value
is type- and range-checked on read and on write by the rules its field declares
(:mod:`zoorepro.run.recordcheck`: ``pct()``, ``count()``, ``rate()``, ``RELATIONS``); an unknown
``schema_version`` is refused.  Records written before ``schema_version`` existed (version 0)
are read the same way.  Per-backend records (``infer``, ``accuracy``) map a backend name to
an entry dataclass; ``bench`` holds one :class:`BenchRow` per sweep point; ``parity`` holds
:class:`ParityPair` s (a bare JSON list before version 1).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

from zoorepro.errors import RecordError
from zoorepro.run.recordcheck import (FRACTION, OFFSET, OPSET, REQUIRED, SCHEMA_VERSION, Record,
                                      at_most, check, check_version, count, nbytes, non_decreasing,
                                      nonneg, pct, positive, rate, ruled)
from zoorepro.run.recordcheck import build as _build
from zoorepro.run.recordcsv import (ACCURACY_COLUMNS, BENCH_CSV_FIELDS, BENCH_CSV_RUN_FIELDS,  # noqa: F401
                                    accuracy_csv, bench_csv, definition_key)  # noqa: F401


# ------------------------------------------------------------------ per run
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


# ------------------------------------------------------------ per backend
@dataclass
class InferEntry:
    """One backend's accuracy-run status (``status`` "ok" or "not run" with ``reason``)."""
    status: str
    reason: str | None = None
    backend: str | None = None
    device: str | None = None
    version: str | None = None
    providers: str | None = None
    threads: int | None = count()
    precision: str | None = None
    device_id: int | None = count()
    soc_version: str | None = None
    cann: str | None = None
    result_dir: str | None = None
    summary: str | None = None
    accuracy_batch_size: int | None = positive()
    compute_throughput: float | None = rate()
    streams: int | None = positive()
    stream_threads: list | None = None
    throughput_definition: str | None = None
    throughput_note: str | None = None
    foreign_files: list = field(default_factory=list)
    other_inputs: int = count(0)
    e2e_throughput: float | None = rate()
    devices: list | None = None
    source: str | None = None
    notes: list | None = None


@dataclass
class AccuracyEntry:
    status: str
    reason: str | None = None
    backend: str | None = None
    device: str | None = None
    batch_size: int | None = positive()
    images: int | None = count()
    classes: int | None = positive()
    label_offset: int | None = ruled(OFFSET)
    top1: float | None = pct()
    top2: float | None = pct()
    top3: float | None = pct()
    top4: float | None = pct()
    top5: float | None = pct()
    correct_top1: int | None = count()
    correct_top2: int | None = count()
    correct_top3: int | None = count()
    correct_top4: int | None = count()
    correct_top5: int | None = count()
    formula: str | None = None
    weights_sha256: str | None = None
    onnx_sha256: str | None = None
    image_list_sha256: str | None = None
    label_file_sha256: str | None = None
    warnings: list = field(default_factory=list)
    source: str | None = None
    RELATIONS: ClassVar[tuple] = (
        non_decreasing(*(f"top{k}" for k in range(1, 6))),
        non_decreasing(*(f"correct_top{k}" for k in range(1, 6))),
        at_most("images", *(f"correct_top{k}" for k in range(1, 6))))


class _PerBackend(Record):
    """``{backend: entry}``.  An entry's ``None`` fields are left out of the JSON except the
    figures (``KEEP``) of an entry that ran, which say "not measured" explicitly."""
    ENTRY: ClassVar[type] = object
    KEEP: ClassVar[frozenset] = frozenset()

    def __init__(self, entries: dict | None = None):
        self.entries = {k: (v if isinstance(v, self.ENTRY) else _build(self.ENTRY, v, k))
                        for k, v in (entries or {}).items()}

    def to_json(self):
        def entry(v):
            if v.status != "ok":      # a backend that did not run: its status and why
                return {f.name: getattr(v, f.name) for f in dataclasses.fields(v)
                        if getattr(v, f.name) not in (None, [])}
            return {f.name: getattr(v, f.name) for f in dataclasses.fields(v)
                    if getattr(v, f.name) is not None or f.name in self.KEEP}
        return {"schema_version": SCHEMA_VERSION,
                **{k: entry(v) for k, v in self.entries.items()}}

    def check(self, where: str = "", writing: bool = False) -> None:
        for k, v in self.entries.items():
            check(v, f"{where or f'records/{self.NAME}.json'} [{k}]", writing)

    @classmethod
    def from_json(cls, obj, where: str = ""):
        where = where or f"records/{cls.NAME}.json"
        if not isinstance(obj, dict):
            raise RecordError(f"{where}: expected a JSON object of backends")
        check_version(obj, where)
        obj = {k: v for k, v in obj.items() if k != "schema_version"}
        return cls({k: _build(cls.ENTRY, v, f"{where} [{k}]") for k, v in obj.items()})

    def __eq__(self, other):
        return type(self) is type(other) and self.entries == other.entries


class InferRecord(_PerBackend):
    NAME = "infer"
    ENTRY = InferEntry
    KEEP = frozenset({"backend", "device", "result_dir", "summary", "accuracy_batch_size",
                      "compute_throughput", "e2e_throughput", "throughput_definition"})


class AccuracyRecord(_PerBackend):
    NAME = "accuracy"
    ENTRY = AccuracyEntry
    KEEP = frozenset({"backend", "device", "batch_size", "weights_sha256", "onnx_sha256",
                      "image_list_sha256", "label_file_sha256"})


@dataclass
class BenchRow:
    """One sweep point (``bench.csv``'s columns: ``recordcsv.BENCH_CSV_FIELDS``)."""
    backend: str
    device: str | None
    batch_size: int = positive(REQUIRED)
    iterations: int = count(REQUIRED)
    throughput: float | None = rate(REQUIRED)
    throughput_definition: str | None
    valid: bool
    validity: str
    seconds: float | None = rate()
    min_ms: float | None = rate()
    mean_ms: float | None = rate()
    median_ms: float | None = rate()
    p90_ms: float | None = rate()
    p99_ms: float | None = rate()
    max_ms: float | None = rate()
    e2e_throughput: float | None = rate()
    e2e_images: int | None = count()
    e2e_streams: int | None = positive()
    e2e_definition: str | None = None
    threads: int | None = count()
    version: str | None = None
    precision: str | None = None
    input: str | None = None
    throughput_reported: float | None = rate()
    timing: str | None = None            # device | call: what the compute times measured
    h2d_mean_ms: float | None = rate()
    d2h_mean_ms: float | None = rate()
    summary: str | None = None
    # the host while the point was timed (hostload); absent in runs made before
    load_before: float | None = rate()          # 1-minute load average
    load_after: float | None = rate()
    others_cpu_share: float | None = ruled(FRACTION)   # other processes' share of all cores
    host_cores: int | None = positive()
    busy: bool | None = None


@dataclass
class BenchRecord(Record):
    """The sweep; :meth:`csv_text` is ``bench.csv``, written beside it by :class:`Run`."""
    NAME: ClassVar[str] = "bench"
    definition: str
    records: list   # of BenchRow-shaped dicts (validated on both sides)

    def csv_text(self, run_fields: dict | None = None) -> str:
        return bench_csv(self.records, run_fields)

    def __post_init__(self):
        self.records = [dataclasses.asdict(_build(
            BenchRow, dataclasses.asdict(r) if isinstance(r, BenchRow) else r,
            f"records/bench.json [{i}]")) for i, r in enumerate(self.records)]

    @classmethod
    def from_json(cls, obj, where: str = ""):
        where = where or "records/bench.json"
        rows = obj.get("records") if isinstance(obj, dict) else None
        for i, r in enumerate(rows if isinstance(rows, list) else []):
            _build(BenchRow, r, f"{where} [{i}]")       # each row's error names the file
        return _build(cls, obj, where)

    def check(self, where: str = "", writing: bool = False) -> None:
        where = where or "records/bench.json"
        super().check(where, writing)
        for i, r in enumerate(self.records):
            _build(BenchRow, r, f"{where} [{i}]", writing)
        self.records = [{k: v for k, v in r.items()
                         if v is not None or k in _BENCH_ALWAYS} for r in self.records]


_BENCH_ALWAYS = {f.name for f in dataclasses.fields(BenchRow)
                 if f.default is dataclasses.MISSING} | {
    "seconds", "min_ms", "mean_ms", "median_ms", "p90_ms", "p99_ms", "max_ms", "threads",
    "version", "precision", "input",
    "load_before", "load_after", "others_cpu_share", "host_cores", "busy"}   # null: not known


@dataclass
class ParityPair:
    """Two backends' agreement on the images both scored (:func:`evaluate.parity`)."""
    a: str
    b: str
    images: int = count(REQUIRED)
    top1_agreement_pct: float | None = pct()
    max_abs_logit_diff: float | None = nonneg()
    non_finite_images: int | None = count()
    RELATIONS: ClassVar[tuple] = (at_most("images", "non_finite_images"),)


class ParityRecord(Record):
    """Cross-backend parity pairs: ``{"schema_version": 1, "pairs": [...]}``; a bare JSON
    list (written before version 1) still reads, as version 0."""
    NAME = "parity"

    def __init__(self, pairs: list):
        self.pairs = [dataclasses.asdict(p) if isinstance(p, ParityPair) else dict(p)
                      for p in pairs]

    def to_json(self):
        return {"schema_version": SCHEMA_VERSION, "pairs": self.pairs}

    def data(self):
        return self.pairs

    def check(self, where: str = "", writing: bool = False) -> None:
        where = where or "records/parity.json"
        for i, p in enumerate(self.pairs):
            _build(ParityPair, p, f"{where} [{i}]", writing)

    @classmethod
    def from_json(cls, obj, where: str = ""):
        where = where or "records/parity.json"
        if isinstance(obj, dict):
            check_version(obj, where)
            if set(obj) - {"schema_version"} != {"pairs"}:
                raise RecordError(f"{where}: expected the key 'pairs' (and schema_version), "
                                  f"got {', '.join(sorted(obj))}")
            obj = obj["pairs"]
        if not isinstance(obj, list):
            raise RecordError(f"{where}: expected a list of pairs")
        for i, p in enumerate(obj):
            _build(ParityPair, p, f"{where} [{i}]")
        return cls(obj)

    def __eq__(self, other):
        return type(self) is type(other) and self.pairs == other.pairs


ALL = {c.NAME: c for c in (EnvironmentRecord, DatasetRecord, PreprocessRecord, ExportRecord,
                           AtcRecord, InferRecord, BenchRecord, AccuracyRecord, ParityRecord,
                           IngestRecord, FailureRecord)}
