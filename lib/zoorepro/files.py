"""Atomic writes: write to a temporary name in the same folder, then rename.

A reader (or a resumed run) never sees a half-written file under its final name.  A write
that fails is a :class:`~zoorepro.errors.WriteError` naming the path and the real cause (disk
full, file too large, read-only file system, ...), never a bare ``Errno``.
"""
from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import itertools
import json
import os
import re
from pathlib import Path
from typing import Any

from zoorepro.errors import WriteError

_COUNTER = itertools.count()
NAME_MAX = 255   # bytes in one file name on Linux file systems

# errno -> (what happened, what to do)
_CAUSES = {
    errno.ENOSPC: ("no space left on the device (disk full)",
                   "free space there, or set bin_dir / output_root to a larger disk"),
    errno.EDQUOT: ("disk quota exceeded", "free space within your quota, or write elsewhere"),
    errno.EFBIG: ("file too large (the file system's or this process's file-size limit, "
                  "ulimit -f)", "raise the limit (ulimit -f unlimited) or write to another "
                                "file system"),
    errno.EROFS: ("read-only file system", "set bin_dir / output_root to a writable folder"),
    errno.EACCES: ("permission denied", "make the folder writable, or set bin_dir / "
                                        "output_root to a writable folder"),
    errno.EPERM: ("operation not permitted", "set bin_dir / output_root to a writable folder"),
    errno.ENAMETOOLONG: ("file name too long for this file system", "shorten the name"),
}


def write_error(path: str | os.PathLike, exc: OSError) -> WriteError:
    """A :class:`WriteError` for ``exc`` raised while writing ``path``: path, cause, fix."""
    cause, fix = _CAUSES.get(exc.errno, (exc.strerror or str(exc), "check that folder"))
    err = WriteError(f"{path}: cannot be written: {cause} [Errno {exc.errno}]; {fix}")
    err.errno, err.strerror, err.filename = exc.errno, exc.strerror, str(path)
    return err


@contextlib.contextmanager
def writing(path: str | os.PathLike):
    """Turn an ``OSError`` raised while writing ``path`` into a :class:`WriteError`."""
    try:
        yield
    except WriteError:
        raise
    except OSError as exc:
        raise write_error(exc.filename or path, exc) from exc


def _tmp_path(path: Path) -> Path:
    """``.<name>.<pid>.<n>.part`` beside ``path``; when that name would pass NAME_MAX (the
    final name fits, the temporary one must too), a digest of the name stands for it."""
    tail = f".{os.getpid()}.{next(_COUNTER)}.part"
    name = f".{path.name}{tail}"
    if len(os.fsencode(name)) > NAME_MAX:
        name = "." + hashlib.sha256(os.fsencode(path.name)).hexdigest()[:32] + tail
    return path.parent / name


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    tmp = _tmp_path(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    try:
        try:
            fd = os.open(tmp, flags, 0o666)  # name unique to this process and call; umask applies
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, flags, 0o666)
    except OSError as exc:
        raise write_error(path, exc) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise write_error(path, exc) from exc
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def atomic_copy(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    with open(src, "rb") as fh:   # a read error stays an OSError naming src
        return atomic_write_bytes(dst, fh.read())


# YAML 1.2 core-schema scalars (what load_yaml resolves; PyYAML's safe_load is YAML 1.1, which
# read 010 as 8, 0x10 as 16, 1:30 as 90, yes/on as true and 1e-1 as a string).  Integers are
# decimal without a leading zero (010: 8 in YAML 1.1, 10 in 1.2, so it stays text and a
# number field refuses it); 0o/0x stay text too (no params value is written in octal/hex).
YAML_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)")
YAML_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+\.[0-9]*)([eE][-+]?[0-9]+)?"
                        r"|[-+]?[0-9]+[eE][-+]?[0-9]+")
YAML_SPECIAL = re.compile(r"[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)")
YAML_BOOL = {"true": True, "True": True, "TRUE": True,
             "false": False, "False": False, "FALSE": False}
YAML_NULL = re.compile(r"~|null|Null|NULL|")


def yaml_number(text: str) -> int | float | None:
    """``text`` as YAML 1.2 reads a number (``10``, ``1e-1``, ``.5``, ``.inf``), else None."""
    if YAML_INT.fullmatch(text):
        return int(text)
    if YAML_FLOAT.fullmatch(text):
        return float(text)
    if YAML_SPECIAL.fullmatch(text):
        return float(text.replace(".", "").lower())
    return None


@functools.lru_cache(maxsize=None)
def _yaml12():
    """(Loader, Dumper): the loader resolves only YAML 1.2 core scalars and refuses aliases;
    the dumper quotes every string that either YAML 1.1 or this loader reads as no string."""
    import yaml

    class Loader(yaml.SafeLoader):
        yaml_implicit_resolvers: dict = {}

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                raise yaml.composer.ComposerError(None, None, "params take no YAML alias "
                                                  "(*name): write the value out",
                                                  self.peek_event().start_mark)
            return super().compose_node(parent, index)

    class Dumper(yaml.SafeDumper):
        pass
    pattern = {"int": YAML_INT.pattern, "float": f"{YAML_FLOAT.pattern}|{YAML_SPECIAL.pattern}",
               "bool": "|".join(YAML_BOOL), "null": YAML_NULL.pattern}
    for tag, first in (("null", "~nN"), ("bool", "tTfF"), ("int", "-+0123456789"),
                       ("float", "-+0123456789.")):
        regexp = re.compile(f"(?:{pattern[tag]})$")
        for cls in (Loader, Dumper):
            cls.add_implicit_resolver(f"tag:yaml.org,2002:{tag}", regexp,
                                      list(first) + ([""] if tag == "null" else []))

    def strict(tag, read):
        def construct(loader, node):
            text = loader.construct_scalar(node)
            value = read(text)
            if value is None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"{text!r} is no YAML 1.2 {tag} (1.2 core schema: decimal "
                    f"integers, 1.5 / 1e-1 / .inf floats, true/false)", node.start_mark)
            return value
        Loader.add_constructor(f"tag:yaml.org,2002:{tag}", construct)
    strict("int", lambda t: int(t) if YAML_INT.fullmatch(t) else None)
    strict("float", yaml_number)
    strict("bool", YAML_BOOL.get)
    return Loader, Dumper


def load_yaml(text: str) -> Any:
    """YAML as data, safe tags only, read as YAML 1.2's core schema (:data:`YAML_INT`,
    :data:`YAML_FLOAT`, true/false, null; anything else is a string) and refusing aliases:
    ``*name`` can make a few lines of outside input stand for gigabytes (the "billion
    laughs"); raises ``yaml.YAMLError``."""
    import yaml
    return yaml.load(text, Loader=_yaml12()[0])


def dump_yaml(data: Any) -> str:
    """``yaml.safe_dump`` (keys in order) whose strings read back as strings with
    :func:`load_yaml` and with ``yaml.safe_load`` (``'1e3'``, ``'yes'`` quoted)."""
    import yaml
    return yaml.dump(data, Dumper=_yaml12()[1], sort_keys=False)


def read_json(path: str | os.PathLike, max_bytes: int | None = None) -> Any:
    """JSON from ``path``; with ``max_bytes``, a file larger than that is refused (a
    :class:`DataError` naming it) before a byte is read."""
    with open(path, encoding="utf-8") as fh:
        if max_bytes is not None:
            size = os.fstat(fh.fileno()).st_size
            if size > max_bytes:
                from zoorepro.errors import DataError
                raise DataError(f"{path}: {size:,} bytes, more than such a file ever holds "
                                f"({max_bytes:,}); the run folder is damaged: make a new run, "
                                f"or move this folder out of the output root")
        return json.load(fh)


def links_outside(root: str | os.PathLike, paths) -> list[str]:
    """``name -> target`` of each of ``paths`` that is (or lies under) a symlink resolving
    outside ``root``."""
    real_root = Path(os.path.realpath(root))
    reals = [(Path(p), Path(os.path.realpath(p))) for p in paths]
    return [f"{p.name} -> {r}" for p, r in reals if not r.is_relative_to(real_root)]


def project_root() -> Path:
    """The folder holding ``lib/zoorepro`` (the repository when installed editable)."""
    return Path(__file__).resolve().parents[2]
