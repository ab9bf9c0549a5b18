"""The precision records: ``quantize`` (the int8 model, built once per run and cached by its
calibration hash) and ``ladder`` ("Where accuracy goes": one :class:`LadderRow` per step from
the framework's float pipeline to the NPU, each compared with the recipe's fp32 path, row b).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

from zoorepro.errors import RecordError
from zoorepro.run.recordcheck import (REQUIRED, SCHEMA_VERSION, Record, at_most, check,
                                      count, non_decreasing, nonneg, pct, positive, rate)
from zoorepro.run.recordcheck import build as _build


@dataclass
class QuantizeRecord(Record):
    """The int8 AIPP model (ONNX Runtime QDQ static quantization) and what it was calibrated
    on.  ``calibration_sha256`` hashes everything the model depends on (the fp32 AIPP model,
    the calibration inputs in order, the method and ONNX Runtime's version): a run whose
    record matches reuses ``model``; any difference builds a new one under a new name."""
    NAME: ClassVar[str] = "quantize"
    model: str
    model_sha256: str
    source_model: str
    source_model_sha256: str
    method: str                      # one sentence: format, weights, activations, calibrator
    calibration_set: str             # in words: "32 of the run's 100 scored images, ..."
    calibration_images: int = positive(REQUIRED)
    calibration_keys: list = field(default_factory=list)
    calibration_scored: int = count(0)   # of the calibration images, how many are scored
    calibration_sha256: str = ""
    version: str = ""                # onnxruntime x.y.z
    excluded_nodes: list = field(default_factory=list)    # kept float (AIPP)
    seconds: float | None = rate()
    RELATIONS: ClassVar[tuple] = (at_most("calibration_images", "calibration_scored"),)


def _fixed_and_broken(row):
    """Fixed and broken images are two kinds of changed ones: together at most ``changed``."""
    if None not in (row.fixed, row.broken, row.changed) and row.fixed + row.broken > row.changed:
        return "fixed", row.fixed, f"with broken ({row.broken}) more than changed ({row.changed})"
    return None


@dataclass
class LadderRow:
    """One step of the ladder: what produced it (``how``, ``engine``) and, on the images it
    scored, its accuracy and how it differs from row b (the recipe's fp32 path)."""
    step: str                        # "a" .. "f"
    name: str                        # short: "recipe fp32 (uint8 + AIPP)"
    how: str                         # exactly how it was computed, and what it cannot model
    status: str                      # "ok" | "not run"
    reason: str | None = None
    engine: str | None = None        # "onnxruntime 1.32.0 (CPU)", "ais_bench (NPU Ascend310P3)"
    source: str | None = None        # where its logits came from (a result folder)
    images: int | None = count()
    top1: float | None = pct()
    top2: float | None = pct()
    top3: float | None = pct()
    top4: float | None = pct()
    top5: float | None = pct()
    agreement_pct: float | None = pct()   # top-1 agreement with row b, on images both have
    compared: int | None = count()        # images compared with row b
    changed: int | None = count()         # of those, top-1 differs from row b's
    fixed: int | None = count()           # changed, and right where row b was wrong
    broken: int | None = count()          # changed, and wrong where row b was right
    changed_examples: list = field(default_factory=list)   # "key: 12 -> 34 (label 12)"
    max_abs_logit_delta: float | None = nonneg()
    throughput: float | None = rate()     # compute img/s here (None: not measured here)
    throughput_batch: int | None = positive()
    throughput_definition: str | None = None
    throughput_validity: str | None = None   # "ok", or why the timing is not to be trusted
    seconds: float | None = rate()        # this row's inference over the images (decoding
    #                                       too for row a), without loading or timing points
    RELATIONS: ClassVar[tuple] = (
        non_decreasing("top1", "top2", "top3", "top4", "top5"),
        at_most("images", "compared"), at_most("compared", "changed"),
        at_most("changed", "fixed", "broken"), _fixed_and_broken)


@dataclass
class LadderRecord(Record):
    """``records/ladder.json``: the rows in step order (``rows``: :class:`LadderRow` s; a row
    given as a dict is built into one and checked), ``base`` the step every row is compared
    with, ``csv`` the per-image table (relative to the run folder)."""
    NAME: ClassVar[str] = "ladder"
    status: str                      # "ok" | "not run"
    reason: str | None = None
    base: str = "b"
    images: int | None = count()
    batch_size: int | None = positive()
    rows: list = field(default_factory=list)
    csv: str | None = None
    accuracy_seconds: float | None = rate()   # the accuracy run's own time, for scale
    notes: list = field(default_factory=list)

    def __post_init__(self):
        self.rows = [r if isinstance(r, LadderRow) else
                     _build(LadderRow, r, f"records/ladder.json rows[{i}]")
                     for i, r in enumerate(self.rows)]

    def to_json(self):
        out = super().to_json()
        out["rows"] = [dataclasses.asdict(r) for r in self.rows]
        return out

    def check(self, where: str = "", writing: bool = False) -> None:
        where = where or "records/ladder.json"
        check(self, where, writing)
        steps = [r.step for r in self.rows]
        if len(set(steps)) != len(steps):
            raise RecordError(f"{where}: rows: a step appears twice ({', '.join(steps)})")
        for i, r in enumerate(self.rows):
            check(r, f"{where} rows[{i}]", writing)

    def row(self, step: str) -> LadderRow | None:
        return next((r for r in self.rows if r.step == step), None)


__all__ = ["LadderRecord", "LadderRow", "QuantizeRecord", "SCHEMA_VERSION"]
