"""Helpers to run ais_bench's REAL Python front end (``../shared/third_party/ais_bench``) over
the stand-in C++ runtime in ``tests/standin`` (see its README), and inputs whose expected
top-1..top-5 are known exactly.

The stand-in ranks the 1000 classes of each image by a permutation seeded from the image's
bytes (``aclruntime.ranking``).  :func:`designed_labels` gives image i the class at rank
``RANKS[i]``, so top-k = images with ``RANKS[i] < k``: 30 / 40 / 60 / 70 / 80 % for ten images.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import DEMO_IMAGES, ROOT, SHARED

AIS = SHARED / "third_party" / "ais_bench"
STANDIN = ROOT / "tests" / "standin"
RANKS = [0, 1, 2, 3, 4, 6, 0, 2, 9, 0]
EXPECTED = {f"top{k}": 100.0 * sum(r < k for r in RANKS) / len(RANKS) for k in range(1, 6)}

need_ais = pytest.mark.skipif(
    not (AIS / "ais_bench" / "infer" / "infer_process.py").is_file(),
    reason="../shared/third_party/ais_bench (ais_bench's real front end) is absent: the tests "
           "that run it over the stand-in aclruntime need it")


def standin():
    """The stand-in ``aclruntime`` module (imported from tests/standin)."""
    if str(STANDIN) not in sys.path:
        sys.path.insert(0, str(STANDIN))
    import aclruntime
    return aclruntime


def env(tmp_path: Path, **extra) -> dict:
    """Environment for ``python -m ais_bench`` and the kit's script: the stand-in runtime and
    the real front end on PYTHONPATH, the stand-in atc/npu-smi and this Python on PATH."""
    e = {k: v for k, v in os.environ.items() if k not in ("SOC_VERSION", "DEVICE_ID")}
    e["PYTHONPATH"] = os.pathsep.join([str(STANDIN), str(AIS)])
    e["PATH"] = os.pathsep.join([str(STANDIN / "bin"), str(Path(sys.executable).parent),
                                 os.environ.get("PATH", "")])
    e["ACLRUNTIME_STANDIN_LOG"] = str(tmp_path / "aclruntime.log")
    e["STANDIN_ATC_LOG"] = str(tmp_path / "atc.log")
    e.update({k: str(v) for k, v in extra.items()})
    return e


def run_ais(args, cwd: Path, environ: dict, umask: int = 0o022, check: bool = True):
    """``python -m ais_bench ARGS`` (the real front end) in ``cwd`` under ``umask``."""
    proc = subprocess.run([sys.executable, "-m", "ais_bench", *map(str, args)], cwd=cwd,
                          env=environ, capture_output=True, text=True, timeout=300, umask=umask)
    if check:
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc


def images(n: int = len(RANKS)) -> list[Path]:
    from zoorepro.recipe import data
    return data.list_images(DEMO_IMAGES)[:n]


def spec(recipe: str = "squeezenet1_1"):
    """The recipe's preprocessing (what makes the .bin files the stand-in ranks)."""
    from zoorepro import recipebook
    return recipebook.load(recipe).preprocess


def write_bins(folder: Path, n: int = len(RANKS)) -> list[Path]:
    """The demo's first ``n`` images, preprocessed by zoorepro, as ``<key>.bin`` (mode 0640)."""
    from zoorepro.recipe import data, preprocess
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for p in images(n):
        path = folder / f"{data.image_key(p.name)}.bin"
        preprocess.preprocess_array(p, spec()).tofile(path)
        os.chmod(path, 0o640)
        out.append(path)
    os.chmod(folder, 0o750)
    return out


def designed_labels(path: Path, n: int = len(RANKS), recipe: str = "squeezenet1_1") -> Path:
    """A ``val_label.txt`` for the demo's first ``n`` images: image i labelled with the class
    the stand-in ranks ``RANKS[i]``-th for it (its .bin as ``recipe`` preprocesses it)."""
    from zoorepro.recipe import preprocess
    acl = standin()
    lines = []
    for p, r in zip(images(n), RANKS):
        order = acl.ranking(preprocess.preprocess_array(p, spec(recipe)).tobytes())
        lines.append(f"{p.name} {int(order[r])}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def om(path: Path, bs: int, outputs=(("class", "float32", 1000),)) -> Path:
    standin().stub_om(path, bs, outputs)
    os.chmod(path, 0o640)
    return path


def scores(metrics: dict) -> dict:
    return {f"top{k}": metrics[f"top{k}"] for k in range(1, 6)}


def expected_scores(bin_path: Path) -> np.ndarray:
    return standin().scores_for(bin_path.read_bytes())
