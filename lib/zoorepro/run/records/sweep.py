"""The sweep and the parity: ``bench`` holds one :class:`BenchRow` per sweep point (its
``bench.csv`` is written from them), ``parity`` one :class:`ParityPair` per two backends."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from zoorepro.errors import RecordError
from zoorepro.run.recordcheck import (FRACTION, REQUIRED, SCHEMA_VERSION, Record, at_most,
                                      check, check_version, count, nonneg, pct, positive, rate,
                                      ruled)
from zoorepro.run.recordcheck import build as _build
from zoorepro.run.recordcsv import bench_csv


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
    """The sweep; :meth:`csv_text` is ``bench.csv``, written beside it by :class:`Run`.
    ``records``: :class:`BenchRow` s (a row given as a dict is built into one and checked)."""
    NAME: ClassVar[str] = "bench"
    definition: str
    records: list

    def csv_text(self, run_fields: dict | None = None) -> str:
        return bench_csv(self.records, run_fields)

    def __post_init__(self):
        if isinstance(self.records, list):
            self.records = [r if isinstance(r, BenchRow) else
                            _build(BenchRow, r, f"records/bench.json [{i}]")
                            for i, r in enumerate(self.records)]

    def to_json(self):
        """Each row without its unknown (None) figures, except those that say "not known"
        explicitly (:data:`BENCH_ALWAYS`)."""
        rows = [{f.name: getattr(r, f.name) for f in dataclasses.fields(r)
                 if getattr(r, f.name) is not None or f.name in BENCH_ALWAYS}
                for r in self.records]
        return {"definition": self.definition, "records": rows,
                "schema_version": SCHEMA_VERSION}

    @classmethod
    def from_json(cls, obj, where: str = ""):
        where = where or "records/bench.json"
        rows = obj.get("records") if isinstance(obj, dict) else None
        if isinstance(rows, list):       # each row's error names the file
            obj = {**obj, "records": [_build(BenchRow, r, f"{where} [{i}]")
                                      for i, r in enumerate(rows)]}
        return _build(cls, obj, where)

    def check(self, where: str = "", writing: bool = False) -> None:
        where = where or "records/bench.json"
        super().check(where, writing)
        for i, r in enumerate(self.records):
            if not isinstance(r, BenchRow):
                raise RecordError(f"{where} [{i}]: {type(r).__name__}, not a BenchRow")
            check(r, f"{where} [{i}]", writing)


BENCH_ALWAYS = {f.name for f in dataclasses.fields(BenchRow)
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
    list (written before version 1) still reads, as version 0.  ``pairs``:
    :class:`ParityPair` s (a pair given as a dict is built into one and checked)."""
    NAME = "parity"

    def __init__(self, pairs: list):
        self.pairs = [p if isinstance(p, ParityPair) else
                      _build(ParityPair, p, f"records/parity.json [{i}]")
                      for i, p in enumerate(pairs)]

    def to_json(self):
        """Each pair's fields; ``non_finite_images`` only when some were found."""
        return {"schema_version": SCHEMA_VERSION,
                "pairs": [{k: v for k, v in dataclasses.asdict(p).items()
                           if v is not None or k != "non_finite_images"}
                          for p in self.pairs]}

    def data(self):
        return self.to_json()["pairs"]

    def check(self, where: str = "", writing: bool = False) -> None:
        where = where or "records/parity.json"
        for i, p in enumerate(self.pairs):
            check(p, f"{where} [{i}]", writing)

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
        return cls([_build(ParityPair, p, f"{where} [{i}]") for i, p in enumerate(obj)])

    def __eq__(self, other):
        return type(self) is type(other) and self.pairs == other.pairs
