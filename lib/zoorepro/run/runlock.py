"""One process at a time works on a run folder: ``<run>/.lock``.

``zoorepro run`` (a new run, ``--resume``, ``-p run_dir``) and ``zoorepro render`` hold the
lock for the whole run.  The file names its holder (pid, host, start time, a token) and is
``flock``-ed while held, so the OS releases it when the holder dies: a lock left by a killed
process is stale and the next one takes it over, saying so.  The notebooks the holder executes
are its kernels, started with the lock's token in ``ZOOREPRO_RUN_LOCK``; :func:`check` lets
them in and refuses everyone else (a notebook opened alone, a second ``--resume``).

    with runlock.hold(run.root, say=print):
        ...
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import json
import os
import socket
import uuid
from pathlib import Path
from typing import Callable, Iterator

from zoorepro.errors import DataError

LOCK_NAME = ".lock"
TOKEN_ENV = "ZOOREPRO_RUN_LOCK"      # set in the environment of the holder's kernels
_HELD: dict[Path, "_Lock"] = {}      # this process's locks, by run folder


class _Lock:
    def __init__(self, root: Path, fd: int, info: dict):
        self.root, self.fd, self.info, self.depth = root, fd, info, 1

    @property
    def path(self) -> Path:
        return self.root / LOCK_NAME

    def release(self) -> None:
        try:
            if _same_file(self.fd, self.path):
                self.path.unlink()
        except OSError:
            pass
        os.close(self.fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        st, fst = os.stat(path), os.fstat(fd)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (fst.st_dev, fst.st_ino)


def _read(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = json.loads(os.read(fd, 65536).decode("utf-8") or "{}")
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write(fd: int, info: dict) -> None:
    os.lseek(fd, 0, os.SEEK_SET)
    os.ftruncate(fd, 0)
    os.write(fd, (json.dumps(info) + "\n").encode("utf-8"))


def _flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return False
        raise


def _holder_text(info: dict) -> str:
    return (f"process {info.get('pid', '?')} on {info.get('host', '?')} "
            f"(since {info.get('started', '?')}: {info.get('command', '?')})")


def _refusal(root: Path, info: dict) -> DataError:
    return DataError(
        f"{root}: this run is in use by {_holder_text(info)}; one process at a time works on "
        f"a run. Wait until it ends (then continue it with: zoorepro run --resume {root}), or "
        f"stop it, or leave run_dir empty for a new run. If that process is gone and the "
        f"folder is on another host's disk, remove {root / LOCK_NAME}")


def _create(path: Path, info: dict) -> int | None:
    """A new lock file, flocked before it appears under its name (a link of a private
    temporary file); None if one is there already."""
    tmp = path.with_name(f"{LOCK_NAME}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        _write(fd, info)
        try:
            os.link(tmp, path)
        except FileExistsError:
            os.close(fd)
            return None
        except OSError:         # no hard links here (some network or FUSE file systems)
            os.close(fd)
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                return None
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _write(fd, info)
        return fd
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(fd)
        raise
    finally:
        tmp.unlink(missing_ok=True)


def acquire(root: str | os.PathLike, command: str = "zoorepro",
            say: Callable[[str], None] = lambda msg: None) -> _Lock:
    """Lock ``root`` for this process or raise a ``DataError`` naming the holder."""
    root = Path(root).resolve()
    if root in _HELD:
        _HELD[root].depth += 1
        return _HELD[root]
    path = root / LOCK_NAME
    info = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
            "started": _dt.datetime.now().isoformat(timespec="seconds"),
            "token": uuid.uuid4().hex}
    for _ in range(20):
        try:
            fd = _create(path, info)
        except OSError as exc:
            raise DataError(f"{path}: cannot create the run's lock file ({exc.strerror or exc});"
                            f" the run folder must be writable") from None
        if fd is None:                     # a lock file is there: held, or left by the dead
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:
                continue                   # released meanwhile: try again
            if not _flock(fd):
                holder = _read(fd)
                os.close(fd)
                raise _refusal(root, holder)
            if not _same_file(fd, path):   # released and removed while we opened it
                os.close(fd)
                continue
            old = _read(fd)
            say(f"{root}: taking over the lock left by {_holder_text(old)}, which has ended")
            _write(fd, info)
        lock = _HELD[root] = _Lock(root, fd, info)
        return lock
    raise DataError(f"{path}: the lock file keeps changing (another process is taking and "
                    f"releasing it); try again")


def release(lock: _Lock) -> None:
    lock.depth -= 1
    if lock.depth == 0:
        _HELD.pop(lock.root, None)
        lock.release()


@contextlib.contextmanager
def hold(root: str | os.PathLike, command: str = "zoorepro",
         say: Callable[[str], None] = lambda msg: None) -> Iterator[_Lock]:
    """The lock on ``root`` for the ``with`` block (again in the same process: nested)."""
    lock = acquire(root, command, say)
    try:
        yield lock
    finally:
        release(lock)


def kernel_env(root: str | os.PathLike) -> dict:
    """The environment entries a kernel executing a notebook on ``root`` for its holder
    needs ({} when this process does not hold its lock)."""
    lock = _HELD.get(Path(root).resolve())
    return {TOKEN_ENV: lock.info["token"]} if lock else {}


def holder(root: str | os.PathLike) -> dict | None:
    """Who holds the lock on ``root`` (its lock file's facts), or None if nobody does."""
    path = Path(root) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        if _flock(fd):              # nobody holds it (a stale file)
            return None
        return _read(fd)
    finally:
        os.close(fd)


def check(root: str | os.PathLike) -> None:
    """Refuse to work on ``root`` while another process holds its lock; this process's own
    lock, or the token its holder gave this kernel, lets it in."""
    root = Path(root).resolve()
    if root in _HELD:
        return
    info = holder(root)
    if info is None:
        return
    if info.get("token") and os.environ.get(TOKEN_ENV) == info.get("token"):
        return
    raise _refusal(root, info)
