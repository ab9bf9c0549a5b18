"""Generate a synthetic ImageNet-validation-sized set: JPEGs + val_label.txt.

    .venv/bin/python benchmarks/synthetic_imagenet.py OUT_DIR [--images 50000] [--unique 2000]

Sizes are drawn like ImageNet val's (most images 500 px on the long side: 500x375, 375x500,
500x333, 500x500 ...; some smaller; a few large ones), content is photo-like (smooth colour
gradients, soft blobs, edges and sensor-like noise) so JPEG decoding and resizing cost what
real photos cost; files are ILSVRC2012_val_XXXXXXXX.JPEG (quality 90, 4:2:0 chroma like
most camera JPEGs).  Labels are random (0..999): the set is for timing, not for accuracy.
Deterministic for a given --seed.  Drawing a photo-like image costs ~35 ms, so only
--unique images are drawn; the rest are byte copies of them under their own names (every
file is still read and decoded in full, which is what the pipeline's timing depends on).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# (width, height, weight): a coarse picture of ImageNet val's size distribution.
SIZES = [(500, 375, 45), (375, 500, 15), (500, 333, 12), (333, 500, 4), (500, 500, 5),
         (500, 400, 4), (400, 500, 2), (500, 281, 3), (640, 480, 2), (300, 225, 3),
         (250, 187, 1), (1024, 768, 2), (1600, 1200, 1), (2000, 1333, 1)]


def size_for(rng: np.random.Generator) -> tuple[int, int]:
    w = np.array([s[2] for s in SIZES], float)
    w, h, _ = SIZES[rng.choice(len(SIZES), p=w / w.sum())]
    jitter = rng.integers(-12, 13)
    return max(64, w + jitter), max(64, h + (jitter * h) // max(w, 1))


def photo(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        a, b, d = rng.uniform(-1, 1, 3)
        base[..., c] = 128 + 90 * np.sin(a * xx / w * 3 + b * yy / h * 3 + d * 6)
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(rng.integers(4, 12)):
        x0, y0 = rng.integers(0, w), rng.integers(0, h)
        r = rng.integers(min(w, h) // 12, min(w, h) // 3)
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        draw.ellipse([x0 - r, y0 - r, x0 + r, y0 + r], fill=colour)
    for _ in range(rng.integers(2, 6)):
        pts = [tuple(int(v) for v in (rng.integers(0, w), rng.integers(0, h))) for _ in range(2)]
        draw.line(pts, fill=tuple(int(v) for v in rng.integers(0, 256, 3)),
                  width=int(rng.integers(2, 9)))
    img = img.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(1.0, 3.0))))
    noise = rng.normal(0, 6, (h, w, 3)).astype(np.float32)
    return Image.fromarray(np.clip(np.asarray(img, np.float32) + noise, 0, 255).astype(np.uint8))


def make_one(args) -> None:
    out, idx, seed = args
    rng = np.random.default_rng([seed, idx])
    w, h = size_for(rng)
    path = Path(out) / f"ILSVRC2012_val_{idx:08d}.JPEG"
    if not path.exists():
        photo(rng, w, h).save(path, format="JPEG", quality=90, subsampling=2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--images", type=int, default=50000)
    ap.add_argument("--unique", type=int, default=2000, help="distinct images drawn (0: all)")
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out = Path(args.out_dir)
    (out / "val").mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    unique = min(args.unique or args.images, args.images)
    jobs = [(str(out / "val"), i, args.seed) for i in range(1, unique + 1)]
    with ProcessPoolExecutor(args.workers or os.cpu_count()) as pool:
        list(pool.map(make_one, jobs, chunksize=16))
    rng = np.random.default_rng(args.seed)
    labels = rng.integers(0, 1000, args.images)
    for i in range(unique + 1, args.images + 1):
        dst = out / "val" / f"ILSVRC2012_val_{i:08d}.JPEG"
        if not dst.exists():
            shutil.copyfile(out / "val" / f"ILSVRC2012_val_{(i - 1) % unique + 1:08d}.JPEG", dst)
    lines = [f"ILSVRC2012_val_{i:08d}.JPEG {c}" for i, c in enumerate(labels, 1)]
    (out / "val_label.txt").write_text("\n".join(lines) + "\n")
    size = sum(p.stat().st_size for p in (out / "val").iterdir())
    print(f"{args.images} images, {size / 2**30:.2f} GiB, in {time.time() - t0:.0f} s -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
