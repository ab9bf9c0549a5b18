"""The CSV files beside the records (``records/bench.csv``, ``accuracy.csv``): fixed columns,
then what identifies the run, so the files of many runs stack into one table.

``bench.csv`` states no definition text: its ``definition_key`` column is
:func:`definition_key` of the row's ``throughput_definition``, whose full text is in
``records/bench.json`` (each row's ``throughput_definition``);
``zoorepro.load_run(run).bench_definitions`` is the key -> text table.  The key is the text's
hash, so the same definition has the same key in every run and stacked files stay readable."""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import io

BENCH_CSV_FIELDS = ("backend", "device", "batch_size", "iterations", "seconds", "min_ms",
                    "mean_ms", "median_ms", "p90_ms", "p99_ms", "max_ms", "throughput",
                    "definition_key", "e2e_throughput", "e2e_images", "e2e_streams",
                    "threads", "version", "precision", "input", "valid", "validity", "timing",
                    "h2d_mean_ms", "d2h_mean_ms", "load_before", "load_after",
                    "others_cpu_share", "host_cores", "busy")
# bench.csv: those, then what identifies the run, so the files of many runs stack
BENCH_CSV_RUN_FIELDS = ("run", "weights_sha256", "onnx_sha256", "image_list_sha256")

ACCURACY_COLUMNS = ("run", "backend", "device", "batch_size", "images", "top1", "top2", "top3",
                    "top4", "top5", "weights_sha256", "onnx_sha256", "image_list_sha256",
                    "label_file_sha256")


def definition_key(text: str | None) -> str:
    """The short key of a throughput definition: the first 8 hex digits of its sha256
    ("" for none)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8] if text else ""


def bench_csv(rows: list, run_fields: dict | None = None) -> str:
    """``bench.csv`` of the sweep's rows (``records.BenchRow`` s), one line each."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=BENCH_CSV_FIELDS + BENCH_CSV_RUN_FIELDS,
                       extrasaction="ignore")
    w.writeheader()
    w.writerows({**dataclasses.asdict(r), "definition_key": definition_key(
        r.throughput_definition), **(run_fields or {})} for r in rows)
    return buf.getvalue()


def accuracy_csv(record, run_id: str) -> str:
    """``accuracy.csv`` of a ``records.AccuracyRecord``: one row per backend that ran, with
    the run id and the hashes."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(ACCURACY_COLUMNS)
    for name, e in record.entries.items():
        if e.status == "ok":
            w.writerow([run_id, name] + [getattr(e, c) for c in ACCURACY_COLUMNS[2:]])
    return buf.getvalue()
