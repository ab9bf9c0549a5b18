"""The records of a run folder (``records/<name>.json``): one dataclass each, with their JSON
keys plus ``schema_version``.  A record is built by calling its class (a mistyped field is a
``TypeError`` where it is written) and read by :func:`from_json` (an unknown or missing key is
a :class:`RecordError` naming the file), so a gap never renders silently as "—".  Records
written before ``schema_version`` existed (version 0) are read the same way.  Per-backend records (``infer``, ``accuracy``) map a backend name to an entry dataclass;
``bench`` holds one :class:`BenchRow` per sweep point; ``parity`` is a list of pairs.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .errors import RecordError

SCHEMA_VERSION = 1


class Record:
    """Base: ``NAME`` is the file's stem; ``to_json``/``from_json`` are the only converters."""
    NAME: ClassVar[str] = ""
    OMIT_NONE: ClassVar[frozenset] = frozenset()   # fields left out of the JSON when None

    def to_json(self) -> Any:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if not (f.name in self.OMIT_NONE and getattr(self, f.name) is None)}
        return {**out, "schema_version": SCHEMA_VERSION}

    @classmethod
    def from_json(cls, obj: Any, where: str = ""):
        return _build(cls, obj, where or f"records/{cls.NAME}.json")


def _build(cls, obj, where: str):
    if not isinstance(obj, dict):
        raise RecordError(f"{where}: expected a JSON object for {cls.__name__}, got "
                          f"{type(obj).__name__}; the run folder is damaged or from another tool")
    obj = dict(obj)
    version = obj.pop("schema_version", 0)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise RecordError(f"{where}: schema_version {version!r} is newer than this zoorepro "
                          f"reads ({SCHEMA_VERSION}); update zoorepro")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(obj) - names)
    if unknown:
        raise RecordError(f"{where}: unknown key(s) {', '.join(unknown)} for {cls.__name__} "
                          f"(known: {', '.join(sorted(names))})")
    required = [f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [k for k in required if k not in obj]
    if missing:
        raise RecordError(f"{where}: missing key(s) {', '.join(missing)} for {cls.__name__}")
    return cls(**obj)


# ------------------------------------------------------------------ per run
@dataclass
class EnvironmentRecord(Record):
    """What produced the run: this machine (run) or the NPU host (ingested)."""
    NAME: ClassVar[str] = "environment"
    os: str | None = None
    python: str | None = None
    cpu: str | None = None
    logical_cores: int | None = None
    physical_cores: int | None = None
    memory_gib: float | None = None
    gpu: str | None = None
    packages: dict = field(default_factory=dict)
    zoorepro_git_commit: str | None = None
    cann: str | None = None
    # ingested results: the NPU host
    produced_on: str | None = None
    npu: str | None = None
    npu_chips: str | None = None
    npu_device_id: int | None = None
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
    images: int
    image_list_sha256: str | None
    label_file: str
    label_file_sha256: str
    keys: list
    bin_dir: str
    max_images: int | None = None
    labels_without_image: int | None = 0
    labels_without_image_examples: list = field(default_factory=list)
    unlabelled_images: int | None = 0
    unlabelled_examples: list = field(default_factory=list)
    label_mismatch_allowed: bool = False


@dataclass
class PreprocessRecord(Record):
    NAME: ClassVar[str] = "preprocess"
    out_dir: str
    decoder: str
    total: int
    written: int
    reused: int
    ok: int
    failed: list
    non_rgb: list
    not_jpeg: list
    bin_bytes: int


@dataclass
class ExportRecord(Record):
    NAME: ClassVar[str] = "export"
    OMIT_NONE: ClassVar[frozenset] = frozenset({"parity_not_run"})
    onnx: str
    onnx_sha256: str
    opset: int
    aipp: dict
    aipp_config_sha256: str
    weights: str | None = None
    weights_sha256: str | None = None
    aipp_onnx: str | None = None
    aipp_onnx_sha256: str | None = None
    parity: dict | None = None
    parity_not_run: str | None = None


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
    device_id: int | None = None
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
    threads: int | None = None
    precision: str | None = None
    device_id: int | None = None
    soc_version: str | None = None
    cann: str | None = None
    result_dir: str | None = None
    summary: str | None = None
    accuracy_batch_size: int | None = None
    compute_throughput: float | None = None
    streams: int | None = None
    stream_threads: list | None = None
    throughput_definition: str | None = None
    throughput_note: str | None = None
    foreign_files: list = field(default_factory=list)
    other_inputs: int = 0
    e2e_throughput: float | None = None
    devices: list | None = None
    source: str | None = None
    notes: list | None = None


@dataclass
class AccuracyEntry:
    status: str
    reason: str | None = None
    backend: str | None = None
    device: str | None = None
    batch_size: int | None = None
    images: int | None = None
    classes: int | None = None
    label_offset: int | None = None
    top1: float | None = None
    top2: float | None = None
    top3: float | None = None
    top4: float | None = None
    top5: float | None = None
    correct_top1: int | None = None
    correct_top2: int | None = None
    correct_top3: int | None = None
    correct_top4: int | None = None
    correct_top5: int | None = None
    formula: str | None = None
    weights_sha256: str | None = None
    onnx_sha256: str | None = None
    image_list_sha256: str | None = None
    label_file_sha256: str | None = None
    warnings: list = field(default_factory=list)
    source: str | None = None


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

    @classmethod
    def from_json(cls, obj, where: str = ""):
        where = where or f"records/{cls.NAME}.json"
        if not isinstance(obj, dict):
            raise RecordError(f"{where}: expected a JSON object of backends")
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
    """One sweep point (``bench.csv`` has the first 22 fields as columns)."""
    backend: str
    device: str | None
    batch_size: int
    iterations: int
    throughput: float | None
    throughput_definition: str | None
    valid: bool
    validity: str
    seconds: float | None = None
    min_ms: float | None = None
    mean_ms: float | None = None
    median_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    e2e_throughput: float | None = None
    e2e_images: int | None = None
    e2e_streams: int | None = None
    e2e_definition: str | None = None
    threads: int | None = None
    version: str | None = None
    precision: str | None = None
    input: str | None = None
    throughput_reported: float | None = None
    timing: str | None = None            # device | call: what the compute times measured
    h2d_mean_ms: float | None = None
    d2h_mean_ms: float | None = None
    summary: str | None = None


BENCH_CSV_FIELDS = ("backend", "device", "batch_size", "iterations", "seconds", "min_ms",
                    "mean_ms", "median_ms", "p90_ms", "p99_ms", "max_ms", "throughput",
                    "throughput_definition", "e2e_throughput", "e2e_images", "e2e_streams",
                    "threads", "version", "precision", "input", "valid", "validity", "timing",
                    "h2d_mean_ms", "d2h_mean_ms")
# bench.csv: those, then what identifies the run, so the files of many runs stack
BENCH_CSV_RUN_FIELDS = ("run", "weights_sha256", "onnx_sha256", "image_list_sha256")


@dataclass
class BenchRecord(Record):
    """The sweep; :meth:`csv_text` is ``bench.csv``, written beside it by :class:`Run`."""
    NAME: ClassVar[str] = "bench"
    definition: str
    records: list   # of BenchRow-shaped dicts (validated on both sides)

    def csv_text(self, run_fields: dict | None = None) -> str:
        import csv
        import io
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=BENCH_CSV_FIELDS + BENCH_CSV_RUN_FIELDS,
                           extrasaction="ignore")
        w.writeheader()
        w.writerows({**r, **(run_fields or {})} for r in self.records)
        return buf.getvalue()

    def __post_init__(self):
        self.records = [dataclasses.asdict(r) if isinstance(r, BenchRow)
                        else dataclasses.asdict(_build(BenchRow, r, f"records/bench.json [{i}]"))
                        for i, r in enumerate(self.records)]
        self.records = [{k: v for k, v in r.items()
                         if v is not None or k in _BENCH_ALWAYS} for r in self.records]


_BENCH_ALWAYS = {f.name for f in dataclasses.fields(BenchRow)
                 if f.default is dataclasses.MISSING} | {
    "seconds", "min_ms", "mean_ms", "median_ms", "p90_ms", "p99_ms", "max_ms", "threads",
    "version", "precision", "input"}


ACCURACY_COLUMNS = ("run", "backend", "device", "batch_size", "images", "top1", "top2", "top3",
                    "top4", "top5", "weights_sha256", "onnx_sha256", "image_list_sha256",
                    "label_file_sha256")


def accuracy_csv(record: "AccuracyRecord", run_id: str) -> str:
    """``accuracy.csv``: one row per backend that ran, with the run id and the hashes, so the
    files of many runs stack into one table."""
    import csv
    import io
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(ACCURACY_COLUMNS)
    for name, e in record.entries.items():
        if e.status == "ok":
            w.writerow([run_id, name] + [getattr(e, c) for c in ACCURACY_COLUMNS[2:]])
    return buf.getvalue()


class ParityRecord(Record):
    """Cross-backend parity pairs (a JSON list, as before schema versions)."""
    NAME = "parity"

    def __init__(self, pairs: list):
        self.pairs = list(pairs)

    def to_json(self):
        return self.pairs

    @classmethod
    def from_json(cls, obj, where: str = ""):
        if isinstance(obj, dict) and "pairs" in obj:
            obj = obj["pairs"]
        if not isinstance(obj, list):
            raise RecordError(f"{where or 'records/parity.json'}: expected a list of pairs")
        return cls(obj)


ALL = {c.NAME: c for c in (EnvironmentRecord, DatasetRecord, PreprocessRecord, ExportRecord,
                           AtcRecord, InferRecord, BenchRecord, AccuracyRecord, ParityRecord,
                           IngestRecord, FailureRecord)}
