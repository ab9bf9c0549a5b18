"""Test JPEGs of the kinds a recipe's preprocessing meets, made here (none is stored in the
repository): chroma subsampling 4:2:0 and 4:4:4, progressive, grayscale, CMYK, a shorter side
of exactly 256 (no resize), one under 224 (upscaled), portrait, a size whose crop offset is
a half (``round`` to even), and an EXIF orientation 6 JPEG (OpenCV turns it, PIL does not)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# kind: (width, height as stored, PIL mode, save options)
KINDS = {
    "420": (500, 375, "RGB", {"subsampling": 2, "quality": 85}),
    "444": (500, 375, "RGB", {"subsampling": 0, "quality": 92}),
    "progressive": (480, 360, "RGB", {"progressive": True, "quality": 90}),
    "gray": (500, 333, "L", {"quality": 90}),
    "cmyk": (333, 500, "CMYK", {"quality": 90}),
    "short256": (384, 256, "RGB", {"quality": 90}),
    "small": (200, 150, "RGB", {"quality": 90}),
    "portrait": (375, 500, "RGB", {"quality": 90}),
    "half_offset": (411, 257, "RGB", {"quality": 90}),
    "exif6": (500, 375, "RGB", {"quality": 90}),
}
ORIENTATION = 0x0112   # the EXIF tag


def picture(width: int, height: int, seed: int = 0) -> np.ndarray:
    """uint8 RGB ``[height, width, 3]``: gradients, hard edges, coloured blocks and noise, so
    resampling, chroma upsampling and the IDCT all show in the bytes."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.stack([255 * x / max(width - 1, 1), 255 * y / max(height - 1, 1),
                    127.5 + 127.5 * np.sin((x + 2 * y) / 9.0)], axis=-1)
    img[(x // 37 + y // 29) % 2 == 0] *= 0.55                  # a checkerboard of edges
    img[height // 3: height // 2, width // 4: width // 2] = (230, 20, 60)   # saturated red
    img += rng.normal(0, 18, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def make(kind: str, folder: str | Path, name: str | None = None) -> Path:
    """One JPEG of ``kind`` (a key of :data:`KINDS`) in ``folder``; returns its path."""
    width, height, mode, options = KINDS[kind]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name or f"k_{kind}.JPEG")
    img = Image.fromarray(picture(width, height, seed=len(kind) * 7 + width)).convert(mode)
    if kind == "exif6":
        exif = Image.Exif()
        exif[ORIENTATION] = 6       # "rotate 90 CW to display": cv2.imread applies it
        options = {**options, "exif": exif}
    img.save(path, format="JPEG", **options)
    return path


def make_all(folder: str | Path, kinds=tuple(KINDS)) -> list[Path]:
    """Every kind in ``folder`` (``k_<kind>.JPEG``)."""
    return [make(k, folder) for k in kinds]
