"""Atomic writes: write to a temporary name in the same folder, then rename.

A reader (or a resumed run) never sees a half-written file under its final name.
"""
from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

_COUNTER = itertools.count()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{next(_COUNTER)}.part"
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    try:
        fd = os.open(tmp, flags, 0o666)  # name unique to this process and call; umask applies
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, flags, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def atomic_copy(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    with open(src, "rb") as fh:
        return atomic_write_bytes(dst, fh.read())


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def project_root() -> Path:
    """The folder holding ``lib/zoorepro`` (the repository when installed editable)."""
    return Path(__file__).resolve().parents[2]
