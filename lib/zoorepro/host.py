"""Facts about the machine that records name: CPU model, physical cores, the CANN version
of a sourced set_env.sh.  Nothing here depends on a backend."""
from __future__ import annotations

import os
import platform
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


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cann_version_from_env() -> str:
    """The CANN version from the toolkit's install info, when set_env.sh was sourced."""
    from .atc import parse_cann_version
    home = os.environ.get("ASCEND_HOME_PATH") or os.environ.get("ASCEND_TOOLKIT_HOME") or ""
    if not home:
        return ""
    cands = sorted(Path(home).glob("*-linux/ascend_toolkit_install.info"))
    cands += [Path(home) / "version.cfg", Path(home) / "compiler" / "version.info"]
    for c in cands:
        if c.is_file():
            v = parse_cann_version(c.read_text(errors="replace"))
            if v:
                return v
    return ""
