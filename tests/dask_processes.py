"""A real Dask cluster for the tests: `dask scheduler` + `dask worker` (2 processes x 1
thread) on 127.0.0.1, as a user starts one, bounded in time and torn down after."""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path


@contextlib.contextmanager
def dask_cluster(folder: Path, env: dict | None = None, workers: int = 2):
    """Yield the scheduler's address; ``env``: extra environment of both commands."""
    import distributed
    bindir = Path(sys.executable).parent
    sched_file = folder / "scheduler.json"
    env = {**os.environ, "TQDM_DISABLE": "1", **(env or {})}
    common = ["--no-dashboard", "--scheduler-file", str(sched_file)]
    procs = [subprocess.Popen([str(bindir / "dask"), "scheduler", "--host", "127.0.0.1",
                               "--port", "0", *common], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)]
    try:
        deadline = time.monotonic() + 60
        while not sched_file.is_file():
            assert time.monotonic() < deadline, "dask scheduler did not start within 60 s"
            time.sleep(0.2)
        procs.append(subprocess.Popen(
            [str(bindir / "dask"), "worker", "--nworkers", str(workers), "--nthreads", "1",
             "--host", "127.0.0.1", "--death-timeout", "60", "--local-directory",
             str(folder / "dask-worker-space"), *common],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        address = json.loads(sched_file.read_text())["address"]
        with distributed.Client(address, timeout=30) as c:
            c.wait_for_workers(workers, timeout=60)
        yield address
    finally:
        if sched_file.is_file():      # the scheduler and its workers end together
            try:
                with distributed.Client(json.loads(sched_file.read_text())["address"],
                                        timeout=10) as c:
                    c.shutdown()
            except Exception:   # noqa: BLE001 - terminated below anyway
                pass
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
