"""What a record value may be, declared once per field, and the one check that applies it.

A record's dataclass field declares its rule with a field maker (``pct()``, ``count()``,
``rate()``, ...: the rule is kept in the field's metadata) and its type with its annotation
(``int | None``); relations between fields (top-k never falling as k grows, hits never above
the images) are declared per class in ``RELATIONS``.  :func:`check` applies all of them, on
read (:func:`build`, from JSON) and on write (``Run.write``): the first value that breaks one
is a :class:`RecordError` naming the file, the key and the value.

Also here: the base class :class:`Record`, the schema versions a record may carry
(:func:`check_version`) and the largest record file that is read at all
(:data:`RECORD_MAX_BYTES`).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from zoorepro.errors import RecordError

SCHEMA_VERSION = 1
SUPPORTED_VERSIONS = (0, 1)     # 0: written before schema_version existed (no key)
RECORD_MAX_BYTES = 64 * 2**20   # no record comes near (50,000 images: ~3 MiB)
COUNT_MAX = 10**9               # images, hits, batch sizes, threads, iterations
BYTES_MAX = 2**53
# Throughputs (img/s), times (ms, s), memory (GiB), load averages: no real figure comes near
# 1e9.  The fastest accelerators run SqueezeNet at ~1e5..1e6 img/s, so 1e9 img/s is 1000x
# beyond anything measured; 1e9 ms is 11.6 days for one batch, 1e9 s 31 years.  A figure
# above it is a damaged record or a clock read in the wrong unit, never a result to rank
# (a throughput of 1e300 was shown as the best run's 300-digit img/s).
RATE_MAX = 1e9
REQUIRED = dataclasses.MISSING  # the default of a field that has none

READ_FIX = ("the run folder is damaged or was edited by hand: rerun that stage in a new run "
            "(leave run_dir empty), or move the folder out of the output root")
WRITE_FIX = "nothing was written; this is a bug in what produced the value: please report it"


@dataclass(frozen=True)
class Rule:
    what: str                         # "a percentage in 0..100"
    ok: Callable[[Any], bool]         # called with a number (ints and floats)


PCT = Rule("a percentage in 0..100", lambda v: 0 <= v <= 100)
FRACTION = Rule("a fraction in 0..1", lambda v: 0 <= v <= 1)
COUNT = Rule(f"a count in 0..{COUNT_MAX:,}", lambda v: 0 <= v <= COUNT_MAX)
POSITIVE = Rule(f"a count in 1..{COUNT_MAX:,}", lambda v: 1 <= v <= COUNT_MAX)
NBYTES = Rule(f"a byte count in 0..{BYTES_MAX:,}", lambda v: 0 <= v <= BYTES_MAX)
RATE = Rule(f"a finite number in 0..{RATE_MAX:,.0f}",
            lambda v: math.isfinite(v) and 0 <= v <= RATE_MAX)
NONNEG = Rule("a finite number >= 0", lambda v: math.isfinite(v) and v >= 0)
OFFSET = Rule("a label offset, 0 or 1", lambda v: v in (0, 1))
OPSET = Rule("an ONNX opset in 1..100", lambda v: 1 <= v <= 100)
RULE = "zoorepro.rule"


def ruled(rule: Rule, default=None, **kw):
    """A dataclass field whose value (when not None) must pass ``rule``."""
    return field(default=default, metadata={RULE: rule}, **kw)


def pct(default=None):
    return ruled(PCT, default)


def count(default=None):
    return ruled(COUNT, default)


def positive(default=None):
    return ruled(POSITIVE, default)


def rate(default=None):
    """Throughputs, times, memory, load: finite, never negative, at most :data:`RATE_MAX`."""
    return ruled(RATE, default)


def nonneg(default=None):
    """A measured difference with no natural bound (a logit difference): finite, >= 0."""
    return ruled(NONNEG, default)


def nbytes(default=None):
    return ruled(NBYTES, default)


# ------------------------------------------------------------ relations between fields
def non_decreasing(*names: str):
    """``names`` (top1..top5) never fall from one to the next (None ones are skipped)."""
    def relation(obj):
        have = [(n, getattr(obj, n)) for n in names if getattr(obj, n) is not None]
        for (a, va), (b, vb) in zip(have, have[1:]):
            if vb < va:
                return b, vb, f"below {a} ({va!r}): top-k never falls as k grows"
        return None
    return relation


def at_most(limit: str, *names: str):
    """Each of ``names`` (hits) is at most ``limit`` (the images), when both are there."""
    def relation(obj):
        top = getattr(obj, limit)
        for n in names:
            v = getattr(obj, n)
            if top is not None and v is not None and v > top:
                return n, v, f"more than {limit} ({top!r})"
        return None
    return relation


# ------------------------------------------------------------ the check
_TYPES = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,),
          "list": (list,), "dict": (dict,), "None": (type(None),)}


def _allowed(annotation) -> tuple | None:
    """The types an annotation such as ``"int | None"`` allows; None: not checked here."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    out: tuple = ()
    for part in text.split("|"):
        types = _TYPES.get(part.strip())
        if types is None:
            return None
        out += types
    return out


def show(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:76] + " ..."


def _problem(f, value) -> str | None:
    allowed = _allowed(f.type)
    if allowed is not None:
        is_bool = isinstance(value, bool)
        if not isinstance(value, allowed) or (is_bool and bool not in allowed):
            names = " or ".join(t.__name__.replace("NoneType", "null") for t in allowed
                                if t is not int or float not in allowed)
            return f"is {type(value).__name__}, not {names}"
    if isinstance(value, float) and not math.isfinite(value):
        return "is not a finite number"
    rule = f.metadata.get(RULE)
    if rule is not None and value is not None and not rule.ok(value):
        return f"is not {rule.what}"
    return None


def check(obj, where: str, writing: bool = False) -> None:
    """Every field of the dataclass ``obj``: its type, its rule, its class's RELATIONS."""
    fix = WRITE_FIX if writing else READ_FIX
    verb = "cannot be written: " if writing else ""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        problem = _problem(f, value)
        if problem:
            raise RecordError(f"{where}: {verb}{f.name} = {show(value)} {problem}; {fix}")
    for relation in getattr(type(obj), "RELATIONS", ()):
        found = relation(obj)
        if found:
            key, value, problem = found
            raise RecordError(f"{where}: {verb}{key} = {show(value)} is {problem}; {fix}")


def check_version(obj: dict, where: str) -> int:
    """The record's ``schema_version`` (0 when absent), refused unless this zoorepro reads it."""
    version = obj.get("schema_version", 0)
    if isinstance(version, int) and not isinstance(version, bool) \
            and version in SUPPORTED_VERSIONS:
        return version
    supported = ", ".join(map(str, SUPPORTED_VERSIONS))
    if isinstance(version, int) and not isinstance(version, bool) \
            and version > SCHEMA_VERSION:
        why = "is newer than this zoorepro reads; update zoorepro"
    else:
        why = f"is not a schema version; {READ_FIX}"
    raise RecordError(f"{where}: schema_version {show(version)} found, supported: {supported} "
                      f"(0: no schema_version); it {why}")


def build(cls, obj, where: str, writing: bool = False):
    """An instance of the dataclass ``cls`` from JSON ``obj``: every key known, every
    required key there, every value checked (:func:`check`; ``writing``: before a write)."""
    if not isinstance(obj, dict):
        raise RecordError(f"{where}: expected a JSON object for {cls.__name__}, got "
                          f"{type(obj).__name__}; {READ_FIX}")
    obj = dict(obj)
    check_version(obj, where)
    obj.pop("schema_version", None)
    fields = dataclasses.fields(cls)
    names = {f.name for f in fields}
    unknown = sorted(set(obj) - names)
    if unknown:
        raise RecordError(f"{where}: unknown key(s) {', '.join(unknown)} for {cls.__name__} "
                          f"(known: {', '.join(sorted(names))})")
    missing = [f.name for f in fields if f.name not in obj and f.default is REQUIRED
               and f.default_factory is REQUIRED]
    if missing:
        raise RecordError(f"{where}: missing key(s) {', '.join(missing)} for {cls.__name__}")
    out = cls(**obj)
    check(out, where, writing)
    return out


class Record:
    """Base: ``NAME`` is the file's stem; ``to_json``/``from_json`` are the only converters,
    :meth:`check` the one check (run on read and by ``Run.write``)."""
    NAME: ClassVar[str] = ""
    OMIT_NONE: ClassVar[frozenset] = frozenset()   # fields left out of the JSON when None

    def to_json(self) -> Any:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if not (f.name in self.OMIT_NONE and getattr(self, f.name) is None)}
        return {**out, "schema_version": SCHEMA_VERSION}

    def data(self) -> Any:
        """The record as plain JSON data, without ``schema_version``."""
        return {k: v for k, v in self.to_json().items() if k != "schema_version"}

    def check(self, where: str = "", writing: bool = False) -> None:
        """Every value against its field's rule (RecordError naming ``where``, key, value)."""
        check(self, where or f"records/{self.NAME}.json", writing)

    @classmethod
    def from_json(cls, obj: Any, where: str = ""):
        return build(cls, obj, where or f"records/{cls.NAME}.json")
