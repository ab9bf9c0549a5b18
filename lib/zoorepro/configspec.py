"""The params' field rules beside :mod:`zoorepro.config`: bounds, what each key means, and the
one coercion of a raw value (a params file, ``-p``/``--grid``, a notebook's parameters) to a
field's type.  A value of the wrong type is a problem line, never the default."""
from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any, Mapping

from zoorepro.files import yaml_number

# Upper bounds (a value past these never finishes or cannot fit in memory); list lengths; bytes
MAXIMA = {"batch_sizes": 4096, "accuracy_batch_size": 4096, "bench_iterations": 1_000_000,
          "warmup": 10_000, "threads": 4096, "infer_streams": 1024, "workers": 1024,
          "max_images": 100_000_000, "opset": 30, "bench_min_seconds": 3600.0,
          # points either side of the recipe's top-1/top-5 (58.x/80.x): past a few points the
          # verdict "reproduced" stops meaning anything (the recipe's two chips differ by <0.1)
          "reference_tolerance_pct": 5.0,
          "list": 64, "file": 1 << 20, "shards": 65536}
INT_LISTS = ("batch_sizes",)      # list fields whose entries are integers
# string keys whose '' is a documented meaning (HELP): every other key refuses an empty value
EMPTY_MEANS = ("bin_dir", "run_dir", "onnx_model", "soc_version", "scheduler")
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


def unknown_key(key: Any, known) -> str:
    """``unknown key 'max_image' (did you mean 'max_images'?)``: one problem line."""
    import difflib
    close = difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.6)
    return f"unknown key {show(key)}" + (f" (did you mean {close[0]!r}?)" if close else "")


def coerce(raw: Mapping[str, Any], defaults: Mapping[str, Any], path_keys, base_dir: Path,
           problems: list, prefix: str = "") -> dict:
    """The keys of ``raw`` that have the type of their default, as that type (relative paths
    resolved against ``base_dir``); every other key is a line in ``problems`` (``prefix`` in
    front, e.g. ``override: ``) and is left out."""
    out: dict = {}
    found: list[str] = []
    for k in sorted((k for k in raw if k not in defaults), key=str):
        found.append(unknown_key(k, defaults))
    for key, value in raw.items():
        if key not in defaults:
            continue
        if _no_value(key, value, defaults[key], found):
            continue
        value = _one(key, value, defaults[key], found)
        if value is not _BAD:
            out[key] = value
    for key in path_keys:
        v = out.get(key)
        if isinstance(v, str) and v and not os.path.isabs(v):
            out[key] = str((base_dir / v).resolve())
    problems.extend(prefix + p for p in found)
    return out


_BAD = object()


def _no_value(key: str, value: Any, default: Any, problems: list) -> bool:
    """A null or blank value given for ``key`` is a problem line, never its default ('' where
    :data:`EMPTY_MEANS` documents it is a value)."""
    if isinstance(value, str) and value == "" and key in EMPTY_MEANS:
        return False
    shown = show(list(default) if isinstance(default, tuple) else default)
    if value is None:
        what = "no value given"
    elif isinstance(value, str) and not value.strip():
        what = "an empty value" + (f" ({show(value)})" if value else "")
    else:
        return False
    problems.append(f"{key}: {what}; give a value, or leave the key out for the default {shown}")
    return True


def _one(key: str, value: Any, default: Any, problems: list) -> Any:
    if isinstance(default, tuple):
        if key == "atc_extra_args" and isinstance(value, str):
            # "--precision_mode=allow_fp32_to_fp16 --x=1"; quotes are refused later anyway
            value = [value] if re.search(r"[\"'\\]", value) else shlex.split(value)
        elif isinstance(value, (str, int)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)) or len(value) > MAXIMA["list"]:
            problems.append(f"{key}: expected a list (at most {MAXIMA['list']} entries), "
                            f"got {show(value)}")
            return _BAD
        if key in INT_LISTS:     # whole numbers as ints; anything else is judged later
            read = [number(key, v, True, []) if isinstance(v, (str, float)) else v
                    for v in value]
            value = [v if r is None else r for v, r in zip(value, read)]
        return tuple(value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            problems.append(f"{key}: expected true or false, got {show(value)}")
            return _BAD
        return value
    if isinstance(default, (int, float)):
        value = number(key, value, not isinstance(default, float), problems)
        return _BAD if value is None else value
    if isinstance(default, str):
        if not isinstance(value, (str, os.PathLike)):
            problems.append(f"{key}: expected a string, got {show(value)} "
                            f"({type(value).__name__})")
            return _BAD
        value = os.fspath(value)
        if "\0" in value or len(value) > 4096:
            problems.append(f"{key}: {show(value)}: a NUL character or over 4096 characters")
            return _BAD
    return value


# What each key means, for the notebooks' parameters cells (papermill --help-notebook).
HELP = {
    "name": "run name: the run folder is <output_root>/<name>-<time>",
    "data_dir": "folder of the validation JPEGs",
    "label_file": "val_label.txt: '<file> <0-based class>' per line",
    "weights": "torchvision squeezenet1_1 state_dict (.pth)",
    "aipp_config": "the recipe's aipp.config (normalisation baked into the model)",
    "batch_sizes": "throughput sweep batch sizes",
    "accuracy_batch_size": "batch size of the accuracy run",
    "backends": "onnxruntime, torch, ais_bench; the first is the headline",
    "device": "auto | cpu | cuda",
    "precision": "fp32 | fp16 (fp16: torch on CUDA)",
    "timing": "device: compute only (ais_bench's definition) | call: around each call",
    "outfmt": "ais_bench output format: TXT | NPY | BIN",
    "opset": "ONNX opset of the export",
    "bench_iterations": "timed iterations per batch size, at least",
    "bench_min_seconds": "timed seconds per batch size, at least",
    "warmup": "untimed calls before timing",
    "threads": "inference threads in all; 0: physical cores",
    "infer_streams": "concurrent inference streams; 0: auto",
    "workers": "preprocessing and output-reading processes; 0: all cores",
    "max_images": "use the first N images; 0: all",
    "output_root": "where run folders go",
    "bin_dir": "reuse .bin files from this folder; '': <run>/bin",
    "run_dir": "the run folder: '' new (or the latest unfinished one), or an unfinished run",
    "onnx_model": "a ready ONNX instead of exporting the weights",
    "soc_version": "Ascend chip for ATC, e.g. Ascend310P3; '': from npu-smi",
    "device_id": "NPU device id for ais_bench",
    "atc_extra_args": "extra ATC options",
    "reference_tolerance_pct": "points (0 to 5) within which the recipe's accuracy counts as "
                               "reproduced",
    "allow_label_mismatch": "evaluate only images that have labels instead of stopping",
    "shards": "split preprocessing and the accuracy run into N Dask tasks; 1: no Dask",
    "scheduler": "Dask scheduler address for shards (tcp://HOST:8786); '': a LocalCluster here",
}
