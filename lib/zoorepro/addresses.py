"""The one check of a Dask scheduler address (the ``scheduler`` param and ``zoorepro matrix
--scheduler``): its syntax as ``distributed`` reads it, and whether anything answers there,
in seconds, before a folder is made or work starts.  Standard library only: Dask is an
optional extra."""
from __future__ import annotations

import re
import socket

from .errors import ConfigError

# distributed's comm backends (distributed.comm.registry); a bare HOST:PORT is tcp
SCHEMES = ("tcp", "tls", "ucx", "ws", "wss", "inproc")
REACH_TIMEOUT_S = 3.0       # a scheduler that listens answers a TCP connect at once
EXAMPLE = "tcp://10.0.0.5:8786"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = re.compile(rf"{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\]")
_INPROC = re.compile(r"[\w.:-]+/\d+/\d+")           # inproc://HOST/PID/N, one process only


def parse(address: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of a host-and-port address, ``(inproc, rest, 0)``, or None
    when Dask could not read it."""
    if not isinstance(address, str):
        return None
    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest = "tcp", address
    if scheme not in SCHEMES:
        return None
    if scheme == "inproc":
        return (scheme, rest, 0) if _INPROC.fullmatch(rest) else None
    host, colon, port = rest.rpartition(":")
    if not colon or not _HOST.fullmatch(host) or not re.fullmatch(r"\d{1,5}", port):
        return None
    if not 1 <= int(port) <= 65535:
        return None
    return scheme, host.strip("[]"), int(port)


def scheduler_problem(address: object, what: str = "scheduler") -> str | None:
    """None for an empty or well-formed address, else one line for a problem list."""
    if address == "":
        return None
    if parse(address) is None:   # type: ignore[arg-type]
        shown = repr(address) if len(repr(address)) <= 80 else repr(address)[:76] + " ..."
        return (f"{what}: {shown} is not a Dask scheduler address: give "
                f"[{'|'.join(SCHEMES[:5])}://]HOST:PORT (port 1-65535), such as {EXAMPLE}; "
                f"leave it empty for a LocalCluster here")
    return None


def check_scheduler(address: str, what: str = "scheduler",
                    timeout: float = REACH_TIMEOUT_S) -> None:
    """A :class:`ConfigError` unless ``address`` is empty or well formed and something accepts
    a connection there within ``timeout`` seconds (``inproc``: not checked)."""
    problem = scheduler_problem(address, what)
    if problem:
        raise ConfigError(problem)
    if not address:
        return
    scheme, host, port = parse(address)  # type: ignore[misc]
    if scheme == "inproc":
        return
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        cause = "no such host" if isinstance(exc, socket.gaierror) else (
            f"no answer within {timeout:g} s" if isinstance(exc, TimeoutError)
            else exc.strerror or type(exc).__name__)
        raise ConfigError(
            f"{what} {address}: nothing answers there ({cause}); start a scheduler with "
            f"'dask scheduler --port {port}' and workers with 'dask worker {address}', "
            f"or leave it empty for a LocalCluster here") from None
