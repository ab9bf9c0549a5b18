"""Dask for zoorepro's matrices and sharded runs: a ``LocalCluster`` sized to this machine, or
an existing cluster by its scheduler address; threads per task so that tasks on one host do
not oversubscribe its cores; peak memory of a task; progress events from workers.

Dask (``dask.distributed``) is an optional extra, imported only inside these functions; when
it is missing, the error says ``pip install "dask[distributed]"``.  Tasks get paths and small
records, never image arrays, so every worker must see the same files at the same paths (one
machine, or a shared file system on a cluster) and have zoorepro installed.
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Iterator

from zoorepro.addresses import check_scheduler
from zoorepro.errors import ConfigError
from zoorepro.host import physical_cores

INSTALL = 'pip install "dask[distributed]"'
CONNECT_TIMEOUT_S = 20      # reaching a scheduler
WORKER_TIMEOUT_S = 60       # a scheduler with no worker yet
CLOSE_TIMEOUT_S = 20        # closing a client or a LocalCluster


def require(what: str):
    """``distributed``, or a ConfigError naming ``what`` needs it and how to install it."""
    try:
        import distributed
    except ImportError:
        raise ConfigError(f"{what} runs on Dask, which is not installed here: {INSTALL}") from None
    return distributed


def _has_dashboard() -> bool:
    """Dask's dashboard needs bokeh."""
    try:
        import bokeh  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class Cluster:
    """A connected client and what the records say about the cluster."""
    client: Any
    kind: str                      # "LocalCluster" or "external"
    scheduler: str                 # the scheduler's address
    workers: int = 0
    threads: int = 0               # worker threads in all: tasks that run at the same time
    hosts: dict = field(default_factory=dict)    # host -> {"cores", "threads", "workers"}
    dashboard: str | None = None

    def threads_by_host(self) -> dict:
        """Host -> inference/processing threads one task there may use: the host's physical
        cores shared by the tasks that run on it at the same time (at least 1)."""
        return {h: max(1, v["cores"] // max(1, v["threads"])) for h, v in self.hosts.items()}

    def describe(self) -> dict:
        what = (f"LocalCluster: {self.workers} worker process(es) x "
                f"{self.threads // max(1, self.workers)} thread(s)" if self.kind == "LocalCluster"
                else f"external cluster: {self.workers} worker(s), {self.threads} thread(s) "
                     f"on {len(self.hosts)} host(s)")
        return {"scheduler": self.scheduler, "cluster": what, "workers": self.workers,
                "worker_threads": self.threads, "hosts": self.hosts}

    def refresh(self) -> None:
        """Workers, threads and each host's physical cores, from the scheduler."""
        info = self.client.scheduler_info(n_workers=-1)
        workers = info.get("workers", {})
        cores = self.client.run(physical_cores)            # worker address -> cores
        hosts: dict = {}
        for addr, w in workers.items():
            h = hosts.setdefault(w.get("host") or addr, {"cores": 0, "threads": 0, "workers": 0})
            h["cores"] = max(h["cores"], int(cores.get(addr) or 1))
            h["threads"] += int(w.get("nthreads") or 1)
            h["workers"] += 1
        self.workers = len(workers)
        self.threads = sum(int(w.get("nthreads") or 1) for w in workers.values())
        self.hosts = hosts

    def attempts(self, keys) -> dict:
        """Key -> times it was started: 1 + the workers that died running it (the
        scheduler's count); {} when the scheduler cannot be asked."""
        keys = list(keys)

        def ask(dask_scheduler=None):
            return {k: 1 + dask_scheduler.tasks[k].suspicious for k in keys
                    if k in dask_scheduler.tasks}
        try:
            return self.client.run_on_scheduler(ask)
        except Exception:   # noqa: BLE001 - a fact for the record, never a reason to fail
            return {}


@contextlib.contextmanager
def connect(scheduler: str = "", n_workers: int = 0, what: str = "this",
            processes: bool = True) -> Iterator[Cluster]:
    """A client on ``scheduler`` (an existing cluster), or on a new ``LocalCluster`` of
    ``n_workers`` single-threaded worker processes (default: the physical cores); both are
    closed on exit (a cluster given by address is left running)."""
    distributed = require(what)
    local = None
    if scheduler:
        # its syntax, and a Dask scheduler answers there (handshake, identity), in seconds:
        # Client's own handshake has no time limit (a non-Dask listener held it for ever)
        check_scheduler(scheduler)
        try:
            client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ConfigError(f"scheduler {scheduler}: cannot connect ({exc}); start one with "
                              f"'dask scheduler' and workers with 'dask worker {scheduler}', "
                              f"or leave scheduler empty for a LocalCluster here") from None
        try:
            client.wait_for_workers(1, timeout=WORKER_TIMEOUT_S)
        except (OSError, TimeoutError):
            client.close(timeout=CLOSE_TIMEOUT_S)
            raise ConfigError(f"scheduler {scheduler}: no worker joined within "
                              f"{WORKER_TIMEOUT_S} s; start one with 'dask worker "
                              f"{scheduler}'") from None
    else:
        with dask_settings():
            local = distributed.LocalCluster(
                n_workers=max(1, n_workers or physical_cores()), threads_per_worker=1,
                processes=processes, dashboard_address=":0",   # a free port, never 8787's
                silence_logs=logging.ERROR)
        client = distributed.Client(local, set_as_default=False)
    try:
        cl = Cluster(client, "external" if scheduler else "LocalCluster",
                     client.scheduler.address, dashboard=_link(client))
        cl.refresh()
        yield cl
    finally:
        client.close(timeout=CLOSE_TIMEOUT_S)
        if local is not None:
            local.close(timeout=CLOSE_TIMEOUT_S)


def dask_settings():
    """Dask settings for the worker processes of a LocalCluster made here: no
    ``MALLOC_TRIM_THRESHOLD_`` (Dask's default 64 KiB sends every image-sized buffer through
    mmap/munmap: preprocessing ran up to 1.6x slower, benchmarks/README.md) and no
    statistical profiler (a 10 ms stack sampler competing with the TXT formatting for the
    interpreter lock).  Workers started with ``dask worker`` keep their own settings."""
    import dask
    environ = dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {}
    return dask.config.set({
        "distributed.nanny.pre-spawn-environ": {k: v for k, v in environ.items()
                                                if k != "MALLOC_TRIM_THRESHOLD_"},
        "distributed.worker.profile.enabled": False})


def _link(client) -> str | None:
    try:
        return client.dashboard_link if _has_dashboard() else None
    except Exception:   # noqa: BLE001 - no dashboard
        return None


# ------------------------------------------------------------------ inside a task
def here() -> dict:
    """Where a task runs: its worker's address and host, and the process id."""
    try:
        from distributed import get_worker
        w = get_worker()
        from distributed.comm import get_address_host
        return {"worker": w.address, "host": get_address_host(w.address), "pid": os.getpid()}
    except (ImportError, ValueError):
        return {"worker": None, "host": None, "pid": os.getpid()}


def threads_here(threads_by_host: dict) -> int:
    """This task's share of its host's cores (:meth:`Cluster.threads_by_host`); a worker that
    joined later: its host's physical cores over its own threads."""
    where = here()
    if where["host"] in threads_by_host:
        return int(threads_by_host[where["host"]])
    try:
        from distributed import get_worker
        nthreads = int(getattr(get_worker().state, "nthreads", 1) or 1)
    except (ImportError, ValueError, AttributeError):
        nthreads = 1
    return max(1, physical_cores() // nthreads)


def emit(topic: str, message: dict) -> None:
    """A progress event for the client (``Client.subscribe_topic``); nothing outside a worker."""
    try:
        from distributed import get_worker
        get_worker().log_event(topic, message)
    except (ImportError, ValueError):
        pass


class PeakMemory:
    """Resident memory of this process (``children``: and its child processes, e.g. a run's
    Jupyter kernels) sampled every ``every`` seconds while open: ``peak_mib``, ``start_mib``.
    In a worker of several threads it is the whole process's."""

    def __init__(self, children: bool = False, every: float = 0.02):
        self.children, self.every = children, every
        self.start_mib = self.peak_mib = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _rss(self) -> int:
        total = self._proc.memory_info().rss
        if self.children:
            for c in self._proc.children(recursive=True):
                try:
                    total += c.memory_info().rss
                except Exception:   # noqa: BLE001 - a child that just ended
                    pass
        return total

    def _sample(self) -> None:
        try:
            self.peak_mib = max(self.peak_mib, self._rss() / 2**20)
        except Exception:   # noqa: BLE001 - best effort
            pass

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()

    def __enter__(self) -> "PeakMemory":
        import psutil
        self._proc = psutil.Process()
        self._sample()
        self.start_mib = self.peak_mib
        self._thread = threading.Thread(target=self._loop, name="zoorepro-peak-memory",
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
