"""One process at a time on a run folder: <run>/.lock, flocked, with its holder's facts."""
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from zoorepro.run import runlock
from zoorepro.errors import ZooreproError

HOLDER = textwrap.dedent('''
    import sys, time
    from zoorepro.run import runlock
    lock = runlock.acquire(sys.argv[1], "zoorepro run")
    print("held", flush=True)
    time.sleep(120)
''')


def start_holder(folder, procs: list) -> subprocess.Popen:
    """Another process that holds ``folder``'s lock (appended to ``procs`` to be killed)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)],
                            stdout=subprocess.PIPE, text=True)
    procs.append(proc)
    assert proc.stdout.readline().strip() == "held"
    return proc


def stop_holders(procs: list) -> None:
    for proc in procs:
        proc.kill()
        proc.wait()


def test_a_second_process_is_refused_naming_the_run_and_the_holder(tmp_path, other_holder):
    proc = other_holder(tmp_path)
    with pytest.raises(ZooreproError) as exc:
        runlock.acquire(tmp_path)
    msg = str(exc.value)
    assert str(tmp_path) in msg and f"process {proc.pid} on " in msg
    assert f"zoorepro run --resume {tmp_path}" in msg and "Wait until it ends" in msg
    with pytest.raises(ZooreproError):
        runlock.check(tmp_path)


def test_a_dead_holders_lock_is_taken_over_with_a_message(tmp_path, other_holder):
    proc = other_holder(tmp_path)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (tmp_path / ".lock").is_file()                     # left behind by the dead
    assert runlock.holder(tmp_path) is None                   # ... but held by nobody
    runlock.check(tmp_path)
    said = []
    with runlock.hold(tmp_path, say=said.append):
        assert runlock.holder(tmp_path)["pid"] == os.getpid()
    assert said and f"lock left by process {proc.pid}" in said[0] and "has ended" in said[0]
    assert not (tmp_path / ".lock").exists()


def test_the_holders_kernels_are_let_in_by_its_token(tmp_path, other_holder, monkeypatch):
    other_holder(tmp_path)
    token = runlock.holder(tmp_path)["token"]
    monkeypatch.setenv(runlock.TOKEN_ENV, "not-the-token")
    with pytest.raises(ZooreproError):
        runlock.check(tmp_path)
    monkeypatch.setenv(runlock.TOKEN_ENV, token)
    runlock.check(tmp_path)                                   # a kernel the holder started


def test_held_here_nested_and_released_after_an_error(tmp_path):
    with pytest.raises(ZooreproError, match="injected"):
        with runlock.hold(tmp_path) as lock:
            assert runlock.kernel_env(tmp_path) == {runlock.TOKEN_ENV: lock.info["token"]}
            runlock.check(tmp_path)                           # this process's own lock
            with runlock.hold(tmp_path):
                pass
            assert (tmp_path / ".lock").is_file()             # still held by the outer one
            raise ZooreproError("injected")
    assert not (tmp_path / ".lock").exists() and runlock.kernel_env(tmp_path) == {}
    assert [p.name for p in tmp_path.iterdir()] == []         # no temporary file left either
