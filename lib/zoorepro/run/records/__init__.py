"""The records of a run folder (``records/<name>.json``): one dataclass each, with their JSON
keys plus ``schema_version``.  A record is built by calling its class (a mistyped field is a
``TypeError`` where it is written) and read by :func:`from_json` (an unknown or missing key is
a :class:`RecordError` naming the file), so a gap never renders silently as "—".  Every value
is type- and range-checked on read and on write by the rules its field declares
(:mod:`zoorepro.run.recordcheck`: ``pct()``, ``count()``, ``rate()``, ``RELATIONS``); an unknown
``schema_version`` is refused.  Records written before ``schema_version`` existed (version 0)
are read the same way.  Records stay typed from the stage that writes them to the report that
reads them: every reader takes the objects (``run.read(records.BenchRecord).records[0]
.throughput``), never their JSON.

* :mod:`~zoorepro.run.records.perrun`: one per run (environment, dataset, preprocess,
  export, atc, failure, ingest, shards);
* :mod:`~zoorepro.run.records.perbackend`: ``infer`` and ``accuracy`` map a backend name to
  an entry dataclass (:class:`InferEntry`, :class:`AccuracyEntry`);
* :mod:`~zoorepro.run.records.sweep`: ``bench`` holds one :class:`BenchRow` per sweep point,
  ``parity`` one :class:`ParityPair` per two backends (a bare JSON list before version 1);
* :mod:`~zoorepro.run.records.ladder`: ``quantize`` (the int8 model and its calibration) and
  ``ladder`` (one :class:`LadderRow` per precision step, "Where accuracy goes").

Reached as ``from zoorepro.run import records``; ``records.X`` for every class here.
"""
from __future__ import annotations

from zoorepro.run.recordcheck import SCHEMA_VERSION, Record  # noqa: F401
from zoorepro.run.recordcsv import (ACCURACY_COLUMNS, BENCH_CSV_FIELDS,  # noqa: F401
                                    BENCH_CSV_RUN_FIELDS, accuracy_csv, bench_csv,
                                    definition_key)
from zoorepro.run.records.ladder import (LadderRecord, LadderRow,  # noqa: F401
                                         QuantizeRecord)
from zoorepro.run.records.perbackend import (AccuracyEntry, AccuracyRecord,  # noqa: F401
                                             InferEntry, InferRecord)
from zoorepro.run.records.perrun import (AtcRecord, DatasetRecord,  # noqa: F401
                                         EnvironmentRecord, ExportRecord, FailureRecord,
                                         IngestRecord, PreprocessRecord, RecipeRecord,
                                         ShardsRecord)
from zoorepro.run.records.sweep import (BENCH_ALWAYS, BenchRecord, BenchRow,  # noqa: F401
                                        ParityPair, ParityRecord)

ALL = {c.NAME: c for c in (EnvironmentRecord, RecipeRecord, DatasetRecord, PreprocessRecord,
                           ExportRecord, AtcRecord, InferRecord, BenchRecord, AccuracyRecord,
                           ParityRecord, IngestRecord, FailureRecord, ShardsRecord,
                           QuantizeRecord, LadderRecord)}
