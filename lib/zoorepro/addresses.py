"""The one check of a Dask scheduler address (the ``scheduler`` param and ``zoorepro matrix
--scheduler``): its syntax as ``distributed`` reads it, whether anything answers there, and
whether what answers is a Dask scheduler (Dask's handshake and an ``identity`` request), in
seconds, before a folder is made or work starts.  Dask is an optional extra, imported inside
:func:`check_scheduler`; without it only the TCP connect is checked."""
from __future__ import annotations

import asyncio
import re
import socket
import threading

from zoorepro.errors import ConfigError

# distributed's comm backends (distributed.comm.registry); a bare HOST:PORT is tcp
SCHEMES = ("tcp", "tls", "ucx", "ws", "wss", "inproc")
REACH_TIMEOUT_S = 3.0       # a scheduler that listens answers a TCP connect at once
HANDSHAKE_TIMEOUT_S = 5.0   # ... and Dask's handshake and an identity request in milliseconds
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
    """A :class:`ConfigError` unless ``address`` is empty, or well formed with a Dask scheduler
    there: something accepts a TCP connection within ``timeout`` seconds and, where Dask is
    installed, answers Dask's handshake and ``identity`` as a scheduler within
    :data:`HANDSHAKE_TIMEOUT_S` (``inproc``: not checked; ``ucx``: the TCP connect only)."""
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
    if scheme != "ucx":
        _check_identity(address, what, port)


def _check_identity(address: str, what: str, port: int) -> None:
    """Dask's handshake and ``{"op": "identity"}`` at ``address``, bounded in time, in a thread
    of its own (its own event loop: a Jupyter kernel's may be running here)."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        return                          # Dask is an optional extra: the TCP connect was all
    found: dict = {}

    def ask() -> None:
        try:
            found["reply"] = asyncio.run(asyncio.wait_for(_identity(address),
                                                          HANDSHAKE_TIMEOUT_S))
        except BaseException as exc:    # noqa: BLE001 - reported below, never raised there
            found["error"] = exc
    thread = threading.Thread(target=ask, name="zoorepro-scheduler-check", daemon=True)
    thread.start()
    thread.join(HANDSHAKE_TIMEOUT_S + 2)
    reply = found.get("reply")
    kind = reply.get("type") if isinstance(reply, dict) else None
    if kind == "Scheduler":
        return
    if kind:
        raise ConfigError(f"{what} {address}: that is a Dask {kind}, not the scheduler; give "
                          f"the scheduler's address (the 'Scheduler at' line 'dask scheduler' "
                          f"prints)")
    exc = found.get("error")
    cause = (f"no Dask handshake within {HANDSHAKE_TIMEOUT_S:g} s" if exc is None
             or isinstance(exc, (TimeoutError, asyncio.TimeoutError))
             else f"{type(exc).__name__}: {str(exc)[:200]}")
    raise ConfigError(f"{what} {address}: answers, but is no Dask scheduler ({cause}); is "
                      f"another program on port {port}? Give the address 'dask scheduler' "
                      f"prints, or leave it empty for a LocalCluster here")


async def _identity(address: str):
    """The reply of the server at ``address`` to ``identity`` (its ``type``: Scheduler)."""
    from distributed.comm import connect
    from distributed.security import Security
    args = Security().get_connection_args("client")
    comm = await connect(address, timeout=HANDSHAKE_TIMEOUT_S, **args)
    try:
        await comm.write({"op": "identity", "reply": True})
        return await comm.read()
    finally:
        comm.abort()
