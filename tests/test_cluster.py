"""cluster: the scheduler address is checked before Dask is asked, and an address where
nothing listens, or where something that is no Dask scheduler answers, is refused in
seconds."""
from __future__ import annotations

import contextlib
import http.server
import threading
import time

import pytest

from zoorepro import addresses, config
from zoorepro.scale import cluster
from zoorepro.errors import ConfigError

from conftest import small_params

distributed = pytest.importorskip("distributed")


@pytest.mark.parametrize("address, says", [
    ("garbage", "scheduler: 'garbage' is not a Dask scheduler address"),
    ("tcp://127.0.0.1:1", "scheduler tcp://127.0.0.1:1: nothing answers"),
])
def test_connect_refuses_a_bad_address_quickly_as_a_config_error(address, says):
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=says):
        with cluster.connect(address):
            pass
    assert time.perf_counter() - t0 < 10


@contextlib.contextmanager
def http_server():
    """``python -m http.server`` on 127.0.0.1 (a free port): it answers, but is no Dask."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             http.server.SimpleHTTPRequestHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_listener_that_is_no_dask_scheduler_is_refused_within_seconds():
    """An http.server passed the TCP check: a run folder was made, then the run hung."""
    with http_server() as address:
        t0 = time.perf_counter()
        with pytest.raises(ConfigError, match=f"scheduler {address}: answers, but is no Dask "
                                              f"scheduler"):
            addresses.check_scheduler(address)
        assert time.perf_counter() - t0 < 10
        t0 = time.perf_counter()
        with pytest.raises(ConfigError, match="answers, but is no Dask scheduler"):
            with cluster.connect(address):
                pass
        assert time.perf_counter() - t0 < 10


def test_a_run_on_a_listener_that_is_no_dask_is_refused_before_its_folder(tmp_path):
    from zoorepro import runner
    with http_server() as address:
        cfg = config.from_mapping(small_params(tmp_path, shards=2, scheduler=address))
        t0 = time.perf_counter()
        with pytest.raises(ConfigError, match="answers, but is no Dask scheduler"):
            runner.run_all(cfg)
        assert time.perf_counter() - t0 < 10
    assert not (tmp_path / "reports").exists()


def test_a_real_dask_scheduler_is_accepted_and_a_worker_is_not():
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  protocol="tcp://", host="127.0.0.1",
                                  dashboard_address=":0") as lc:
        assert lc.scheduler_address.startswith("tcp://127.0.0.1:")
        t0 = time.perf_counter()
        addresses.check_scheduler(lc.scheduler_address)
        assert time.perf_counter() - t0 < 10
        worker = next(iter(lc.workers.values())).address
        with pytest.raises(ConfigError, match="a Dask Worker, not the scheduler"):
            addresses.check_scheduler(worker)


def test_without_dask_the_check_is_a_tcp_connect(monkeypatch):
    import builtins
    real = builtins.__import__

    def no_dask(name, *a, **k):
        if name.split(".")[0] == "distributed":
            raise ImportError(name)
        return real(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", no_dask)
    with http_server() as address:
        addresses.check_scheduler(address)                      # something answers: passes
    with pytest.raises(ConfigError, match="nothing answers"):
        addresses.check_scheduler("tcp://127.0.0.1:1")
