"""Top-1..top-5 from an ais_bench result folder and ``val_label.txt``, as the recipe scores.

The recipe's scoring script (``scoring.script`` in its recipe.yaml; the ModelZoo recipes'
postprocess scripts all score alike): image key = file name up to the first ``.`` with its
last ``_suffix`` cut; first line of each TXT; 1000 values -> label as is, 1001 values ->
label + 1; rank by ``argsort(-pred)``; a hit at rank i counts once; top-k in percent is
``round(hits / n * 100, 2)`` on a numpy float64 (numpy's rounding, which differs from
Python's for some image counts); the result file (``scoring.result_file``) is the
``json.dump`` of ``{"title": ..., "value": [{"key", "value"}, ...]}``, byte for byte.
Differences, all deliberate: ties are broken by the lower class index (stable sort, so
the result is deterministic); a foreign file is listed in the result's notes, not a KeyError; a
missing prediction is an error naming some of the images.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from zoorepro.errors import EvaluationError  # noqa: F401  (raised here; defined in errors)
from zoorepro.outputs import CLASSES, RESULT_FILE, read_prediction  # noqa: F401  (the reader)
from zoorepro.recipe.data import natural_sorted
from zoorepro.files import atomic_write_json, atomic_write_text

TOPK = 5
RESULT_JSON = "result.json"     # the result file's name when the caller names none
METRICS_JSON = "metrics.json"   # zoorepro's plain numbers, beside it
# results/<backend>/predictions.json ({image: top-1}): 50,000 images take about 2 MiB; a file
# past this is damaged and is refused before it is read
PREDICTIONS_MAX_BYTES = 256 * 2**20
FORMULA = ("top-k accuracy = images whose label is among the k highest scores / images; "
           "ties broken by the lower class index")




def percent(hits: int, n: int) -> float:
    """``hits`` of ``n`` in percent with the recipe's arithmetic, ``hits / n * 100`` (not
    ``100 * hits / n``: the two round differently, e.g. 23 of 160 is 14.37 upstream)."""
    return float(hits / n * 100)


def top5(vec: np.ndarray) -> np.ndarray:
    """The 5 best classes, best first; ties go to the lower class index (stable sort)."""
    return np.argsort(-vec, kind="stable")[:TOPK]


@dataclass
class Predictions:
    """A result folder read once, keeping only what scoring needs (memory stays flat)."""
    keys: list
    top5: np.ndarray            # [N, 5] class indices, best first
    n_classes: int
    foreign: list = field(default_factory=list)
    folder: str = ""
    paths: dict = field(default_factory=dict)   # key -> output file
    readers: int = 1                            # processes that parsed the outputs
    notes: list = field(default_factory=list)   # what a reader of the report should know


def list_result_folder(folder: str | os.PathLike) -> tuple[dict, list]:
    """({key: output file}, foreign names) of an ais_bench result folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EvaluationError(f"{folder}: result folder not found; run inference first")
    found: dict[str, Path] = {}
    foreign: list[str] = []
    others: dict[str, list] = {}
    for name in natural_sorted(e.name for e in os.scandir(folder) if e.is_file()):
        m = RESULT_FILE.match(name)
        if m and m.group("idx") != "0" and not name.startswith("."):
            # another output of the model (ais_bench writes <stem>_<i>); scored: _0
            others.setdefault(m.group("key"), []).append(name)
            continue
        if not m or name.startswith("."):
            foreign.append(name)
            continue
        key = m.group("key")
        if key in found:
            raise EvaluationError(f"{folder}: two outputs for {key} ({found[key].name}, {name}); "
                                  f"keep one output format per result folder")
        found[key] = folder / name
    # an image with other outputs but no _0 has no scores: listed, never silently dropped
    foreign += [n for key, names in others.items() if key not in found for n in names]
    return found, natural_sorted(foreign)


def read_result_folder(folder: str | os.PathLike, workers: int = 1,
                       backend: str = "") -> Predictions:
    """Read every output once, keeping the top-5.  ``workers`` > 1 (0: the CPUs this process
    may use) parses big folders in that many processes, chunks in order.  Outputs holding
    NaN or infinite scores stop here, naming them and the ``backend`` (by default the
    ``results/<backend>/`` folder the outputs are in): they are never scored."""
    found, foreign = list_result_folder(folder)
    notes = []
    if foreign:
        shown = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
        notes.append(f"{folder}: {len(foreign)} file(s) are not ais_bench outputs and were "
                     f"skipped: {shown}")
    if not found:
        raise EvaluationError(f"{folder}: no <name>_0.txt|.npy|.bin outputs found; point at the "
                              f"folder ais_bench wrote (e.g. result/result_bs1) or rerun inference")
    keys = list(found)
    paths = [found[k] for k in keys]
    chunks = [paths[i:i + _CHUNK] for i in range(0, len(paths), _CHUNK)]
    n = min(workers or usable_cpus(), len(chunks)) if len(paths) >= _PARALLEL_FROM else 1
    parts = _read_chunks(chunks, n, notes) if n > 1 else None
    readers = n if parts is not None else 1
    if parts is None:
        parts = [_top5_of_files(c) for c in chunks]
    non_finite = [name for p in parts for name in p[3]]
    if non_finite:
        raise EvaluationError(non_finite_message(folder, non_finite, len(paths), backend))
    n_classes = parts[0][1]
    for _, n_c, first, _ in parts:
        if n_c != n_classes:
            raise EvaluationError(f"{folder}: outputs have different lengths "
                                  f"({n_classes} and {n_c} in {first}); the folder "
                                  f"mixes runs of different models: rerun inference into a new one")
    best = np.concatenate([p[0] for p in parts])
    return Predictions(keys, best, int(n_classes), foreign, str(folder), found, readers, notes)


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # not Linux
        return os.cpu_count() or 1


def _read_chunks(chunks: list, workers: int, notes: list) -> list | None:
    """Parse ``chunks`` in ``workers`` processes, results in chunk order (so an error names the
    first bad file in folder order); None when the pool cannot run (the caller reads them
    itself).  Fork where there is one: no re-import of the caller's script."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    try:
        with ProcessPoolExecutor(workers, mp_context=ctx) as ex:
            return list(ex.map(_top5_of_files, chunks))
    except (BrokenProcessPool, OSError) as exc:
        notes.append(f"reading outputs in {workers} processes failed ({exc}); "
                     f"read them in this process")
        return None


_CHUNK = 1000            # files per task of the reading pool
_PARALLEL_FROM = 4000    # below this a pool costs more than it saves


def non_finite_message(folder, names: list, total: int, backend: str = "") -> str:
    folder = Path(folder)
    if not backend:
        backend = folder.parent.name if folder.parent.parent.name == "results" else "the backend"
    return (f"{folder}: the outputs of {backend} are non-finite: {len(names)} of {total} "
            f"image(s) have NaN or infinite scores, e.g. {', '.join(names[:5])}; they cannot be "
            f"ranked (NaN would make every prediction class 0), so nothing was scored. Check "
            f"the weights (NaN values), the model's precision (fp16 overflow) and the inputs, "
            f"then rerun inference")


def _top5_of_files(paths: list) -> tuple[np.ndarray, int, str, list]:
    """(top-5 per file, the class count they share, the name of a file with that count,
    names of files with NaN or infinite scores)."""
    best = np.empty((len(paths), TOPK), dtype=np.int32)
    n_classes = None
    non_finite = []
    for i, path in enumerate(paths):
        vec = read_prediction(path)
        if not np.isfinite(vec).all():
            non_finite.append(Path(path).name)
        if n_classes is None:
            n_classes = vec.size
        elif vec.size != n_classes:
            raise EvaluationError(f"{Path(path).parent}: outputs have different lengths "
                                  f"({n_classes} and {vec.size} in {Path(path).name}); the folder "
                                  f"mixes runs of different models: rerun inference into a new one")
        best[i] = top5(vec)
    return best, int(n_classes), Path(paths[0]).name, non_finite


def score(pred: Predictions, labels: dict[str, int], expected: Iterable[str] | None = None,
          allow_subset: bool = False) -> dict:
    """Top-1..top-5 (percent) for ``pred`` against ``labels``."""
    have = set(pred.keys)
    if expected is not None:
        expected = list(expected)
        missing = [k for k in expected if k not in have]
        if missing:
            raise EvaluationError(
                f"{pred.folder}: {len(missing)} of {len(expected)} image(s) have no prediction, "
                f"e.g. {', '.join(missing[:5])}; rerun inference (it reuses nothing, so the "
                f"folder must be complete)")
        wanted = set(expected)
        extra = [k for k in pred.keys if k not in wanted]
        if extra:
            raise EvaluationError(
                f"{pred.folder}: {len(extra)} output(s) are for images that are not part of this "
                f"run, e.g. {', '.join(extra[:5])}; the folder holds an earlier run's outputs: "
                f"use a new run folder (leave run_dir empty)")
    unlabelled = [k for k in pred.keys if k not in labels]
    if unlabelled and not allow_subset:
        raise EvaluationError(
            f"{pred.folder}: {len(unlabelled)} prediction(s) have no label in the label file, "
            f"e.g. {', '.join(unlabelled[:5])}; use the val_label.txt that matches these images")
    idx = [i for i, k in enumerate(pred.keys) if k in labels]
    if not idx:
        raise EvaluationError(f"{pred.folder}: no prediction matches a label")
    shift = 1 if pred.n_classes == 1001 else 0
    targets = np.array([labels[pred.keys[i]] + shift for i in idx])
    hits = pred.top5[idx] == targets[:, None]
    cum = np.cumsum(hits.sum(axis=0))
    n = len(idx)
    out = {"images": n, "classes": pred.n_classes, "label_offset": shift}
    for i in range(TOPK):
        out[f"top{i + 1}"] = percent(int(cum[i]), n)
        out[f"correct_top{i + 1}"] = int(cum[i])
    out["formula"] = FORMULA
    out["per_image_top1"] = {pred.keys[i]: int(pred.top5[i, 0]) - shift for i in idx}
    return out


def rounded(pct: float) -> str:
    """A percentage as the recipe's result file writes it: ``str(round(x, 2))`` of a numpy
    float64, i.e. numpy's rounding (``round(np.float64(2.675), 2)`` is 2.68, Python's
    ``round(2.675, 2)`` 2.67: for 4,000 images, 1 hit is "0.03" in Python and "0.02"
    upstream)."""
    return str(round(np.float64(pct), 2))


def result_json(metrics: dict) -> dict:
    """The recipe's result file: title / value list of strings (``"58.19%"``)."""
    value = [{"key": "Number of images", "value": str(metrics["images"])},
             {"key": "Number of classes", "value": str(metrics["classes"])}]
    for i in range(1, TOPK + 1):
        value.append({"key": f"Top{i} accuracy", "value": rounded(metrics[f"top{i}"]) + "%"})
    return {"title": "Overall statistical evaluation", "value": value}


def write_results(metrics: dict, out_dir: str | os.PathLike,
                  result_file: str = RESULT_JSON) -> tuple[Path, Path]:
    """The recipe's result file (``result_file``: the recipe's ``scoring.result_file``),
    byte for byte as its scoring script writes it (``json.dump``, one line), and
    ``metrics.json`` (plain numbers) in ``out_dir``."""
    import json
    out_dir = Path(out_dir)
    if not result_file or Path(result_file).name != result_file or result_file == METRICS_JSON:
        raise EvaluationError(f"scoring.result_file {result_file!r}: give a plain file name "
                              f"other than {METRICS_JSON} (it is written in {out_dir}); fix "
                              f"the recipe's recipe.yaml")
    plain = {k: v for k, v in metrics.items() if k != "per_image_top1"}
    r = atomic_write_text(out_dir / result_file, json.dumps(result_json(metrics)))
    m = atomic_write_json(out_dir / METRICS_JSON, plain)
    return r, m


def parity(a: Predictions, b: Predictions) -> dict:
    """Agreement of two result folders on the images both scored: top-1 agreement and the
    largest |score difference| (files read again one pair at a time: memory stays flat).
    An image with a NaN or infinite score on either side counts as a disagreement and is
    counted in ``non_finite_images``; the largest difference is over the finite ones."""
    common = [k for k in a.keys if k in b.paths]
    if not common:
        return {"images": 0, "top1_agreement_pct": None, "max_abs_logit_diff": None}
    a_top = dict(zip(a.keys, a.top5[:, 0]))
    b_top = dict(zip(b.keys, b.top5[:, 0]))
    same = bad = 0
    diffs = []
    for k in common:
        va, vb = read_prediction(a.paths[k]), read_prediction(b.paths[k])
        if not (np.isfinite(va).all() and np.isfinite(vb).all()):
            bad += 1
            continue
        same += int(a_top[k] == b_top[k])
        if a.n_classes == b.n_classes:
            diffs.append(float(np.abs(va - vb).max()))
    out = {"images": len(common), "top1_agreement_pct": percent(same, len(common)),
           "max_abs_logit_diff": max(diffs) if diffs else None}
    if bad:
        out["non_finite_images"] = bad
    return out


PREDICTION_COLUMNS = ("image", "label", "top1", "top2", "top3", "top4", "top5", "correct@1",
                      "correct@5", "backend")


def predictions_csv(pred: Predictions, labels: dict, backend: str) -> str:
    """One row per scored image: its label, the five best classes (0-based, as labels), and
    whether the label is first / among them (``results/<backend>/predictions.csv``)."""
    import csv
    import io
    shift = 1 if pred.n_classes == 1001 else 0
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(PREDICTION_COLUMNS)
    for key, best in zip(pred.keys, pred.top5):
        if key not in labels:
            continue
        top = [int(c) - shift for c in best]
        label = labels[key]
        w.writerow([key, label, *top, int(top[0] == label), int(label in top), backend])
    return buf.getvalue()
