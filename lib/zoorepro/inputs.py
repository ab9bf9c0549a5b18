"""What a run reads, checked before any work: its images matched with their labels, and the
disk space everything it writes will take."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Sequence

from . import data, preprocess
from .config import RunConfig
from .errors import DataError


# ------------------------------------------------------------------ stage 1
# Bytes one image's output takes per backend (1000 float32 scores): TXT is ais_bench's
# "%f " per value -- up to 12 characters for the logits this model gives.
OUTPUT_BYTES = {"TXT": 12_000, "NPY": 4_128, "BIN": 4_000}


def check_free_space(folder: Path, images: Sequence[Path], results: Path | None = None,
                     outputs: int = 0, outfmt: str = "TXT") -> None:
    """Stop before any work when the disk cannot take the ``.bin`` files still to write (those
    already in ``folder`` at full size are credited) plus ``outputs`` backends' result files
    under ``results``."""
    folder.mkdir(parents=True, exist_ok=True)
    todo = sum(1 for p in images if not _full_bin(preprocess.bin_path_for(Path(p), folder)))
    needs = {folder: [preprocess.BIN_BYTES * todo,
                      f"{todo} .bin file(s) x {preprocess.BIN_BYTES} bytes"
                      + (f" ({len(images) - todo} already there)" if todo < len(images) else "")]}
    if results is not None and outputs:
        results.mkdir(parents=True, exist_ok=True)
        where = folder if _device(results) == _device(folder) else results
        need = needs.setdefault(where, [0, ""])
        need[0] += OUTPUT_BYTES.get(outfmt, OUTPUT_BYTES["TXT"]) * len(images) * outputs
        need[1] = " + ".join(filter(None, [need[1], f"{outputs} backend(s) x {len(images)} "
                                                    f"{outfmt} output(s)"]))
    for where, (need, what) in needs.items():
        free = shutil.disk_usage(where).free
        if free < need * 1.05:
            raise DataError(f"{where}: {free / 2**30:.2f} GiB free, the run needs "
                                 f"{need / 2**30:.2f} GiB there ({what}); free space, or "
                                 f"set bin_dir / output_root to a larger disk")


def _full_bin(path: Path) -> bool:
    try:
        return path.stat().st_size == preprocess.BIN_BYTES
    except OSError:
        return False


def _device(path: Path) -> int:
    return os.stat(path).st_dev


def run_images(cfg: RunConfig) -> tuple[list[Path], list[str], list[str]]:
    """(images to run, names of unlabelled images, labels without an image): the images of
    ``data_dir`` matched against ``label_file``; a mismatch stops here, before any work,
    unless ``allow_label_mismatch`` (then only labelled images run)."""
    images = data.list_images(cfg.data_dir, cfg.max_images)
    labels = data.read_labels(cfg.label_file)
    matched = data.match_labels(images, labels)
    missing = matched.missing_images if not cfg.max_images else []
    problems = []
    if matched.unlabelled:
        names = ", ".join(p.name for p in matched.unlabelled[:5])
        problems.append(f"{len(matched.unlabelled)} of {len(images)} image(s) in {cfg.data_dir} have "
                        f"no label in {cfg.label_file}, e.g. {names}")
    if missing:
        problems.append(f"{len(missing)} label(s) in {cfg.label_file} have no image in "
                        f"{cfg.data_dir}, e.g. {', '.join(missing[:5])}")
    if problems and not cfg.allow_label_mismatch:
        raise DataError("images and labels do not match; stopped before inference:\n  - "
                             + "\n  - ".join(problems) + "\nUse the val_label.txt that belongs to "
                             "these images, or set allow_label_mismatch: true to evaluate only the "
                             "images that have labels (the report then shows these counts).")
    if not matched.images:
        raise DataError(f"{cfg.data_dir}: no image has a label in {cfg.label_file}")
    return matched.images, [p.name for p in matched.unlabelled], missing
