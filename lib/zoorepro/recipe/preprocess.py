"""The recipe's preprocessing, byte for byte: an image -> raw HWC uint8 RGB ``<key>.bin``.

Every recipe does the same four steps; the numbers and the choices are the recipe's, held in
its ``recipe.yaml`` (``preprocess:``) and passed here as a
:class:`~zoorepro.recipebook.Preprocess` ``spec``:

1. decode to RGB.  ``decoder: pil``: ``Image.open().convert('RGB')``, EXIF orientation
   ignored (pixels as stored).  ``decoder: opencv``: ``cv2.imread`` (which applies EXIF
   orientation and converts grey and CMYK its own way), ``cv2.cvtColor(BGR2RGB)``, then
   ``Image.fromarray``;
2. shorter side to ``resize`` with ``interpolation`` (long side ``int(resize * long /
   short)``; the image untouched when its shorter side is already ``resize``);
3. centre crop ``crop`` x ``crop`` with offsets ``int(round((dim - crop) / 2))``;
4. the raw bytes, ``crop * crop * 3`` of them.  A recipe's ``dtype: int8`` is what upstream
   casts the same pixels to: the same bytes (tested).  No normalisation: AIPP does that.

Unlike the recipe, every image is processed in natural-sorted order, the work is spread over
processes, a finished ``.bin`` is never redone (resume: only when the same image made it
with the same preprocessing, ``spec.fingerprint()``), writes are atomic, and every failure is
reported by name with its reason.  Pillow's decompression-bomb limit is applied from the
header before any decoder runs; a write error (disk full, file too large) or a worker process
that dies stops the work and keeps what was written.
"""
from __future__ import annotations

import os
import json
import multiprocessing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from PIL import Image

from zoorepro.recipe.data import image_key
from zoorepro.errors import DataError, RecipeError, WriteError
from zoorepro.files import atomic_write_bytes, writing
from zoorepro.recipebook import Preprocess

from zoorepro.recipe.decode import (  # noqa: F401  (the image steps, re-exported)
    CHANNELS, FILTERS, SQUASHED_MODES, _fast_jpeg, _jpeg_complete, _load_opencv, _pixels,
    _spec, center_crop, check_pixels, conversion_note, decoder_note, load_rgb, opencv,
    preprocess_array, preprocess_bytes, resize_shorter)


@dataclass
class PreprocessResult:
    out_dir: str
    total: int = 0
    written: int = 0
    reused: int = 0
    failed: list = field(default_factory=list)      # [(file name, reason)]
    non_rgb: list = field(default_factory=list)     # [(file name, mode)] converted to RGB
    not_jpeg: list = field(default_factory=list)    # [(file name, format)] decoded by content
    stopped: str = ""   # why the work stopped early (disk full, a dead worker); not a record key
    decoder: str = ""   # decoder_note(spec)
    bin_bytes: int = 0  # spec.bin_bytes

    @property
    def ok(self) -> int:
        return self.written + self.reused

    def to_dict(self) -> dict:
        return {"out_dir": self.out_dir, "decoder": self.decoder, "total": self.total,
                "written": self.written, "reused": self.reused, "ok": self.ok,
                "failed": [list(x) for x in self.failed],
                "non_rgb": [list(x) for x in self.non_rgb],
                "not_jpeg": [list(x) for x in self.not_jpeg], "bin_bytes": self.bin_bytes}


def bin_path_for(image: Path, out_dir: Path) -> Path:
    return out_dir / f"{image_key(image.name)}.bin"


def describe_failure(path: str, exc: BaseException) -> str:
    """A reason a person can act on, with the exception text kept for reference."""
    from PIL import UnidentifiedImageError
    text = f"{type(exc).__name__}: {exc}"
    try:
        size = os.path.getsize(path)
    except OSError:
        size = -1
    if size == 0:
        return "empty file (0 bytes): the copy failed; copy it again or remove it"
    if isinstance(exc, Image.DecompressionBombError):
        return f"image too large: {exc}; not an ImageNet photo: remove it or shrink it"
    if isinstance(exc, (DataError, RecipeError)):   # worded for a person already
        return str(exc)
    if isinstance(exc, UnidentifiedImageError):
        return (f"not a decodable image (corrupt or not an image file); "
                f"replace or remove it [{text}]")
    if "truncated" in str(exc).lower() or isinstance(exc, (EOFError, SyntaxError)):
        return f"truncated image data (incomplete copy); copy it again [{text}]"
    return text


def _header(src: str) -> tuple[str, str]:
    try:
        with Image.open(src) as im:
            return im.mode, im.format or "unknown"
    except Exception:   # one only OpenCV reads (its .bin was made, so it decodes)
        return "", "unknown"


MANIFEST = ".zoorepro-sources.jsonl"   # in the .bin folder: which image made which .bin


def source_id(path: str | os.PathLike) -> list:
    """What identifies an image's content cheaply: absolute path, size, modification time."""
    st = os.stat(path)
    return [str(Path(path).resolve()), st.st_size, st.st_mtime_ns]


def read_manifest(out: Path) -> dict:
    """``{key: (source_id, preprocessing fingerprint)}`` of the .bin files written into
    ``out``, the last line of a key winning (a torn last line is skipped; a line without a
    fingerprint, or a key's ``"source": null`` line, vouches for nothing)."""
    entries = {}
    try:
        with open(out / MANIFEST, encoding="utf-8") as fh:
            for line in fh:
                try:
                    rec = json.loads(line)
                    entries[rec["key"]] = (rec["source"], rec.get("preprocess"))
                except (ValueError, KeyError, TypeError):
                    continue
    except FileNotFoundError:
        pass
    return entries


def _work(job: tuple[str, str, bool, Preprocess]) -> tuple[str, str, str, str]:
    """Worker, one job ``(src, dst, trusted, spec)``: returns (name, status, mode,
    format-or-reason); status in written/reused/checked/failed, or unwritable (a write error:
    the disk, not the image; stops the work).  A finished .bin is reused only when the
    manifest says this very image made it with this preprocessing; an empty ``dst`` only
    decodes (a check of the input)."""
    src, dst, trusted, spec = job
    name = os.path.basename(src)
    try:
        if trusted and os.path.exists(dst) and os.path.getsize(dst) == spec.bin_bytes:
            mode, fmt = _header(src)   # header only: keeps the report's lists complete on resume
            return name, "reused", mode, fmt
        img, mode, fmt = load_rgb(src, spec)
        pixels = _pixels(img, spec).tobytes()
        if not dst:
            return name, "checked", mode, fmt
        atomic_write_bytes(dst, pixels)
        return name, "written", mode, fmt
    except WriteError as exc:
        return name, "unwritable", "", str(exc)
    except Exception as exc:  # reported by name, never swallowed
        return name, "failed", "", describe_failure(src, exc)


def _outcomes(jobs: list, workers: int):
    """``_work`` over ``jobs`` in order, in ``workers`` processes when worth it.  A worker
    that dies (the out-of-memory killer's SIGKILL) ends the iteration with a last
    ``("", "died", "", how)`` instead of waiting forever for its images."""
    if workers == 1 or len(jobs) < 2 * workers:
        yield from map(_work, jobs)
        return
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    chunk = max(1, min(32, len(jobs) // (workers * 8)))
    pool = ProcessPoolExecutor(workers, mp_context=ctx)
    procs = []
    try:
        results = pool.map(_work, jobs, chunksize=chunk)
        procs = list((getattr(pool, "_processes", None) or {}).values())
        yield from results
    except BrokenProcessPool:
        for p in procs:
            p.join(5)
        codes = sorted({-p.exitcode for p in procs if p.exitcode and p.exitcode < 0})
        codes = [c for c in codes if c != 15] or codes   # SIGTERM: the pool ends the others
        yield "", "died", "", ", ".join(f"signal {c}" for c in codes) or "no exit status"
    finally:   # stopped early (write error, dead worker): drop the images not started
        pool.shutdown(wait=True, cancel_futures=True)


def _progress(total: int, enabled: bool):
    from zoorepro.host import progress_bar
    return progress_bar(total, "preprocess") if enabled else None


def preprocess_folder(images: Sequence[Path], out_dir: str | os.PathLike, spec: Preprocess,
                      workers: int = 0, progress: bool = True, executor=None
                      ) -> PreprocessResult:
    """Preprocess ``images`` into ``out_dir`` as the recipe's ``spec`` says; resumes (a .bin
    another image or another preprocessing made is redone), never swallows a failure.  A write
    error or a dead worker stops the work: what was written is kept, and ``failed`` says why
    and how many images were not done.  ``executor(jobs, work)``: a generator of
    ``work(job)`` for each job, in order, run elsewhere (``zoorepro.scale.shards``: Dask tasks);
    default: ``workers`` local processes."""
    spec = _spec(spec)
    out = Path(out_dir)
    with writing(out):
        out.mkdir(parents=True, exist_ok=True)
    seen: dict[str, str] = {}
    result = PreprocessResult(out_dir=str(out), total=len(images), decoder=decoder_note(spec),
                              bin_bytes=spec.bin_bytes)
    known, made = read_manifest(out), spec.fingerprint()
    jobs, ids = [], {}
    for img in images:
        key = image_key(img.name)
        if key in seen:
            result.failed.append((img.name, f"same key {key!r} as {seen[key]}: both would write "
                                            f"{key}.bin; rename or remove one"))
            continue
        seen[key] = img.name
        try:
            ids[img.name] = source_id(img)
        except OSError as exc:
            result.failed.append((img.name, f"cannot be read ({exc.strerror}); check the file"))
            continue
        jobs.append((str(img), str(bin_path_for(img, out)),
                     known.get(key) == (ids[img.name], made), spec))
    workers = workers or os.cpu_count() or 1
    bar = _progress(len(jobs), progress)
    before = len(result.failed)
    try:
        with writing(out / MANIFEST):
            manifest = open(out / MANIFEST, "a", encoding="utf-8")
        with manifest:
            def record(key, source):
                with writing(out / MANIFEST):
                    manifest.write(json.dumps({"key": key, "source": source,
                                               "preprocess": made}) + "\n")
                    manifest.flush()
            # a .bin about to be redone is vouched for by nothing first: a run stopped
            # between its write and its line never leaves an old line trusting new bytes
            for src, _, trusted, _ in jobs:
                if not trusted and image_key(src) in known:
                    record(image_key(src), None)
            outcomes = executor(jobs, _work) if executor else _outcomes(jobs, workers)
            try:
                _collect(outcomes, result, bar, lambda n: record(image_key(n), ids[n]))
            except WriteError as exc:   # the manifest beside the .bin files
                result.stopped = f"{MANIFEST} could not be written: {exc}"
            finally:
                outcomes.close()
    finally:
        if bar is not None:
            bar.close()
    if result.stopped:
        left = len(jobs) - (result.ok + len(result.failed) - before)
        result.failed.append((f"{left} image(s) not done", f"preprocessing stopped: "
                              f"{result.stopped}; the .bin files written are kept and reused "
                              f"by the next run with this bin_dir"))
    return result


def check_images(images: Sequence[Path], spec: Preprocess,
                 workers: int = 0) -> list[tuple[str, str]]:
    """Decode every image as the recipe's ``spec`` would, writing nothing: [(name, reason)] of
    those that cannot be preprocessed (a check of the input before work that stops anyway)."""
    spec = _spec(spec)
    jobs = [(str(p), "", False, spec) for p in images]
    return [(n or "(check stopped)", info if n else f"a process checking the images died ({info})")
            for n, status, _, info in _outcomes(jobs, workers or os.cpu_count() or 1)
            if status in ("failed", "died")]


def _collect(outcomes: Iterable, result: PreprocessResult, bar, record) -> None:
    """Tally ``outcomes``; a write error stops here."""
    for name, status, mode, info in outcomes:
        if status == "died":
            result.stopped = (f"a preprocessing process died (killed by {info}; the out-of-memory "
                              f"killer sends signal 9): set workers lower or free memory")
            break
        if bar is not None:
            bar.update(1)
        if status in ("failed", "unwritable"):
            result.failed.append((name, info))
            if status == "unwritable":
                result.stopped = "a .bin file could not be written: " + info
                break
        else:
            if status == "written":
                result.written += 1
                record(name)
            else:
                result.reused += 1
            if mode and mode != "RGB":
                result.non_rgb.append((name, mode))
            if info and info != "JPEG":
                result.not_jpeg.append((name, info))


def failure_message(result: PreprocessResult, limit: int = 10) -> str:
    if result.stopped:
        return (f"preprocessing stopped after {result.ok} of {result.total} image(s): "
                f"{result.stopped}.\nThe .bin files written are kept in {result.out_dir}; "
                f"fix that, then rerun with bin_dir set to that folder (finished .bin files "
                f"are reused).")
    lines = [f"{len(result.failed)} of {result.total} image(s) could not be preprocessed:"]
    lines += [f"  - {n}: {r}" for n, r in result.failed[:limit]]
    if len(result.failed) > limit:
        lines.append(f"  ... and {len(result.failed) - limit} more (see records/preprocess.json)")
    lines.append("Fix or remove these files, or set max_images, then rerun "
                 "(finished .bin files are reused).")
    return "\n".join(lines)
