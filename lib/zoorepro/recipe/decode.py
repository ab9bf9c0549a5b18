"""One image as a recipe decodes it: an image file -> the uint8 RGB HWC pixels of its ``.bin``.

The four steps (decode, shorter side, centre crop, bytes) are described in
:mod:`zoorepro.recipe.preprocess`, which runs them over a folder; the numbers and the decoder
are the recipe's :class:`~zoorepro.recipebook.Preprocess`, passed as ``spec``.
"""
from __future__ import annotations

import os

import numpy as np
from PIL import Image

from zoorepro.errors import DataError, RecipeError  # noqa: F401  (DataError: raised below)
from zoorepro.recipebook import Preprocess

CHANNELS = 3
# the recipe's interpolation name -> Pillow's filter (the names recipebook accepts)
FILTERS = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST,
           "lanczos": Image.LANCZOS}


def resize_shorter(img: Image.Image, size: int, interpolation) -> Image.Image:
    """Shorter side to ``size`` (``interpolation``: a recipe's name or a Pillow filter)."""
    resample = FILTERS[interpolation] if isinstance(interpolation, str) else interpolation
    w, h = img.size
    if (w <= h and w == size) or (h <= w and h == size):
        return img
    if w < h:
        return img.resize((size, int(size * h / w)), resample)
    return img.resize((int(size * w / h), size), resample)


def center_crop(img: Image.Image, size: int) -> Image.Image:
    w, h = img.size
    top = int(round((h - size) / 2.0))
    left = int(round((w - size) / 2.0))
    return img.crop((left, top, left + size, top + size))


def _spec(spec) -> Preprocess:
    if not isinstance(spec, Preprocess):
        raise TypeError(f"preprocess: spec must be a recipe's Preprocess "
                        f"(recipebook.load(name).preprocess, cfg.recipe_spec.preprocess), got "
                        f"{type(spec).__name__}; pass it after the images")
    if spec.decoder == "opencv":
        opencv()   # missing: said once, before any work, not once per image
    return spec


def opencv():
    """The ``cv2`` module (imported here, when a recipe decodes with OpenCV)."""
    try:
        import cv2
    except ImportError as exc:
        raise RecipeError(f"the recipe's preprocessing decodes with OpenCV (preprocess.decoder: "
                          f"opencv in its recipe.yaml), which cannot be imported ({exc}); "
                          f"install it: pip install 'zoorepro[opencv]' "
                          f"(opencv-python-headless)") from None
    return cv2


try:  # libjpeg-turbo straight to RGB: the same pixels as PIL's decoder (tested), faster
    import simplejpeg as _simplejpeg
except ImportError:  # pragma: no cover - optional speed-up
    _simplejpeg = None


def decoder_note(spec: Preprocess) -> str:
    if spec.decoder == "opencv":
        return (f"OpenCV {opencv().__version__} (cv2.imread, BGR to RGB, as the recipe), "
                f"then PIL {spec.interpolation} resize")
    if _simplejpeg is None:
        return "PIL"
    return (f"simplejpeg {_simplejpeg.__version__} for 3-channel YCbCr JPEGs (pixels identical "
            f"to PIL's decoder, checked by the tests), PIL for everything else")


def check_pixels(width: int, height: int) -> None:
    """Pillow's decompression-bomb limit (more than twice ``Image.MAX_IMAGE_PIXELS`` is
    refused), applied from a header before any decoder allocates the pixels."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit and width * height > 2 * limit:
        raise Image.DecompressionBombError(
            f"{width}x{height} = {width * height:,} pixels exceeds the limit of "
            f"{2 * limit:,} pixels (Pillow's decompression-bomb protection); decoding it would "
            f"take {width * height * 3 / 2**30:.1f} GiB of memory")


def _fast_jpeg(data: bytes):
    """RGB pixels of a 3-channel YCbCr JPEG via simplejpeg, or None to let PIL decode."""
    if _simplejpeg is None or data[:2] != b"\xff\xd8":
        return None
    try:
        height, width, colorspace, _ = _simplejpeg.decode_jpeg_header(data)
    except ValueError:
        return None   # PIL decides and explains
    check_pixels(width, height)   # simplejpeg has no limit of its own
    try:
        if colorspace != "YCbCr":
            return None
        return _simplejpeg.decode_jpeg(data, colorspace="RGB", fastdct=False,
                                       fastupsample=False, strict=True)
    except ValueError:
        return None   # anything unusual (truncated, odd markers): PIL decides and explains


# Modes whose values do not fit 8 bits: convert("RGB") (the recipe's) clips them to 0..255.
SQUASHED_MODES = {"I;16": "16-bit", "I;16B": "16-bit", "I;16L": "16-bit", "I;16N": "16-bit",
                  "I": "32-bit integer", "F": "32-bit float"}


def conversion_note(mode: str, decoder: str = "pil") -> str:
    """What converting an image of ``mode`` to RGB did, for the report."""
    if mode in SQUASHED_MODES and decoder == "opencv":
        return (f"{mode} image converted to 8-bit RGB by OpenCV as the recipe does (its "
                f"{SQUASHED_MODES[mode]} values scaled into 0..255)")
    if mode in SQUASHED_MODES:
        return (f"{mode} image converted to RGB as the recipe does, but its "
                f"{SQUASHED_MODES[mode]} values were squashed into 0..255 (values above 255 "
                f"become 255: the input is mostly white); convert it to 8-bit RGB first if "
                f"that is not intended")
    return f"{mode} image converted to RGB (as the recipe does)"


def load_rgb(path: str | os.PathLike, spec: Preprocess,
             fast: bool = True) -> tuple[Image.Image, str, str]:
    """Decode by content (not extension) to RGB with the recipe's decoder; returns (image,
    mode, format).  ``pil`` ignores EXIF orientation, as ``open().convert('RGB')`` does
    (``fast``: simplejpeg where it gives PIL's pixels); ``opencv`` applies it, as
    ``cv2.imread`` does."""
    if spec.decoder == "opencv":
        return _load_opencv(path)
    if fast and _simplejpeg is not None:
        with open(path, "rb") as fh:
            pixels = _fast_jpeg(fh.read())
        if pixels is not None:
            return Image.fromarray(pixels, "RGB"), "RGB", "JPEG"
    with Image.open(path) as im:
        mode, fmt = im.mode, im.format or "unknown"
        return im.convert("RGB"), mode, fmt


def _load_opencv(path: str | os.PathLike) -> tuple[Image.Image, str, str]:
    """The recipe's ``cv2.imread`` -> ``cvtColor(BGR2RGB)`` -> ``Image.fromarray``; the
    header read by PIL first, for the report's mode and the pixel limit."""
    cv2 = opencv()
    mode, fmt = "", "unknown"
    try:
        with Image.open(path) as im:     # lazy: the header only
            mode, fmt = im.mode, im.format or "unknown"
            check_pixels(*im.size)
    except Image.DecompressionBombError:
        raise
    except Exception:   # PIL cannot read it: OpenCV decides, and is explained below
        pass
    if fmt == "JPEG" and not _jpeg_complete(path):
        # cv2.imread decodes a cut JPEG without a word (grey below the cut)
        raise EOFError("truncated JPEG: its data stops before the end-of-image marker")
    bgr = cv2.imread(os.fspath(path))
    if bgr is None:
        raise DataError("OpenCV cannot decode it (cv2.imread returned None): corrupt or not an "
                        "image file; replace or remove it")
    return Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)), mode, fmt


def _jpeg_complete(path: str | os.PathLike) -> bool:
    """Whether a JPEG's data reaches its end-of-image marker (after its first scan: inside
    the entropy-coded data 0xFF is always followed by 0x00 or a restart marker)."""
    with open(path, "rb") as fh:
        data = fh.read()
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xFF:           # fill byte
            i += 1
            continue
        if marker == 0xDA:           # start of scan: the EOI must follow
            return data.find(b"\xff\xd9", i + 2) >= 0
        if 0xD0 <= marker <= 0xD8 or marker == 0x01:
            i += 2
            continue
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return False


def preprocess_array(path: str | os.PathLike, spec: Preprocess, fast: bool = True) -> np.ndarray:
    """The recipe's tensor for one image: uint8 ``[crop, crop, 3]`` RGB."""
    img, _, _ = load_rgb(path, spec, fast)
    return _pixels(img, spec)


def _pixels(img: Image.Image, spec: Preprocess) -> np.ndarray:
    img = resize_shorter(img, spec.resize, spec.interpolation)
    return np.asarray(center_crop(img, spec.crop), dtype=np.uint8)


def preprocess_bytes(path: str | os.PathLike, spec: Preprocess, fast: bool = True) -> bytes:
    return preprocess_array(path, spec, fast).tobytes()
