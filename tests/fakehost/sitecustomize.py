"""Test-only: makes every Python process that has this folder on PYTHONPATH (the pytest
process, papermill kernels, subprocesses) see another machine.  ``ZOOREPRO_TEST_FAKE_CPU``
is ``"<cpu name>|<physical cores>"``, e.g. ``"Zoorepro Fake CPU (no such chip)|64"``.

It replaces zoorepro.host's CPU name and core count and platform's strings before anything
imports them, so records, report and expected strings are produced as on that machine.  It
exists to prove that no golden file or expected string depends on the machine the suite runs
on (tests/test_golden.py); the product never reads this variable."""
import os

_fake = os.environ.get("ZOOREPRO_TEST_FAKE_CPU", "")
if _fake:
    _name, _, _cores = _fake.partition("|")
    _n = int(_cores or "64")
    import platform

    platform.processor = lambda: _name
    platform.platform = lambda *a, **k: "Linux-0.0.0-fake-x86_64-with-glibc0.0"
    try:
        import psutil

        psutil.cpu_count = lambda logical=True: _n * (2 if logical else 1)
    except ImportError:
        pass
    from zoorepro import host

    host.cpu_name = lambda: _name
    host.physical_cores = lambda: _n
