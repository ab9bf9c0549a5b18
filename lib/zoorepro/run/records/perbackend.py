"""The per-backend records: ``infer`` and ``accuracy`` map a backend name to an entry
dataclass (:class:`InferEntry`, :class:`AccuracyEntry`)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

from zoorepro.errors import RecordError
from zoorepro.run.recordcheck import (OFFSET, SCHEMA_VERSION, Record, at_most, check,
                                      check_version, count, non_decreasing, pct, positive, rate,
                                      ruled)
from zoorepro.run.recordcheck import build as _build


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

