"""The CSV files beside the records (``records/bench.csv``, ``accuracy.csv``): fixed columns,
then what identifies the run, so the files of many runs stack into one table."""
from __future__ import annotations

import csv
import io

BENCH_CSV_FIELDS = ("backend", "device", "batch_size", "iterations", "seconds", "min_ms",
                    "mean_ms", "median_ms", "p90_ms", "p99_ms", "max_ms", "throughput",
                    "throughput_definition", "e2e_throughput", "e2e_images", "e2e_streams",
                    "threads", "version", "precision", "input", "valid", "validity", "timing",
                    "h2d_mean_ms", "d2h_mean_ms")
# bench.csv: those, then what identifies the run, so the files of many runs stack
BENCH_CSV_RUN_FIELDS = ("run", "weights_sha256", "onnx_sha256", "image_list_sha256")

ACCURACY_COLUMNS = ("run", "backend", "device", "batch_size", "images", "top1", "top2", "top3",
                    "top4", "top5", "weights_sha256", "onnx_sha256", "image_list_sha256",
                    "label_file_sha256")


def bench_csv(rows: list, run_fields: dict | None = None) -> str:
    """``bench.csv`` of the sweep's rows (dicts shaped as ``records.BenchRow``)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=BENCH_CSV_FIELDS + BENCH_CSV_RUN_FIELDS,
                       extrasaction="ignore")
    w.writeheader()
    w.writerows({**r, **(run_fields or {})} for r in rows)
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
