"""The output files' contract, shared by the recipe's postprocess (``recipe.evaluate``) and
ais_bench (``ascend.aisformat``): one file per image and model output,
``<stem>_<i>.<txt|npy|bin>`` (:data:`RESULT_FILE`), in one of :data:`FORMATS`; TXT is
``reshape(-1, last_dim)`` with ``%f`` values each followed by a space (:func:`write_output`,
:func:`read_prediction`); names in ais_bench's natural order (:func:`natural_sorted`).
Imports only :mod:`zoorepro.errors` and :mod:`zoorepro.files`."""
from __future__ import annotations

import io
import os
import re
import warnings
from pathlib import Path

import numpy as np

from zoorepro.errors import EvaluationError
from zoorepro.files import atomic_write_bytes, atomic_write_text

FORMATS = ("TXT", "NPY", "BIN")          # ais_bench's --outfmt values, as the recipe spells them
MAX_OUTPUT_BYTES = 1 << 20               # one image's scores take under 50 kB
# Bytes one image's output takes per format (1000 float32 scores): TXT is ais_bench's "%f "
# per value -- up to 12 characters for the logits this model gives.
OUTPUT_BYTES = {"TXT": 12_000, "NPY": 4_128, "BIN": 4_000}


CLASSES = (1000, 1001)


def natural_key(name: str):
    """ais_bench's natural sort key (``utils.natural_sort``): digit runs compare as numbers
    (``img2`` < ``img10``), the rest lower-cased."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def natural_sorted(names) -> list[str]:
    """Natural order; names equal under :func:`natural_key` keep a fixed order."""
    return sorted(names, key=lambda n: (natural_key(n), n))


def write_output(path: Path, row: np.ndarray, outfmt: str) -> None:
    if outfmt == "TXT":
        # ais_bench: reshape(-1, last_dim), '%f' values each followed by a space, newline
        rows = row.reshape(-1, row.shape[-1])
        line = "%f " * rows.shape[1] + "\n"
        atomic_write_text(path, "".join(line % tuple(r) for r in rows.tolist()))
    elif outfmt == "NPY":
        buf = io.BytesIO()
        np.save(buf, row)
        atomic_write_bytes(path, buf.getvalue())
    elif outfmt == "BIN":
        atomic_write_bytes(path, np.ascontiguousarray(row).tobytes())
    else:
        raise ValueError(f"outfmt must be one of {', '.join(FORMATS)}, got {outfmt!r}")


RESULT_FILE = re.compile(r"^(?P<key>[^.]+)_(?P<idx>\d+)\.(?P<ext>txt|npy|bin)$", re.IGNORECASE)


# A BIN output is raw scores without a header: its size says the dtype (no class count in
# CLASSES shares a size between float32 and float16).
BIN_DTYPES = {4 * c: np.float32 for c in CLASSES} | {2 * c: np.float16 for c in CLASSES}


def _read_txt(path: Path) -> np.ndarray:
    """Scores of one TXT output.  ais_bench writes ``reshape(-1, last_dim)``: one line for a
    ``[1, 1000]`` output, several when the last axis is not the class axis (joined here)."""
    size = path.stat().st_size
    if size > MAX_OUTPUT_BYTES:   # checked before reading
        raise EvaluationError(f"{path}: {size:,} bytes is no ais_bench TXT output (one image's "
                              f"scores take under 50 kB); remove it or rerun inference")
    lines = [ln for ln in path.read_bytes().decode("utf-8", "replace").splitlines() if ln.strip()]
    if not lines:
        raise EvaluationError(f"{path}: empty output file; rerun inference")
    rows = [_parse_row(path, ln) for ln in lines]
    if len(rows) == 1:
        return rows[0]
    if rows[0].size in CLASSES and all(r.size == rows[0].size for r in rows):
        raise EvaluationError(
            f"{path}: {len(rows)} lines of {rows[0].size} scores for one image; an older "
            f"ais_infer appended to TXT outputs on rerun, so which line is current cannot be "
            f"told. Delete the result folder and run inference again")
    total = sum(r.size for r in rows)
    if total in CLASSES:
        return np.concatenate(rows)
    raise EvaluationError(
        f"{path}: {total} values over {len(rows)} rows, expected 1000 (or 1001): if an older "
        f"ais_infer appended to this TXT on a rerun, which rows are current cannot be told; "
        f"delete the result folder and run inference again")


_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?|[-+]?(nan|inf(inity)?)", re.I)


def _parse_row(path: Path, line: str) -> np.ndarray:
    """Whitespace-separated numbers of one line (numpy's C parser; about 30 % faster than
    splitting in Python).  A token that is not a number is an error naming the file."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)   # numpy: "could not be read to its end"
        try:
            return np.fromstring(line, dtype=np.float32, sep=" ")
        except (DeprecationWarning, ValueError):
            bad = next((t for t in line.split() if not _NUMBER.fullmatch(t)), line[:20])
            raise EvaluationError(f"{path}: {bad!r} is not a number; the file is not an "
                                  f"ais_bench TXT output: rerun inference") from None


def read_prediction(path: str | os.PathLike) -> np.ndarray:
    """One image's scores from ``<stem>_0.txt|.npy|.bin``."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext == ".txt":
        vec = _read_txt(path)
    elif ext == ".npy":
        try:
            arr = (np.load(path, allow_pickle=False) if path.stat().st_size <= MAX_OUTPUT_BYTES
                   else None)
            if arr is None or arr.dtype.kind not in "fiu":   # too big to be scores; not numbers
                raise ValueError(f"{path.stat().st_size:,} bytes" if arr is None
                                 else f"dtype {arr.dtype}")
            vec = arr.astype(np.float32).reshape(-1)
        except (ValueError, TypeError, EOFError, OSError) as exc:
            raise EvaluationError(f"{path}: not an ais_bench NPY output of scores "
                                  f"({str(exc)[:100]}); remove it or rerun inference") from None
    else:
        size = path.stat().st_size
        dtype = BIN_DTYPES.get(size)
        if dtype is None:
            raise EvaluationError(
                f"{path}: {size} bytes is not 1000 or 1001 scores in float32 (4000/4004 bytes) "
                f"or float16 (2000/2002 bytes, ATC's fp16 output); BIN outputs are raw scores "
                f"as ais_bench writes them: rerun inference with --outfmt BIN, TXT or NPY")
        vec = np.fromfile(path, dtype=dtype).astype(np.float32)
    if vec.size not in CLASSES:
        raise EvaluationError(f"{path}: {vec.size} scores; expected 1000 (or 1001 with a "
                              f"background class)")
    return vec
