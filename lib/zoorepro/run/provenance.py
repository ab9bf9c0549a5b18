"""What produced the numbers: environment, versions, hashes, git commit."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from zoorepro.host import cpu_name, physical_cores, total_memory

PACKAGES = ("zoorepro", "numpy", "pillow", "torch", "torchvision", "onnx", "onnxruntime",
            "papermill", "nbconvert", "matplotlib", "simplejpeg", "ais_bench", "aclruntime")


def package_versions(names=PACKAGES) -> dict:
    out = {}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            out[n] = None
    return out


def git_commit(path: str | os.PathLike | None = None) -> str | None:
    here = Path(path or Path(__file__).resolve().parent)
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=10)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def gpu_name() -> str | None:
    try:
        import torch
        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except Exception:
        pass
    return None


def environment() -> dict:
    return {
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "cpu": cpu_name(),
        "logical_cores": os.cpu_count(),
        "physical_cores": physical_cores(),
        "memory_gib": _memory_gib(),
        "gpu": gpu_name(),
        "packages": package_versions(),
        "zoorepro_git_commit": git_commit(),
        "cann": _cann_version() or None,
    }


def _memory_gib() -> float:
    return round(total_memory() / 2**30, 1)


def _cann_version() -> str:
    from zoorepro.ascend.atc import cann_version_from_env as _cann_version_from_env
    return _cann_version_from_env()
