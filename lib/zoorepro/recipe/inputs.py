"""What a run reads, checked before any work: its images matched with their labels, and the
disk space everything it writes will take."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Sequence

from zoorepro.outputs import OUTPUT_BYTES
from zoorepro.recipe import data, preprocess
from zoorepro.config import RunConfig
from zoorepro.errors import DataError
from zoorepro.recipebook import Preprocess
from zoorepro.files import atomic_write_bytes, writing


# ------------------------------------------------------------------ stage 1
# Per image and backend beside the output: its summary's filesinfo and predictions.json.
LISTING_BYTES = 400
# Per .bin file: its line in the source manifest.
MANIFEST_LINE_BYTES = 300
# What a run writes besides .bin files and outputs: two ONNX models (5 MB each), the executed
# notebooks, records and report.html.
RUN_FILES_BYTES = 16_000_000


def check_free_space(folder: Path, images: Sequence[Path], spec: Preprocess,
                     results: Path | None = None, outputs: int = 0, outfmt: str = "TXT",
                     extra: tuple = ()) -> None:
    """Stop before any work when a folder cannot be written, or its disk cannot take what
    the run will write there: the ``.bin`` files of the recipe's preprocessing ``spec``
    still to write (those already in ``folder`` at its size are credited); with
    ``results``, ``outputs`` backends' result files and the run folder's models, notebooks,
    records and report; ``extra``: (bytes, what) more in ``folder`` (e.g. the kit's model)."""
    if not isinstance(spec, Preprocess):
        raise TypeError(f"check_free_space: spec must be the recipe's Preprocess "
                        f"(cfg.recipe_spec.preprocess), got {type(spec).__name__}")
    size = spec.bin_bytes
    todo = sum(1 for p in images
               if not _full_bin(preprocess.bin_path_for(Path(p), folder), size))
    needs = {}
    _add(needs, folder, folder, (size + MANIFEST_LINE_BYTES) * todo,
         f"{todo} .bin file(s) x {size} bytes"
         + (f" ({len(images) - todo} already there)" if todo < len(images) else ""))
    for size, what in extra:
        _add(needs, folder, folder, size, what)
    if results is not None:
        per = OUTPUT_BYTES.get(outfmt, OUTPUT_BYTES["TXT"]) + LISTING_BYTES
        if outputs:
            _add(needs, folder, results, per * len(images) * outputs,
                 f"{outputs} backend(s) x {len(images)} {outfmt} output(s)")
        _add(needs, folder, results.parent, RUN_FILES_BYTES,
             f"models, notebooks, records and report ({RUN_FILES_BYTES / 1e6:.0f} MB)")
    for where, (need, what) in needs.items():
        free = shutil.disk_usage(where).free
        if free < need * 1.05:
            raise DataError(f"{where}: {free / 2**30:.2f} GiB free, the run needs "
                                 f"{need / 2**30:.2f} GiB there ({what}); free space, or "
                                 f"set bin_dir / output_root to a larger disk")


def _add(needs: dict, first: Path, where: Path, size: int, what: str) -> None:
    """Count ``size`` bytes on ``where``'s disk (under ``first`` when they share one), after
    making ``where`` and checking that it can be written."""
    probe = where / f".zoorepro-write-test-{os.getpid()}"
    try:
        with writing(where):
            where.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(probe, b"")
        probe.unlink(missing_ok=True)
    except OSError as exc:   # a WriteError naming the path and the cause
        raise DataError(f"checked before any work: {exc}") from None
    key = first if _device(where) == _device(first) else where
    need = needs.setdefault(key, [0, ""])
    need[0] += size
    need[1] = " + ".join(filter(None, [need[1], what]))


def _full_bin(path: Path, size: int) -> bool:
    try:
        return path.stat().st_size == size
    except OSError:
        return False


def _device(path: Path) -> int:
    return os.stat(path).st_dev


def run_images(cfg: RunConfig) -> tuple[list[Path], list[str], list[str]]:
    """(images to run, names of unlabelled images, labels without an image): the images of
    ``data_dir`` (laid out as the recipe's preprocessing says) matched against ``label_file``.
    Every problem of the input is reported at once, before any work: entries named like
    images that are not image files, bad label lines, a mismatch (unless
    ``allow_label_mismatch``: then only labelled images run) and, when one of these stops the
    run anyway, every image that cannot be preprocessed."""
    problems: list[str] = []
    spec = cfg.recipe_spec.preprocess
    try:
        images, odd = data.scan_images(cfg.data_dir, cfg.max_images, spec.layout,
                                       spec.extensions)
    except DataError as exc:
        images, odd = [], []
        problems.append(str(exc))
    if odd:
        problems.append(data.odd_entries_message(cfg.data_dir, odd))
    try:
        labels = data.read_labels(cfg.label_file)
    except DataError as exc:
        labels = None
        problems.append(str(exc))
    mismatch, unlabelled, missing, matched = [], [], [], None
    if labels is not None and images:
        matched = data.match_labels(images, labels)
        unlabelled = matched.unlabelled
        missing = matched.missing_images if not cfg.max_images else []
        if unlabelled:
            names = ", ".join(p.name for p in unlabelled[:5])
            mismatch.append(f"{len(unlabelled)} of {len(images)} image(s) in {cfg.data_dir} "
                            f"have no label in {cfg.label_file}, e.g. {names}")
        if missing:
            mismatch.append(f"{len(missing)} label(s) in {cfg.label_file} have no image in "
                            f"{cfg.data_dir}, e.g. {', '.join(missing[:5])}")
        if not cfg.allow_label_mismatch:
            problems += mismatch
    if problems:
        bad = preprocess.check_images(images, spec, cfg.workers) if images else []
        if bad:
            problems.append(f"{len(bad)} of {len(images)} image(s) cannot be preprocessed: "
                            + "; ".join(f"{n}: {r}" for n, r in bad[:10])
                            + (f"; ... and {len(bad) - 10} more" if len(bad) > 10 else ""))
        head = ("images and labels do not match; stopped before inference"
                if mismatch and not cfg.allow_label_mismatch else
                "the input cannot be used; stopped before any work")
        fix = ("\nUse the val_label.txt that belongs to these images, or set "
               "allow_label_mismatch: true to evaluate only the images that have labels (the "
               "report then shows these counts)." if mismatch and not cfg.allow_label_mismatch
               else "")
        raise DataError(f"{head} ({len(problems)} problem(s), all listed):\n  - "
                        + "\n  - ".join(problems) + fix)
    if not matched or not matched.images:
        raise DataError(f"{cfg.data_dir}: no image has a label in {cfg.label_file}")
    return matched.images, [p.name for p in unlabelled], missing
