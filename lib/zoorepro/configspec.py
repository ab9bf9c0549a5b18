"""The params, each key declared once: :class:`Params` gives its type and default and, in the
field's metadata, its :class:`Spec` (what it means, bounds, choices, whether it is a path).
Everything else about the keys is derived from there (:data:`HELP`, :data:`MAXIMA`,
:data:`PATH_KEYS`, ...), and :func:`coerce` is the one reading of raw values (a params file,
``-p``/``--grid``, a notebook's parameters) as their fields' types.  A value of the wrong type
is a problem line, never the default.  :mod:`zoorepro.config` builds the config from here."""
from __future__ import annotations

import dataclasses
import os
import re
import shlex
from dataclasses import dataclass, fields
from typing import Any, Callable, Mapping

import yaml
from zoorepro import recipebook
from zoorepro.backends import registry
from zoorepro.files import load_yaml, yaml_number
from zoorepro.outputs import FORMATS


@dataclass(frozen=True)
class Spec:
    """What a key means and the rules its field's type does not say."""

    help: str                    # for the notebooks' parameters cells (papermill --help-notebook)
    minimum: int | float | None = None   # numbers: both bounds (a list's: of each entry)
    maximum: int | float | None = None
    choices: tuple[str, ...] | Callable[[], tuple[str, ...]] = ()   # a callable: read each time
    said: str = ""               # how a refusal names the choices; '': "a, b or c"
    upper: bool = False          # choices matched and kept upper-case ('txt' is TXT)
    path: bool = False           # a filesystem path, made absolute on load
    must_exist: bool = False     # a path that must exist when the run starts
    empty: bool = False          # '' is a value its help documents; other keys refuse ''
    items: type | None = None    # int: a list's entries are read as whole numbers
    words: bool = False          # a string given for the list is split as shell words
    names: Callable[[], tuple[str, ...]] | None = None   # path=True: these stay as names

    def allowed(self) -> tuple[str, ...]:
        return self.choices() if callable(self.choices) else self.choices


def spec(default: Any, help: str, **rules: Any) -> Any:
    """A :class:`Params` field: its default and its :class:`Spec`."""
    return dataclasses.field(default=default, metadata={"spec": Spec(help, **rules)})


@dataclass(frozen=True)
class Params:
    """Every key of a params file.  Field order is the notebooks' ``parameters`` signature."""

    name: str = spec("demo", "run name: the run folder is <output_root>/<name>-<time>")
    recipe: str = spec(recipebook.DEFAULT, "a shipped recipe (zoorepro recipes) or the folder "
                                           "of your own recipe", path=True,
                       names=recipebook.names)
    data_dir: str = spec("demo/imagenet-sample-100/images", "folder of the validation JPEGs",
                         path=True, must_exist=True)
    label_file: str = spec("demo/imagenet-sample-100/val_label.txt",
                           "val_label.txt: '<file> <0-based class>' per line",
                           path=True, must_exist=True)
    weights: str = spec("", "the model's state_dict (.pth); '': the recipe's default weights",
                        path=True, must_exist=True, empty=True)
    aipp_config: str = spec("", "AIPP config (normalisation, crop: baked into the model); '': "
                                "the recipe's", path=True, must_exist=True, empty=True)
    # a batch past 4096 cannot fit in memory (5 MiB an image); the recipe sweeps 1..64
    batch_sizes: tuple = spec((1, 4, 8, 16, 32, 64), "throughput sweep batch sizes",
                              minimum=1, maximum=4096, items=int)
    accuracy_batch_size: int = spec(0, "batch size of the accuracy run; 0: the recipe's",
                                    minimum=0, maximum=4096)
    backends: tuple = spec(("onnxruntime", "torch"),
                           "onnxruntime, torch, ais_bench; the first is the headline",
                           choices=registry.names)   # the built-in ones and any registered since
    device: str = spec("auto", "auto | cpu | cuda", choices=("auto", "cpu", "cuda"))
    # '' is what the recipe reproduces: fp32 on the portable path, ATC's own default (fp16)
    precision: str = spec("", "'' (each backend's recipe precision: fp32 here, the ATC model's "
                              "on the NPU) | fp32 | fp16 | int8; a backend that cannot is not "
                              "run and says why", choices=("",) + registry.PRECISIONS,
                          said="'' (the recipe's), " + ", ".join(registry.PRECISIONS[:-1])
                               + " or " + registry.PRECISIONS[-1], empty=True)
    timing: str = spec("device", "device: compute only (ais_bench's definition) | call: around "
                                 "each call", choices=("device", "call"),
                       said="device (compute only, as ais_bench) or call (around each "
                            "synchronous call)")
    outfmt: str = spec("TXT", "ais_bench output format: TXT | NPY | BIN", choices=FORMATS,
                       said="one of " + ", ".join(FORMATS), upper=True)
    opset: int = spec(0, "ONNX opset of the export; 0: the recipe's", minimum=0, maximum=30)
    # the recipe's --loop is 50
    bench_iterations: int = spec(10, "timed iterations per batch size, at least",
                                 minimum=1, maximum=1_000_000)
    bench_min_seconds: float = spec(0.2, "timed seconds per batch size, at least",
                                    minimum=0, maximum=3600.0)
    warmup: int = spec(1, "untimed calls before timing", minimum=0, maximum=10_000)
    threads: int = spec(0, "inference threads in all; 0: physical cores", minimum=0, maximum=4096)
    # CPU ONNX Runtime's auto: one stream per core
    infer_streams: int = spec(0, "concurrent inference streams; 0: auto", minimum=0, maximum=1024)
    workers: int = spec(0, "preprocessing and output-reading processes; 0: all cores",
                        minimum=0, maximum=1024)
    max_images: int = spec(0, "use the first N images; 0: all", minimum=0, maximum=100_000_000)
    output_root: str = spec("reports", "where run folders go", path=True)
    bin_dir: str = spec("", "reuse .bin files from this folder; '': <run>/bin",
                        path=True, empty=True)
    run_dir: str = spec("", "the run folder: '' new (or the latest unfinished one), or an "
                            "unfinished run", path=True, empty=True)
    onnx_model: str = spec("", "a ready ONNX instead of exporting the weights",
                           path=True, empty=True)
    soc_version: str = spec("", "Ascend chip for ATC, e.g. Ascend310P3; '': from npu-smi",
                            empty=True)
    device_id: int = spec(0, "NPU device id for ais_bench", minimum=0, maximum=255)
    atc_extra_args: tuple = spec((), "extra ATC options", words=True)
    ladder: bool = spec(True, "measure where accuracy goes: the precision ladder (framework "
                              "fp32, recipe fp32, fp16 AIPP output, fp16 network, int8) on the "
                              "run's images after scoring")
    ladder_batch_size: int = spec(8, "batch size of the ladder's inference and its throughput "
                                     "column", minimum=1, maximum=4096)
    calibration_images: int = spec(32, "images the int8 model is calibrated on (at most the "
                                       "set's)", minimum=1, maximum=100_000)
    calibration_dir: str = spec("", "folder of JPEGs to calibrate int8 on; '': the run's own "
                                    "images (the report says they are also scored)",
                                path=True, must_exist=True, empty=True)
    # points either side of the recipe's top-1/top-5 (58.x/80.x): past a few points the
    # verdict "reproduced" stops meaning anything (the recipe's two chips differ by <0.1)
    reference_tolerance_pct: float = spec(
        1.0, "points (0 to 5) within which the recipe's accuracy counts as reproduced",
        minimum=0, maximum=5.0)
    allow_label_mismatch: bool = spec(
        False, "evaluate only images that have labels instead of stopping")
    shards: int = spec(1, "split preprocessing and the accuracy run into N Dask tasks; 1: no "
                          "Dask", minimum=1, maximum=65536)
    scheduler: str = spec("", "Dask scheduler address for shards (tcp://HOST:8786); '': a "
                              "LocalCluster here", empty=True)


# ------------------------------------------------------------------ derived from Params
SPECS: dict[str, Spec] = {f.name: f.metadata["spec"] for f in fields(Params)}
FIELD_NAMES = tuple(SPECS)
DEFAULTS = {f.name: f.default for f in fields(Params)}
HELP = {k: s.help for k, s in SPECS.items()}
PATH_KEYS = tuple(k for k, s in SPECS.items() if s.path)
REQUIRED_EXISTING = tuple(k for k, s in SPECS.items() if s.must_exist)  # when the run starts
EMPTY_MEANS = tuple(k for k, s in SPECS.items() if s.empty)
VALID_KEYS = "valid keys: " + ", ".join(FIELD_NAMES)
LIST_MAX = 64                 # entries of a list key
FILE_MAX = 1 << 20            # bytes of a params file
# Upper bounds (a value past these never finishes or cannot fit in memory); list; file bytes
MAXIMA = {**{k: s.maximum for k, s in SPECS.items() if s.maximum is not None},
          "list": LIST_MAX, "file": FILE_MAX}

LEADING_ZERO = re.compile(r"[-+]?0[0-9]+")     # 010: 8 in YAML 1.1, 10 in YAML 1.2
WHOLE_MAX = 10 ** 18       # past this a float's "whole value" is no count anyone meant


def show(value) -> str:
    text = repr(value)   # a value in a message, bounded (a params file is at most 1 MiB)
    return text if len(text) <= 80 else text[:76] + " ..."


def number(key: str, value: Any, integer: bool, problems: list):
    """``value`` as an int (``integer``) or a float, the one place a number is read: numbers
    as they are and numeric text as YAML 1.2 reads it (``1e-1``, ``.5``); an integer field
    takes every spelling of a whole number (``2``, ``2.0``, ``2e0``) and refuses ``2.5``.
    Anything else is None and one line in ``problems``."""
    want = "an integer" if integer else "a number"
    got = value
    if isinstance(value, str):
        text = value.strip()
        if LEADING_ZERO.fullmatch(text):
            problems.append(f"{key}: {show(value)} has a leading zero (YAML 1.1 read it as "
                            f"octal, YAML 1.2 as decimal); write it without the zero, e.g. "
                            f"{int(text)}")
            return None
        value = yaml_number(text)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        problems.append(f"{key}: expected {want}, got {show(got)} ({type(got).__name__})")
        return None
    if not integer:
        return float("inf") if abs(value) > 1e300 else float(value)   # NaN stays NaN
    if isinstance(value, int):
        return value
    if value.is_integer() and abs(value) < WHOLE_MAX:
        return int(value)
    problems.append(f"{key}: " + (f"{show(got)} is far too large" if value.is_integer() else
                                  f"expected {want}, got {show(got)} (not a whole number)"))
    return None


def unknown_key(key: Any, known=FIELD_NAMES) -> str:
    """``unknown key 'max_image' (did you mean 'max_images'?)``: one problem line."""
    import difflib
    close = difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.6)
    return f"unknown key {show(key)}" + (f" (did you mean {close[0]!r}?)" if close else "")


def coerce(raw: Mapping[str, Any], resolve: Callable[[str], str], problems: list,
           prefix: str = "") -> dict:
    """The keys of ``raw`` as their fields' types, relative paths made absolute by ``resolve``;
    every other key is a line in ``problems`` (``prefix`` in front, e.g. ``override: ``) and
    is left out, never replaced by its default.  Every route to a config comes through here."""
    out: dict = {}
    found = [unknown_key(k) for k in sorted((k for k in raw if k not in SPECS), key=str)]
    for key, value in raw.items():
        if key not in SPECS or _no_value(key, value, found):
            continue
        value = _one(key, value, found)
        if value is _BAD:
            continue
        out[key] = resolved(key, value, resolve)
    problems.extend(prefix + p for p in found)
    return out


def is_name(key: str, value: Any) -> bool:
    """Whether ``value`` of path key ``key`` is one of the names its Spec lists (a shipped
    recipe's name), which stays a name, never a path."""
    names = SPECS[key].names
    return names is not None and isinstance(value, str) and value in names()


def resolved(key: str, value: Any, resolve: Callable[[str], str]) -> Any:
    """``value`` of ``key`` with a relative path made absolute by ``resolve`` -- the one place
    a path key is resolved; other keys, absolute paths, '' and names stay as they are."""
    if (not SPECS[key].path or not isinstance(value, str) or not value
            or os.path.isabs(value) or is_name(key, value)):
        return value
    return resolve(value)


_BAD = object()


def _no_value(key: str, value: Any, problems: list) -> bool:
    """A null or blank value given for ``key`` is a problem line, never its default ('' where
    the key's :class:`Spec` says ``empty`` is a value)."""
    if isinstance(value, str) and value == "" and SPECS[key].empty:
        return False
    default = DEFAULTS[key]
    shown = show(list(default) if isinstance(default, tuple) else default)
    if value is None:
        what = "no value given"
    elif isinstance(value, str) and not value.strip():
        what = "an empty value" + (f" ({show(value)})" if value else "")
    else:
        return False
    problems.append(f"{key}: {what}; give a value, or leave the key out for the default {shown}")
    return True


def _one(key: str, value: Any, problems: list) -> Any:
    default, rule = DEFAULTS[key], SPECS[key]
    if isinstance(default, tuple):
        return _list(key, value, rule, problems)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            problems.append(f"{key}: expected true or false, got {show(value)}")
            return _BAD
        return value
    if isinstance(default, (int, float)):
        value = number(key, value, not isinstance(default, float), problems)
        return _BAD if value is None else value
    if not isinstance(value, (str, os.PathLike)):
        problems.append(f"{key}: expected a string, got {show(value)} ({type(value).__name__})")
        return _BAD
    value = os.fspath(value)
    if "\0" in value or len(value) > 4096:
        problems.append(f"{key}: {show(value)}: a NUL character or over 4096 characters")
        return _BAD
    return value


def _list(key: str, value: Any, rule: Spec, problems: list) -> Any:
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:           # papermill -p KEY "[1, 8]" passes a string; no aliases: no bombs
            value = load_yaml(value[:10_000])
        except (yaml.YAMLError, RecursionError):
            problems.append(f"{key}: {value[:80]!r} is not a YAML list such as [1, 8]")
            return _BAD
    elif rule.words and isinstance(value, str):
        # "--precision_mode=allow_fp32_to_fp16 --x=1"; quotes are refused later anyway
        value = [value] if re.search(r"[\"'\\]", value) else shlex.split(value)
    elif isinstance(value, (str, int)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)) or len(value) > LIST_MAX:
        problems.append(f"{key}: expected a list (at most {LIST_MAX} entries), got {show(value)}")
        return _BAD
    if rule.items is int:     # whole numbers as ints; anything else is judged later
        read = [number(key, v, True, []) if isinstance(v, (str, float)) else v for v in value]
        value = [v if r is None else r for v, r in zip(value, read)]
    return tuple(value)


def check_rules(values: dict, problems: list) -> None:
    """The bounds and choices the keys' :class:`Spec` declare, on typed ``values`` (every key);
    a choice matched upper-case is kept upper-case in ``values``."""
    for key, rule in SPECS.items():
        x = values[key]
        lo, top = rule.minimum, rule.maximum
        if lo is not None and top is not None and isinstance(x, (int, float)):
            if not lo <= x <= top:
                problems.append(f"{key}: must be " + (
                    f">= {lo}" if x < lo else f"<= {top:,}" if x > top
                    else f"from {lo} to {top:,}") + f", got {show(x)}")  # the last: NaN
        if rule.choices and isinstance(x, str):
            allowed = rule.allowed()
            if (x.upper() if rule.upper else x) in allowed:
                values[key] = x.upper() if rule.upper else x
            else:
                problems.append(f"{key}: must be {rule.said or _either(allowed)}, got {show(x)}")


def _either(names) -> str:
    """``auto, cpu or cuda``."""
    return " or ".join(filter(None, (", ".join(names[:-1]), names[-1])))
