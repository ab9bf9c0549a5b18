"""The cross-checks of ``zoorepro ingest``: every figure it takes from an NPU host is checked
against every other clue it has, and a disagreement is an :class:`IngestError` naming the
files, the clues and the fix, never a silent choice.

* the batch size: the summary's own clues (:func:`zoorepro.ascend.aisformat.batch_size_clues`),
  the folder name ``result_bs<N>``, the kit's ``accuracy_batch_size`` (:func:`agree`); one
  clue alone needs the inference count to check it (:func:`check_evidence`);
* the outputs: BIN files of one size (one dtype), none of one score for every class;
* the image count: outputs against the labels, the kit's image list, the summary's
  inferences x batch size and its ``filesinfo`` (:func:`completeness`);
* where the results came from (:func:`zoorepro.ascend.aisclues.origin_problem`, never a zoorepro
  run's ``results/<backend>/``; the summary beside the folder is read whatever
  ``--accuracy-summary`` says), one output format per folder, each sweep summary once and a
  sweep point, never the accuracy run;
* the small text files (``npu-smi info``, ``ais_bench_version.txt``): regular files of at most
  :data:`MAX_TEXT_BYTES`, and nothing from a file linked outside the results is quoted.
"""
from __future__ import annotations

import os
import stat as stat_mod
from pathlib import Path

import numpy as np

from zoorepro.ascend import aisclues
from zoorepro.ascend.aisformat import (BIN_DTYPES, NAME, batch_size_clues, read_prediction,
                                       read_summary, summary_batch_size, summary_is_pure)
from zoorepro.configspec import MAXIMA
from zoorepro.outputs import FORMATS
from zoorepro.recipe.data import natural_sorted
from zoorepro.errors import DataError, IngestError
from zoorepro.files import read_json
from zoorepro.names import name_problem

MAX_TEXT_BYTES = 64 << 10     # npu-smi info of a 16-NPU host: about 8 kB
COPY_ALL = "copy the whole result folder from the NPU host"


# ------------------------------------------------------------ names and small files
def check_run_name(name: object) -> str:
    problem = name_problem(name, "--name")
    if problem:
        raise IngestError(f"{problem}; it becomes the run folder's name under --out")
    return name  # type: ignore[return-value]


def read_small_text(path: str | os.PathLike, what: str, fix: str) -> str:
    """The text of ``path`` when it is a regular file (after links) of at most
    :data:`MAX_TEXT_BYTES`; else an error naming it (a folder, a device such as /dev/zero
    and a huge file are never read)."""
    path = Path(path)
    try:
        st = os.stat(path)
    except OSError as exc:
        raise IngestError(f"{path}: {what} cannot be read ({exc.strerror}); {fix}") from None
    if not stat_mod.S_ISREG(st.st_mode):
        kind = "a folder" if stat_mod.S_ISDIR(st.st_mode) else "a device, pipe or socket"
        raise IngestError(f"{path}: {what} is {kind}, not a regular file; {fix}")
    with open(path, "rb") as fh:
        raw = fh.read(MAX_TEXT_BYTES + 1)
    if max(st.st_size, len(raw)) > MAX_TEXT_BYTES:
        raise IngestError(f"{path}: {max(st.st_size, len(raw)):,} bytes is no {what} (at most "
                          f"{MAX_TEXT_BYTES:,} are read); {fix}")
    return raw.decode("utf-8", "replace")


def _target(path: Path, root: Path) -> str | None:
    """Where ``path`` leads when it is a symlink resolving outside ``root`` (else None)."""
    real = Path(os.path.realpath(path))
    if path.is_symlink() and not real.is_relative_to(os.path.realpath(root)):
        return str(real)
    return None


def check_linked_outputs(folder: Path, paths) -> None:
    """Outputs that are symlinks out of the folder are read here first: one that is no
    ais_bench output is refused without quoting a byte of what it points at."""
    for path in paths:
        target = _target(Path(path), folder)
        if target is None:
            continue
        try:
            read_prediction(path)
        except (DataError, OSError):
            raise IngestError(f"{path} is a symlink to {target}, outside the result folder "
                              f"{folder}, and is not an ais_bench output (its content is not "
                              f"shown); copy the real output files from the NPU host, not "
                              f"links") from None


def read_labels_guarded(given: str | os.PathLike, read):
    """``read(path)``; when the label file is a symlink, an error about it names the link
    and its target only (the target's lines are not quoted)."""
    try:
        return read(Path(given).resolve())
    except DataError:
        if not Path(given).is_symlink():
            raise
        raise IngestError(f"{given} is a symlink to {os.path.realpath(given)}, which is not a "
                          f"val_label.txt of '<file name> <class index>' lines (its content is "
                          f"not shown); give the label file itself") from None


# ------------------------------------------------------------ where results came from
def check_origin(summary: dict, path) -> None:
    problem = aisclues.origin_problem(summary, path)
    if problem:
        raise IngestError(problem)


def check_not_a_run_folder(result_dir: Path) -> None:
    """``<run>/results/<backend>/result_bs<N>`` of a zoorepro run (not ais_bench's own)."""
    backend, results = result_dir.parent, result_dir.parent.parent
    if results.name == "results" and (results.parent / "records").is_dir() and \
            backend.name != NAME:
        raise IngestError(f"{result_dir}: lies inside a zoorepro run folder ({results.parent}): "
                          f"these are the outputs of zoorepro's {backend.name} backend on that "
                          f"machine, not of ais_bench on an NPU; give the results of the kit's "
                          f"run_on_npu.sh (npu_results/result/result_bs<N>)")


def check_summary_beside(beside: Path, given: Path, summary: dict) -> None:
    """``<folder>_summary.json`` beside the folder when ``--accuracy-summary`` names another
    file: read too, and refused when it is zoorepro's own or says something else."""
    if not beside.is_file() or os.path.samefile(beside, given):
        return
    own = read_summary(beside)
    check_origin(own, beside)
    if own != summary:
        raise IngestError(f"two summaries for one result folder: {beside}, beside it, and "
                          f"--accuracy-summary {given} differ; which run the outputs belong "
                          f"to cannot be told: leave --accuracy-summary out (the one beside "
                          f"the folder is read), or remove the one that is not this run's")


def check_accuracy_summary(summary: dict, path) -> None:
    check_origin(summary, path)
    if summary_is_pure(summary):
        raise IngestError(f"{path}: a pure-inference (--loop, no --input) summary, not the "
                          f"accuracy run's: it inferred no image; give the "
                          f"<result folder>_summary.json beside the result folder")


def check_formats(folder, paths) -> None:
    counts: dict[str, int] = {}
    for p in paths:
        fmt = Path(p).suffix.lstrip(".").upper()
        counts[fmt] = counts.get(fmt, 0) + 1
    if len(counts) > 1:
        shown = ", ".join(f"{counts[f]} {f}" for f in sorted(counts, key=FORMATS.index))
        raise IngestError(f"{folder}: mixes output formats: {shown}; one ais_bench run writes "
                          f"one --outfmt, so the folder holds outputs of several runs: "
                          f"{COPY_ALL} of one run")


def check_bin_sizes(folder, paths) -> None:
    """One ais_bench run writes one dtype: BIN outputs of several sizes (a half-copied
    float32 file reads as float16) are refused, naming the files and sizes."""
    sizes: dict[int, list[str]] = {}
    for p in paths:
        if Path(p).suffix.lower() == ".bin":
            sizes.setdefault(os.stat(p).st_size, []).append(Path(p).name)
    if len(sizes) > 1:
        order = sorted(sizes, key=lambda s: -len(sizes[s]))
        shown = "; ".join(f"{len(sizes[s])} of {s:,} bytes ({_dtype(s)})" + (
            f": {', '.join(natural_sorted(sizes[s])[:5])}" if s != order[0] else "")
            for s in order)
        raise IngestError(f"{folder}: BIN outputs of different sizes: {shown}; one ais_bench "
                          f"run writes one dtype, so a file is damaged (cut short in copying) "
                          f"or from another run: {COPY_ALL} of one run")


def _dtype(size: int) -> str:
    dtype = BIN_DTYPES.get(size)
    return f"{size // dtype(0).itemsize} {dtype.__name__}" if dtype else "no score vector"


def check_constant_outputs(folder, pred) -> None:
    """Outputs whose every score is the same (all zero, ...) hold no answer: ties make
    their top-1 class 0, so they are refused, never scored.  Such a row's top-5 is 0..4 in
    order (a stable sort), so only those files are read again."""
    flat = [k for k, row in zip(pred.keys, pred.top5) if list(row) == list(range(len(row)))]
    same = [Path(pred.paths[k]).name for k in flat
            if np.ptp(read_prediction(pred.paths[k])) == 0]
    if same:
        raise IngestError(f"{folder}: {len(same)} output(s) hold the same score for every "
                          f"class (e.g. all zero): {', '.join(same[:5])}; the model's answer "
                          f"is not in them (tie-breaking would make it class 0): a failed or "
                          f"zero-filled inference or a damaged copy: {COPY_ALL} again, or "
                          f"rerun ais_bench")


# ------------------------------------------------------------ batch size and counts
def agree(clues: list, where, fix: str) -> int | None:
    """The one batch size every clue states (None without clues); else an error listing them."""
    if len({v for _, v in clues}) > 1:
        raise IngestError(f"{where}: the batch size disagrees between its clues: "
                          + "; ".join(f"{w}: {v}" for w, v in clues) + f"; {fix}")
    return clues[0][1] if clues else None


def summary_clues(summary: dict, path) -> list:
    return [(f"the summary {Path(path).name}", summary_batch_size(summary, path))]


def check_evidence(summary: dict, path, bs: int, others=(), counted: bool = True) -> None:
    """A batch size one clue alone states (no second clue in the summary, its folder or the
    kit) is refused unless the summary's inference count checks it against the images
    (``counted``: :func:`count_problems` does): a throughput must not rest on it."""
    own = batch_size_clues(summary, path)
    calls, loop = aisclues.inferences(summary, path), aisclues.loop_count(summary)
    if len(own) + len(others) > 1 or counted and calls and calls % loop == 0:
        return
    what = own[0][0] if own else "nothing"
    raise IngestError(f"{path}: the batch size {bs} rests on {what} alone: no second clue (a "
                      f"bs<N> in the OM, file or folder name, ais_bench's throughput, the "
                      f"kit.json) and no NPU_compute_time.count or npu_compute_time_list to "
                      f"check it against the images; the throughput (1000 x batch size / "
                      f"mean) would rest on one unchecked figure: give the summary ais_bench "
                      f"wrote (it counts its inferences), or --manifest kit.json")


def count_problems(summary: dict, path, bs: int, keys) -> list[str]:
    """What the summary says about the images of a run of batch size ``bs`` that ``keys``
    (the outputs in the folder) contradicts: its inferences and its ``filesinfo``."""
    problems, n = [], len(keys)
    calls = aisclues.inferences(summary, path)
    loop = aisclues.loop_count(summary)
    if calls and calls % loop == 0:
        low, high = aisclues.images_for(bs, calls // loop)
        if not low <= n <= high:
            fits = aisclues.batch_sizes_for(n, calls // loop)
            fit = (f"batch size {fits[0]}" + (f"..{fits[1]}" if fits[1] != fits[0] else "")
                   if fits[1] is None or fits[0] <= fits[1] else "no batch size")
            problems.append(f"{Path(path).name} counts {calls} inference(s) at batch size {bs} "
                            f"({low}..{high} images{f', --loop {loop}' if loop > 1 else ''}); "
                            f"{n} image(s) in {calls // loop} batch(es) fit {fit}")
    listed = aisclues.filesinfo_keys(summary)
    if listed is not None and listed != set(keys):
        gone = natural_sorted(listed - set(keys))
        extra = natural_sorted(set(keys) - listed)
        problems.append(f"its filesinfo lists {len(listed)} image(s) ais_bench saved"
                        + (f", {len(gone)} not in the folder (e.g. {', '.join(gone[:3])})"
                           if gone else "")
                        + (f", and not {len(extra)} that are (e.g. {', '.join(extra[:3])})"
                           if extra else ""))
    return problems


def label_problem(labels: dict, keys, labels_path) -> str | None:
    have = set(keys)
    missing = [k for k in labels if k not in have]
    if not missing:
        return None
    return (f"{len(missing)} of {len(labels)} label(s) have no output, e.g. "
            f"{', '.join(missing[:5])} ({Path(labels_path).name})")


def completeness(where, n: int, problems: list[str]) -> None:
    if problems:
        raise IngestError(f"{where}: " + "; ".join(problems) + f"; the folder holds {n} "
                          f"output(s): it is incomplete or mixes runs: {COPY_ALL} (or, if "
                          f"the batch size is what is wrong, the summary of this run)")


# ------------------------------------------------------------ sweep summaries
def sweep_summaries(paths, accuracy_path, kit_sizes) -> list[tuple[Path, dict]]:
    """Each ``--summary`` read once and checked: given once, a pure-inference sweep point
    (never the accuracy run), from ais_bench, one per batch size, a batch size the kit ran."""
    out, seen, by_bs = [], {}, {}
    acc = os.stat(accuracy_path) if accuracy_path and os.path.isfile(accuracy_path) else None
    for p in map(Path, paths or ()):
        s = read_summary(p)
        st = os.stat(p)
        ident = (st.st_dev, st.st_ino)
        if ident in seen:
            raise IngestError(f"{p}: given twice (also as {seen[ident]}); give each sweep "
                              f"summary once")
        seen[ident] = p
        check_origin(s, p)
        if aisclues.is_accuracy_run(s) or acc and (acc.st_dev, acc.st_ino) == ident:
            raise IngestError(f"{p}: the accuracy run's summary, not a pure-inference (--loop) "
                              f"sweep summary (it ran over --input files once); it is read "
                              f"beside the result folder (or --accuracy-summary): give the "
                              f"perf/perf_bs<N>_summary.json files as --summary")
        bs = summary_batch_size(s, p)
        if kit_sizes and bs not in kit_sizes:
            raise IngestError(f"{p}: batch size {bs} is not one the kit ran "
                              f"({', '.join(map(str, kit_sizes))}); give the kit's summaries")
        check_evidence(s, p, bs, [("the kit's batch_sizes", bs)] if kit_sizes else (),
                       counted=False)
        if bs in by_bs:
            raise IngestError(f"two sweep summaries for batch size {bs} ({by_bs[bs]}, {p}); "
                              f"give one per batch size")
        by_bs[bs] = p
        out.append((p, s))
    return out


# ------------------------------------------------------------ kit.json
# What ingest reads from kit.json, and the JSON type each must have.
MANIFEST_TYPES = {"recipe": str, "recipe_sha256": str,
                  "keys": list, "params": dict, "export": dict, "preprocess": dict,
                  "atc_commands": list, "unlabelled_examples": list, "accuracy_batch_size": int,
                  "device_id": int, "soc_version": str, "data_dir": str, "max_images": int,
                  "image_list_sha256": str, "labels_without_image": int, "unlabelled_images": int,
                  "images": int, "label_file_sha256": str}
MAX_MANIFEST_BYTES = 64 << 20


def read_manifest(path: str | os.PathLike | None) -> dict:
    if not path:
        return {}
    path = Path(path)
    if not path.is_file():
        raise IngestError(f"{path}: kit manifest not found (it is kit.json, copied into the "
                          f"results folder by run_on_npu.sh)")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise IngestError(f"{path}: {path.stat().st_size:,} bytes is no kit.json; give the "
                          f"kit.json that 'zoorepro kit' wrote")
    try:
        man = read_json(path)
    except (ValueError, RecursionError) as exc:
        raise IngestError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(man, dict):
        raise IngestError(f"{path}: holds a JSON {type(man).__name__}, not the object 'zoorepro "
                          f"kit' writes; give the kit.json of the kit that was run")
    bad = []
    for key, kind in MANIFEST_TYPES.items():
        v = man.get(key)
        if v is not None and (not isinstance(v, kind) or isinstance(v, bool) or kind is list
                              and not all(isinstance(x, str) for x in v)):
            bad.append(f"{key} is {str(v)[:40]!r}, not "
                       f"{'a list of strings' if kind is list else kind.__name__}")
    tol = (man.get("params") or {}).get("reference_tolerance_pct") if not bad else None
    if tol is not None and (isinstance(tol, bool) or not isinstance(tol, (int, float))):
        bad.append(f"params.reference_tolerance_pct is {str(tol)[:40]!r}, not a number")
    elif tol is not None and not 0 <= tol <= MAXIMA["reference_tolerance_pct"]:
        bad.append(f"params.reference_tolerance_pct is {tol!r}, outside 0 to "
                   f"{MAXIMA['reference_tolerance_pct']:g} points")
    sizes = man.get("batch_sizes")
    if sizes is not None and (not isinstance(sizes, list) or not all(
            type(b) is int and 1 <= b <= 65536 for b in sizes)):
        bad.append(f"batch_sizes is {str(sizes)[:40]!r}, not a list of batch sizes")
    if not bad and man.get("keys") is not None and man.get("images") is not None and \
            man["images"] != len(man["keys"]):
        bad.append(f"images is {man['images']} but it lists {len(man['keys'])} keys")
    if bad:
        raise IngestError(f"{path}: not a kit manifest as 'zoorepro kit' writes it: "
                          f"{'; '.join(bad[:5])}; give the kit.json of the kit that was run")
    return man


TOOL_VERSIONS = "ais_bench_version.txt"   # the kit writes `pip show ais_bench aclruntime` there


def parse_pip_show(text: str) -> str:
    """``"ais_bench 0.0.2, aclruntime 0.0.2"`` from ``pip show`` output ("" if none)."""
    found, name = [], None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Name":
            name = value.strip()
        elif key.strip() == "Version" and name:
            found.append(f"{name} {value.strip()}")
            name = None
    return ", ".join(found)


def tool_versions(folders) -> str:
    """The ais_bench/aclruntime versions the kit recorded, from the first folder holding
    its ``ais_bench_version.txt`` ("" when none does); one that is no small regular file
    is an error, never read whole."""
    for folder in folders:
        path = Path(folder) / TOOL_VERSIONS
        if os.path.lexists(path):
            return parse_pip_show(read_small_text(
                path, "the kit's 'pip show ais_bench aclruntime' output", "remove it or copy "
                "the one run_on_npu.sh wrote"))
    return ""
