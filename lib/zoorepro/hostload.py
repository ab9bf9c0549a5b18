"""How busy the host was while a sweep point was timed (issue: a sweep measured at load
average 11 read as "valid" at half the machine's speed, and nothing said the host was busy).

Around each point, :class:`Window` records the 1-minute load average before and after, and
the CPU time that other processes took during it, where the OS tells it (psutil):

    others_cpu_share = (system-wide busy CPU time - this process's and its children's CPU
                        time) / (the point's wall time x logical cores)

System-wide busy time is ``psutil.cpu_times()``'s user + nice + system + irq + softirq + steal
(steal: time a hypervisor gave to other machines); the kernel counts it in clock ticks
(10 ms per CPU), so a point shorter than :data:`MIN_WINDOW_S` gets no share (None) rather
than a number that is mostly rounding.  A point is busy (:func:`is_busy`) when others took
more than :data:`BUSY_SHARE` of the cores, or when the load average exceeded the core count
both before and after it (the load average counts zoorepro's own threads too, hence both).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

BUSY_SHARE = 0.25        # others' share of all cores above which a point is busy
MIN_WINDOW_S = 0.2       # shorter points: the share would be within ~5 % of tick rounding
_BUSY_FIELDS = ("user", "nice", "system", "irq", "softirq", "steal")
_now = time.perf_counter       # the wall clock of a sample (a stand-in in tests)


def _psutil():
    try:
        import psutil
    except ImportError:       # the share is then unknown; the load average still reads
        return None
    return psutil


@dataclass(frozen=True)
class Sample:
    """One reading: wall clock, load average, system-wide busy and this process's CPU s."""
    wall: float
    load: float | None
    system_busy: float | None
    own: float | None
    cores: int | None


def system_busy_seconds(times) -> float:
    """Busy CPU seconds of all CPUs from a ``psutil.cpu_times()`` tuple (idle and iowait
    left out; guest time is already inside user on Linux, so not added)."""
    return float(sum(getattr(times, f, 0.0) or 0.0 for f in _BUSY_FIELDS))


def own_seconds(times) -> float:
    """This process's CPU seconds, with its waited-for children, from ``Process.cpu_times()``."""
    return float(sum(getattr(times, f, 0.0) or 0.0
                     for f in ("user", "system", "children_user", "children_system")))


def sample(psutil=None) -> Sample:
    """Read the host now (``psutil``: the module, or a stand-in in tests)."""
    ps = psutil if psutil is not None else _psutil()
    try:
        load = float(os.getloadavg()[0]) if ps is None else float(ps.getloadavg()[0])
    except (OSError, AttributeError):
        load = None
    if ps is None:
        return Sample(_now(), load, None, None, os.cpu_count())
    return Sample(_now(), load, system_busy_seconds(ps.cpu_times()),
                  own_seconds(ps.Process().cpu_times()), ps.cpu_count(logical=True))


def others_share(before: Sample, after: Sample) -> float | None:
    """Other processes' share of all cores between two samples, in 0..1 (None: not known or
    the window is shorter than :data:`MIN_WINDOW_S`)."""
    wall = after.wall - before.wall
    if None in (before.system_busy, after.system_busy, before.own, after.own) \
            or not after.cores or wall < MIN_WINDOW_S:
        return None
    others = (after.system_busy - before.system_busy) - (after.own - before.own)
    return round(min(1.0, max(0.0, others / (wall * after.cores))), 3)


def is_busy(share: float | None, load_before: float | None, load_after: float | None,
            cores: int | None) -> bool | None:
    """Busy: others above :data:`BUSY_SHARE` of the cores, or the load average above the
    core count before and after.  None when nothing is known."""
    known = False
    if share is not None:
        known = True
        if share > BUSY_SHARE:
            return True
    if cores and load_before is not None and load_after is not None:
        known = True
        if min(load_before, load_after) > cores:
            return True
    return False if known else None


def fields(before: Sample, after: Sample) -> dict:
    """The bench record's host-load fields (``records.BenchRow``) for one point."""
    share = others_share(before, after)
    cores = after.cores
    rnd = lambda v: None if v is None else round(v, 2)   # noqa: E731
    return {"load_before": rnd(before.load), "load_after": rnd(after.load),
            "others_cpu_share": share, "host_cores": cores,
            "busy": is_busy(share, before.load, after.load, cores)}


class Window:
    """``with Window() as w: <time the point>`` then ``w.fields()``."""

    def __init__(self, psutil=None):
        self._ps = psutil
        self.before = self.after = None

    def __enter__(self):
        self.before = sample(self._ps)
        return self

    def __exit__(self, *exc):
        self.after = sample(self._ps)
        return False

    def fields(self) -> dict:
        return fields(self.before, self.after)


def busy_detail(rec: dict) -> str:
    """What made a busy record busy ("" when not busy): ``others 43 % of 8 cores; load
    11.2 → 10.8``."""
    if not rec.get("busy"):
        return ""
    parts = []
    if rec.get("others_cpu_share") is not None:
        parts.append(f"others {100 * rec['others_cpu_share']:.0f} % of "
                     f"{rec.get('host_cores')} cores")
    one = lambda v: "?" if v is None else f"{v:.1f}"   # noqa: E731
    if rec.get("load_before") is not None or rec.get("load_after") is not None:
        parts.append(f"load {one(rec.get('load_before'))} → {one(rec.get('load_after'))}"
                     + ("" if parts else f" on {rec.get('host_cores')} cores"))
    return "; ".join(parts)
