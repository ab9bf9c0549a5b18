"""cluster: the scheduler address is checked before Dask is asked, and an address where
nothing listens is refused in seconds."""
from __future__ import annotations

import time

import pytest

from zoorepro import cluster
from zoorepro.errors import ConfigError

pytest.importorskip("distributed")


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
