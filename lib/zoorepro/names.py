"""The one validator for names that become folder names (run names, ingest ``--name``, matrix
grid-point names).  A name is ASCII letters, digits and ``. _ + -``, starts with a letter or a
digit, is at most :data:`MAX_LEN` characters and is not ``.``/``..``-like, so it is safe in a
path, a URL, a shell word and a terminal line without quoting tricks."""
from __future__ import annotations

import re

from zoorepro.errors import ConfigError

MAX_LEN = 100          # a run folder is <name>-<YYYYmmdd-HHMMSS>[-k]: well under 255 bytes
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
RULE = (f"1-{MAX_LEN} characters of A-Z a-z 0-9 . _ + -, starting with a letter or a digit "
        f"(it names a folder)")


def name_problem(name: object, what: str = "name") -> str | None:
    """None when ``name`` is a valid folder name, else one line saying why (for a problem list)."""
    if not isinstance(name, str):
        return f"{what}: expected a string, got {type(name).__name__}; {RULE}"
    shown = repr(name) if len(name) <= 60 else repr(name[:57]) + "..."
    if not name:
        return f"{what}: empty; {RULE}"
    if len(name) > MAX_LEN:
        return f"{what}: {len(name)} characters, at most {MAX_LEN} allowed ({shown})"
    if not NAME_RE.fullmatch(name):
        return f"{what}: {shown} is not a safe name; {RULE}"
    return None


def check_name(name: object, what: str = "name") -> str:
    """``name`` itself when valid; else a :class:`ConfigError` naming the problem."""
    problem = name_problem(name, what)
    if problem:
        raise ConfigError(problem)
    return name  # type: ignore[return-value]
