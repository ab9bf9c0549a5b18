"""The throughput table's rows and notes, shared by the report and the compare page.

Each row says how many streams produced each figure (compute img/s is always one session's;
end-to-end img/s is the accuracy run's streams), marks a percentile computed from too few
timings (:data:`PERCENTILE_TAIL_MIN`), and its validity cell says when the host was busy
(:mod:`zoorepro.hostload`).  :func:`throughput_notes` gathers what the table's footnote and
banner say; ``templates/report/_throughput_notes.html.j2`` words it.
"""
from __future__ import annotations

import math

from zoorepro.hostload import BUSY_SHARE, busy_detail
from zoorepro.report.core import RunData, fmt

# A percentile q is marked when fewer than this many timings lie beyond it: p99 from fewer
# than 100 iterations, p90 from fewer than 10 (then it is the largest timing, or a guess
# between the largest two).
PERCENTILE_TAIL_MIN = 1
FEW_MARK = "*"
MARKED_PERCENTILES = (90, 99)

THROUGHPUT_HEADERS = ["backend", "device", "precision", "batch", "compute img/s",
                      "compute streams", "end-to-end img/s", "end-to-end streams", "mean ms",
                      "median ms", "p90 ms", "p99 ms", "iterations", "seconds", "validity"]


def min_iterations(q: float) -> int:
    """The fewest iterations from which the q-th percentile is shown unmarked."""
    return math.ceil(PERCENTILE_TAIL_MIN * 100 / (100 - q))


def few_for(q: float, iterations) -> bool:
    """Whether the q-th percentile of ``iterations`` timings is marked."""
    return isinstance(iterations, int) and not isinstance(iterations, bool) \
        and iterations < min_iterations(q)


def percentile_cell(value, q: float, iterations) -> str:
    cell = fmt(value, 3)
    return cell + FEW_MARK if value is not None and few_for(q, iterations) else cell


BUSY_MARK = "busy host"      # in the validity cell; what made it busy is in the banner


def validity_text(r) -> str:
    """The validity cell of ``r`` (a ``records.BenchRow``)."""
    text = "valid" if r.valid else f"INVALID: {r.validity}"
    return f"{text}; {BUSY_MARK}" if r.busy else text


def bench_records(data: RunData) -> list:
    """The sweep's ``records.BenchRow`` s."""
    return data.bench_rows


def throughput_rows(data: RunData) -> list:
    rows = []
    for r in bench_records(data):
        e2e = r.e2e_throughput
        rows.append([r.backend, r.device, r.precision, r.batch_size,
                     fmt(r.throughput, 1), 1, fmt(e2e, 1), (r.e2e_streams or 1) if e2e else "—",
                     fmt(r.mean_ms, 3), fmt(r.median_ms, 3),
                     percentile_cell(r.p90_ms, 90, r.iterations),
                     percentile_cell(r.p99_ms, 99, r.iterations),
                     r.iterations, fmt(r.seconds, 2), validity_text(r)])
    return rows


def throughput_notes(recs: list, runs: list | None = None) -> dict:
    """What the footnote and the banner under a throughput table say, as data:
    ``few``: the marked percentiles (``{"p90": 10, "p99": 100, "counts": "2, 3"}``) or None;
    ``recs``: ``records.BenchRow`` s.
    ``busy``: ``{"points": n, "of": m, "share_pct": 25, "details": [...]}`` or None, one
    detail per busy point (``runs``: each record's run label, on the compare page)."""
    counts = sorted({r.iterations for r in recs
                     if r.p99_ms is not None and few_for(99, r.iterations)
                     or r.p90_ms is not None and few_for(90, r.iterations)})
    few = None
    if counts:
        few = {f"p{q}": min_iterations(q) for q in MARKED_PERCENTILES}
        few["counts"] = ", ".join(map(str, counts))
    details = [f"{run + ': ' if run else ''}{r.backend} batch {r.batch_size} "
               f"({busy_detail(vars(r))})" for r, run in zip(recs, runs or [None] * len(recs))
               if r.busy]
    return {"few": few, "mark": FEW_MARK,
            "busy": {"points": len(details), "of": len(recs), "details": details,
                     "share_pct": round(100 * BUSY_SHARE)} if details else None}
