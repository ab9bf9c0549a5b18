"""Where accuracy goes: the int8 model of a run (built once, cached by its calibration hash)
and the precision ladder, one row per step from the framework's float pipeline to the NPU,
each measured on the run's images and compared with row b, the recipe's fp32 path (the run's
own accuracy result, read back, never recomputed).

=====  ==================================================================================
step   what produced it
=====  ==================================================================================
a      torchvision's own float pipeline from the PIL image (:mod:`zoorepro.recipe.ladder`)
b      the run's accuracy result: uint8 ``.bin`` + AIPP in fp32 (what the report scores)
c      AIPP's output rounded to fp16, the network in fp32 (ONNX Runtime)
d      the network in fp16 (weights and activations), as ATC's ``force_fp16``
e      int8: ONNX Runtime QDQ static quantization (:mod:`zoorepro.recipe.quantize`)
f      the NPU, when its results are ingested (:mod:`zoorepro.ascend.ingest`)
=====  ==================================================================================

The stages call :func:`int8_model` and :func:`measure` with what they need (the run's
``.bin`` files, its backends' artifacts); nothing here runs a stage.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from zoorepro import backends as backends_mod
from zoorepro.backends import bench
from zoorepro.errors import ZooreproError
from zoorepro.files import atomic_write_text
from zoorepro.outputs import read_prediction
from zoorepro.recipe import aipp as aipp_mod
from zoorepro.recipe import data, ladder, preprocess, quantize
from zoorepro.run import records
from zoorepro.run.folder import Run

LADDER_CSV = "ladder.csv"
STEPS = ("a", "b", "c", "d", "e", "f")
NAMES = {
    "a": "framework fp32 (torchvision transforms)",
    "b": "recipe fp32 (uint8 .bin + AIPP)",
    "c": "AIPP output in fp16, network fp32",
    "d": "network in fp16 (as force_fp16)",
    "e": "int8 (ONNX Runtime QDQ)",
    "f": "the NPU (ais_bench)",
}


# ------------------------------------------------------------------ int8
def calibration_inputs(run: Run, files: Sequence[Path]) -> tuple[list[Path], str, int, list]:
    """(the calibration ``.bin`` files, the set in words, how many of them are also scored,
    their keys): ``calibration_images`` of ``calibration_dir`` (preprocessed here with the
    recipe's preprocessing into ``<run>/calibration/``) or, when none is given, of the run's
    own images, evenly spaced in name order."""
    cfg = run.config
    keys = [data.image_key(f.name) for f in files]
    if not cfg.calibration_dir:
        idx = quantize.select_calibration(keys, cfg.calibration_images)
        chosen = [keys[i] for i in idx]
        said = (f"{len(idx)} of the run's {len(keys)} images, evenly spaced in name order; "
                f"they are also scored (no calibration_dir was given)")
        return [files[i] for i in idx], said, len(idx), chosen
    spec = cfg.recipe_spec.preprocess
    images = data.list_images(cfg.calibration_dir, 0, spec.layout, spec.extensions)
    if not images:
        raise ZooreproError(f"calibration_dir {cfg.calibration_dir}: no images found; give a "
                            f"folder of JPEGs laid out as the recipe's ({spec.layout})")
    idx = quantize.select_calibration([data.image_key(p.name) for p in images],
                                      cfg.calibration_images)
    images = [images[i] for i in idx]
    out = run.root / "calibration"
    result = preprocess.preprocess_folder(images, out, spec, cfg.workers, progress=False)
    if result.failed:
        raise ZooreproError(f"calibration_dir {cfg.calibration_dir}: "
                            + preprocess.failure_message(result))
    chosen = [data.image_key(p.name) for p in images]
    scored = len(set(chosen) & set(keys))
    said = (f"{len(images)} images of {cfg.calibration_dir}, evenly spaced in name order; "
            f"{scored} of them share a name with a scored image")
    return [preprocess.bin_path_for(p, out) for p in images], said, scored, chosen


def int8_model(run: Run, files: Sequence[Path], aipp_onnx: str) -> records.QuantizeRecord:
    """The run's int8 AIPP model, built on first use and kept (``records/quantize.json``);
    later calls get the same model back while its calibration hash holds."""
    inputs, said, scored, keys = calibration_inputs(run, files)
    shape = aipp_mod.load(run.config.aipp_config).input_shape
    if run.has(records.QuantizeRecord):
        rec = run.read(records.QuantizeRecord)
        digest = quantize.calibration_hash(aipp_onnx, inputs)
        if (rec.calibration_sha256 == digest and Path(rec.model).is_file()
                and data.sha256_file(rec.model) == rec.model_sha256):
            return rec
        if _ran_int8(run):      # the results came from that model: never swap it under them
            raise ZooreproError(
                f"{run.root}: this run's int8 results came from {rec.model} (calibration "
                f"sha256 {rec.calibration_sha256[:12]}, model sha256 {rec.model_sha256[:12]}), "
                f"which no longer matches (calibration now {digest[:12]}; the model file "
                f"changed, or its inputs or ONNX Runtime did): start a new run (leave run_dir "
                f"empty)")
    built = quantize.build_int8(aipp_onnx, inputs, shape, run.models,
                                Path(aipp_onnx).stem)
    built.pop("reused", None)
    rec = records.QuantizeRecord(**built, calibration_set=said, calibration_keys=keys,
                                 calibration_scored=scored)
    run.write(rec)
    return rec


# ------------------------------------------------------------------ the ladder
def _base_backend(run: Run) -> str | None:
    """The backend whose accuracy result is row b: onnxruntime on the CPU (rows c-e's
    engine) when it ran the recipe's fp32 path, else the first portable backend that did."""
    if not run.has(records.InferRecord):
        return None
    entries = run.read(records.InferRecord).entries
    fp32 = [name for name, e in entries.items() if e.status == "ok"
            and (e.precision or "fp32") == "fp32" and not backends_mod.runs_on_npu(name)]
    # rows c-e run ONNX Runtime on the CPU: row b from the same engine when the run has it
    same = [n for n in fp32 if n == "onnxruntime" and str(entries[n].device).startswith("cpu")]
    return (same or fp32 or [None])[0]


def _ran_int8(run: Run) -> bool:
    return run.has(records.InferRecord) and any(
        e.status == "ok" and e.precision == "int8"
        for e in run.read(records.InferRecord).entries.values())


def result_logits(folder: str | Path, keys: Sequence[str]) -> np.ndarray:
    """The logits of ``keys`` read back from an ais_bench-layout result folder."""
    from zoorepro.recipe import evaluate
    found, _ = evaluate.list_result_folder(folder)
    missing = [k for k in keys if k not in found]
    if missing:
        raise ZooreproError(f"{folder}: no output for {len(missing)} of the ladder's images, "
                            f"e.g. {', '.join(missing[:5])}; rerun inference (03_infer)")
    return np.stack([read_prediction(found[k]).astype(np.float32, copy=False) for k in keys])


def backend_logits(backend, files: Sequence[Path], shape: tuple, batch_size: int) -> np.ndarray:
    """``backend``'s logits for the ``.bin`` ``files``, ``batch_size`` at a time."""
    out = []
    for i in range(0, len(files), batch_size):
        batch = np.stack([bench.load_input(f, shape) for f in files[i:i + batch_size]])
        out.append(np.asarray(backend.infer(batch), dtype=np.float32))
    return np.concatenate(out)


def _engine(info: dict) -> str:
    device = str(info.get("device", ""))
    where = "CPU" if device.startswith("cpu") else device
    return f"{info.get('version') or info.get('backend')} ({where})"


class _Ladder:
    """The rows measured so far, each compared with row b as it is added."""

    def __init__(self, run: Run, keys: list, labels: np.ndarray, batch: int):
        self.run, self.keys, self.labels, self.batch = run, keys, labels, batch
        self.rows: list[records.LadderRow] = []
        self.notes: list[str] = []
        self.top1: dict[str, np.ndarray] = {}
        self.base: np.ndarray | None = None
        cfg = run.config
        self.settings = bench.SweepSettings((batch,), cfg.bench_iterations,
                                            cfg.bench_min_seconds, cfg.warmup, cfg.timing)

    def add(self, step: str, how: str, compute: Callable[[], tuple], engine: str = "",
            source: str | None = None) -> None:
        """Row ``step`` from ``compute()`` -> (logits, engine, throughput point or None,
        seconds of inference over the images or None); an error that only this step meets
        is the row's reason, the others still run."""
        try:
            logits, engine, point, seconds = compute()
        except Exception as exc:     # noqa: BLE001 - onnx/onnxruntime raise their own types
            if step == "b":
                raise
            why = str(exc) if isinstance(exc, ZooreproError) else f"{type(exc).__name__}: {exc}"
            self.rows.append(records.LadderRow(step, NAMES[step], how, "not run",
                                               reason=why, engine=engine or None))
            return
        if step == "b":
            self.base = logits
        base = self.base if self.base is not None else logits
        m = ladder.compare(logits, base, self.labels, self.keys)
        note = ladder.non_finite_note(logits, self.keys, step)
        if note:
            self.notes.append(note)
        self.top1[step] = ladder.top1(logits)
        self.rows.append(records.LadderRow(
            step, NAMES[step], how, "ok", engine=engine, source=source, **m,
            throughput=point["throughput"] if point else None,
            throughput_batch=point["batch_size"] if point else None,
            throughput_definition=point["throughput_definition"] if point else None,
            throughput_validity=point["validity"] if point else None,
            seconds=None if seconds is None else round(seconds, 3)))

    def skip(self, step: str, how: str, reason: str) -> None:
        self.rows.append(records.LadderRow(step, NAMES[step], how, "not run", reason=reason))

    def point(self, backend, samples: np.ndarray) -> dict:
        return bench.measure(backend, samples, self.batch, self.settings)


def measure(run: Run, files: Sequence[Path], arts: "backends_mod.Artifacts",
            images: Sequence[Path] | None = None) -> records.LadderRecord:
    """Rows a-e of the ladder on the run's ``files`` (row b read from its accuracy result;
    ``images``: the JPEGs behind ``files``, in the same order, for row a) and the per-image
    CSV; writes ``records/ladder.json``."""
    cfg = run.config
    if not cfg.ladder:
        rec = records.LadderRecord(status="not run", reason="ladder: false in the params")
        run.write(rec)
        return rec
    labels_by_key = data.read_labels(cfg.label_file)
    pairs = [(f, data.image_key(f.name)) for f in files]
    keep = [i for i, (_, k) in enumerate(pairs) if k in labels_by_key]
    files = [files[i] for i in keep]
    images = [images[i] for i in keep] if images is not None else None
    keys = [pairs[i][1] for i in keep]
    labels = np.array([labels_by_key[k] for k in keys], dtype=np.int64)
    shape = aipp_mod.load(cfg.aipp_config).input_shape
    batch = cfg.ladder_batch_size
    lad = _Ladder(run, keys, labels, batch)
    samples = np.stack([bench.load_input(f, shape) for f in files[:bench_samples(batch)]])
    recipe = cfg.recipe_spec
    def ort(model_arts, precision="fp32"):
        return backends_mod.create("onnxruntime", model_arts, device="cpu",
                                   threads=cfg.threads, precision=precision)

    def on_backend(make):
        def compute():
            be = make()
            try:
                t0 = time.perf_counter()        # the inference alone, as the accuracy run's
                logits = backend_logits(be, files, shape, batch)
                seconds = time.perf_counter() - t0
                return logits, _engine(be.info()), lad.point(be, samples), seconds
            finally:
                be.close()
        return compute

    # b first: every other row is compared with it
    base = _base_backend(run)
    if base is not None:
        entry = run.read(records.InferRecord).entries[base]
        cpu_ort = base == "onnxruntime" and str(entry.device).startswith("cpu")

        def row_b():
            logits = result_logits(entry.result_dir, keys)
            be = ort(arts)       # its img/s: the fp32 AIPP model beside rows c-e's
            try:
                if not cpu_ort:  # rows c-e run here: how far this engine is from row b's
                    lad.notes.append(engine_note(base, entry.device, logits,
                                                 backend_logits(be, files, shape, batch)))
                return logits, _engine(entry.__dict__), lad.point(be, samples), None
            finally:
                be.close()
        lad.add("b", f"the run's accuracy result ({base}, results/{base}): the recipe's "
                     f"uint8 .bin and AIPP in fp32, as scored above; its img/s: the fp32 AIPP "
                     f"model on ONNX Runtime, timed as rows c-e", row_b,
                source=entry.result_dir)
        check_row_b(run, base, lad.rows[-1])
    else:
        lad.add("b", "the recipe's uint8 .bin and AIPP in fp32 on ONNX Runtime (no backend "
                     "of the run ran fp32: computed here)", on_backend(lambda: ort(arts)))
    if lad.base is None:
        raise ZooreproError("the ladder needs row b (the recipe's fp32 path): "
                            + (lad.rows[-1].reason or "not run"))
    if images is None or not cfg.weights:
        lad.skip("a", ladder.framework_how(recipe),
                 "no weights file (.pth): the run was given onnx_model, and the framework's "
                 "pipeline runs the weights in torch" if not cfg.weights else
                 "the run's JPEGs are not where its dataset record says (or have changed "
                 "since preprocessing): row a reads them")
    else:
        def row_a():
            t0 = time.perf_counter()
            t_logits = ladder.framework_logits(recipe, cfg.weights, images, batch, cfg.threads)
            return t_logits, ladder.framework_engine(), None, time.perf_counter() - t0
        lad.add("a", ladder.framework_how(recipe), row_a)
    c_model = run.models / (Path(arts.aipp_onnx).stem + "_fp16_aipp_output.onnx")
    lad.add("c", ladder.FP16_AIPP_HOW, on_backend(lambda: ort(backends_mod.Artifacts(
        aipp_onnx=str(ladder.fp16_aipp_model(arts.aipp_onnx, c_model))))))
    d_model = run.models / (Path(arts.aipp_onnx).stem + "_fp16_network.onnx")
    lad.add("d", ladder.FP16_HOW, on_backend(lambda: ort(backends_mod.Artifacts(
        aipp_onnx=str(ladder.fp16_network_model(arts.aipp_onnx, d_model))))))

    def int8_arts():         # the report shows its calibration (records/quantize.json)
        q = int8_model(run, files, arts.aipp_onnx)
        return backends_mod.Artifacts(aipp_onnx=arts.aipp_onnx, int8_onnx=q.model)
    lad.add("e", quantize.method_sentence(), on_backend(lambda: ort(int8_arts(), "int8")))
    check_row_e(run, lad.rows[-1], lad.notes)
    npu = [n for n, e in (run.read(records.InferRecord).entries.items()
                          if run.has(records.InferRecord) else ())
           if e.status == "ok" and backends_mod.runs_on_npu(n)]
    if npu:
        entry_f = run.read(records.InferRecord).entries[npu[0]]
        lad.add("f", f"the run's own {npu[0]} accuracy result on the NPU (results/{npu[0]}): "
                     f"the .om models ATC built, precision {entry_f.precision or '?'}",
                lambda: (result_logits(entry_f.result_dir, keys), _engine(entry_f.__dict__),
                         _bench_point(run, npu[0], batch), None), source=entry_f.result_dir)
    else:
        lad.skip("f", "the NPU's outputs of the same images", "no NPU ran in this run: "
                 "zoorepro ingest ... --ladder-from <this run> adds the NPU's results as row f")
    csv_text = ladder.ladder_csv(keys, labels, lad.top1, base="b")
    atomic_write_text(run.root / LADDER_CSV, csv_text)
    rows = sorted(lad.rows, key=lambda r: STEPS.index(r.step))
    rec = records.LadderRecord(status="ok", images=len(keys), batch_size=batch, rows=rows,
                               csv=LADDER_CSV, accuracy_seconds=_accuracy_seconds(run, base),
                               notes=lad.notes)
    run.write(rec)
    return rec


def engine_note(base: str, device, theirs: np.ndarray, ours: np.ndarray) -> str:
    """How far ONNX Runtime on the CPU (rows c-e's engine) is from row b's backend."""
    same = int((ladder.top1(theirs) == ladder.top1(ours)).sum())
    return (f"row b is {base}'s result ({device}); rows c-e run ONNX Runtime on the CPU, whose "
            f"fp32 AIPP model agrees with it on the top-1 of {same} of {len(ours)} images (max "
            f"|Δ logit| {float(np.abs(theirs - ours).max()):.3g}): their differences from "
            f"row b include that engine difference")


def check_row_b(run: Run, base: str, row: records.LadderRow) -> None:
    """Row b is the run's scored result: its top-1..top-5 equal the accuracy record's, or
    the ladder stops (read from another folder, or the results changed since scoring)."""
    acc = run.read(records.AccuracyRecord).entries.get(base) \
        if run.has(records.AccuracyRecord) else None
    if row.status != "ok" or acc is None or acc.status != "ok":
        return
    ours = [getattr(row, f"top{k}") for k in range(1, 6)]
    scored = [getattr(acc, f"top{k}") for k in range(1, 6)]
    if ours != scored or row.images != acc.images:
        raise ZooreproError(
            f"{row.source}: row b (top-1..5 {ours} on {row.images} images) differs from the "
            f"accuracy record's {base} ({scored} on {acc.images}): the result folder changed "
            f"after scoring; start a new run (leave run_dir empty)")


def check_row_e(run: Run, row: records.LadderRow, notes: list) -> None:
    """A run whose accuracy result is the int8 model's: row e, the same model on the same
    images, must score the same (a difference is named, it is batch-dependent kernels)."""
    if row.status != "ok" or not run.has(records.AccuracyRecord) or not _ran_int8(run):
        return
    for name, e in run.read(records.InferRecord).entries.items():
        acc = run.read(records.AccuracyRecord).entries.get(name)
        if e.precision == "int8" and acc is not None and acc.status == "ok":
            ours = [getattr(row, f"top{k}") for k in range(1, 6)]
            scored = [getattr(acc, f"top{k}") for k in range(1, 6)]
            if ours != scored:
                notes.append(f"row e (top-1..5 {ours}, batch {row.throughput_batch}) differs "
                             f"from the run's int8 accuracy result ({name}: {scored}, batch "
                             f"{acc.batch_size}): the same model gives other scores at "
                             f"another batch size")


def _bench_point(run: Run, backend: str, batch: int) -> dict | None:
    """The run's own sweep point of ``backend`` at ``batch`` (an NPU's, from ais_bench)."""
    if not run.has(records.BenchRecord):
        return None
    rows = [r for r in run.read(records.BenchRecord).records
            if r.backend == backend and r.batch_size == batch]
    if not rows:
        return None
    r = rows[0]
    return {"throughput": r.throughput, "batch_size": r.batch_size,
            "throughput_definition": r.throughput_definition, "validity": r.validity}


def bench_samples(batch: int) -> int:
    return max(batch, 16)


def _accuracy_seconds(run: Run, base: str | None) -> float | None:
    """The accuracy run's own time (images / its end-to-end img/s), for scale."""
    if base is None or not run.has(records.AccuracyRecord):
        return None
    entry = run.read(records.InferRecord).entries[base]
    acc = run.read(records.AccuracyRecord).entries.get(base)
    if not entry.e2e_throughput or acc is None or not acc.images:
        return None
    return round(acc.images / entry.e2e_throughput, 3)
