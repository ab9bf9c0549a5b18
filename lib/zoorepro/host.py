"""The machine, as the layers above need it: CPU model, physical cores, memory (psutil),
a memory check before a batch, and the progress bars.  A base module: it imports no other
part of zoorepro but :mod:`zoorepro.errors` (a backend is passed in, never imported)."""
from __future__ import annotations

import contextlib
import os
import platform
import threading
from pathlib import Path


def physical_cores() -> int:
    try:
        import psutil
        n = psutil.cpu_count(logical=False)
        if n:
            return int(n)
    except ImportError:
        pass
    return os.cpu_count() or 1


def available_memory() -> int | None:
    """Bytes of memory new work can take: ``MemAvailable``, capped by a cgroup (container)
    limit; None where neither can be read."""
    import psutil
    found = [int(psutil.virtual_memory().available)]
    try:
        cg = Path("/sys/fs/cgroup")
        limit = (cg / "memory.max").read_text().strip()
        if limit.isdigit():
            found.append(int(limit) - int((cg / "memory.current").read_text()))
    except (OSError, ValueError):
        pass
    return max(0, min(found)) if found else None


# Working memory of one inference session on the CPU (README "Streams"): about 90 MB, plus
# 5 MB per image of its batch; on a GPU the host holds a batch's input and output only.
SESSION_BYTES, IMAGE_BYTES, GPU_IMAGE_BYTES = 90 << 20, 5 << 20, 4 * 150_528


def total_memory() -> int:
    """Bytes of memory the machine has (psutil)."""
    import psutil
    return int(psutil.virtual_memory().total)


def check_memory(backend, batch_size: int, streams: int = 1) -> None:
    """Stop before a batch that cannot fit in the memory available (batch 100,000 would
    take 500 GB), rather than dying in the middle of allocating it."""
    from zoorepro.errors import ResourceError
    gpu = str(backend.info().get("device", "")).startswith("cuda")
    need = streams * (SESSION_BYTES + (GPU_IMAGE_BYTES if gpu else IMAGE_BYTES) * batch_size)
    free = available_memory()
    if free is not None and need > free:
        raise ResourceError(
            f"{getattr(backend, 'name', 'backend')}: batch size {batch_size} x {streams} "
            f"stream(s) needs about {need / 2**30:.1f} GiB of memory, {free / 2**30:.1f} GiB "
            f"is available; set smaller batch_sizes / accuracy_batch_size, or fewer infer_streams")


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# Where a kernel draws its progress bars: set in the environment of the kernels zoorepro's
# runner starts (each kernel's own, never the runner's), read here in the kernel.
PROGRESS_ENV = "ZOOREPRO_PROGRESS"


def progress_bar(total: int, desc: str, unit: str = "img"):
    """A progress bar for a long step, or None.  ``ZOOREPRO_PROGRESS`` in this process's
    environment says where: ``terminal`` (a kernel started by ``zoorepro run``: the bar goes
    to the terminal, not into the executed notebook), ``off`` (``zoorepro -q``, the runs of
    ``zoorepro matrix``), else ``auto`` (a widget in JupyterLab, text on a terminal)."""
    import sys
    mode = os.environ.get(PROGRESS_ENV, "auto")
    if mode == "off":
        return None
    try:
        if mode == "terminal":
            from tqdm import tqdm
            return tqdm(total=total, desc=desc, unit=unit, file=sys.__stderr__, leave=False)
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr)


@contextlib.contextmanager
def heartbeat(bar, every: float = 10.0):
    """Redraw ``bar`` every ``every`` seconds while the body runs, so its elapsed time moves
    on the terminal even during one long step (a sweep point can take a minute)."""
    if bar is None:
        yield
        return
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(every):
            try:
                bar.refresh()
            except Exception:       # a closed or broken bar: nothing more to draw
                return
    t = threading.Thread(target=tick, name="zoorepro-heartbeat", daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()
