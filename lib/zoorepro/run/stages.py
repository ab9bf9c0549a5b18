"""The recipe's stages, declared once: preprocess -> export (+ ATC) -> infer -> evaluate.

Each :class:`Stage` names its notebook, the record that says it is done and the stages it
requires; ``run(run)`` reads the run's config, does the work and writes that record.
:func:`ensure` runs a stage only when its record is missing, after what it requires, and
returns the names of the stages it had to run (a notebook opened alone says so).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from zoorepro.recipe import aipp as aipp_mod
from zoorepro.ascend import atc
from zoorepro.backends import bench
from zoorepro.recipe import data, evaluate, export, preprocess, weights
from zoorepro.run import precision as precision_mod
from zoorepro.run import records
from zoorepro import backends as backends_mod
from zoorepro.ascend.aisformat import AIS_BENCH_DEFINITION, result_dirname, summary_path
from zoorepro.errors import AisBenchError, ConfigError, DataError, NoBackendRan
from zoorepro.files import atomic_copy, atomic_write_json, atomic_write_text
from zoorepro.recipe.inputs import check_free_space, run_images
from zoorepro.run.folder import Run

PARITY_IMAGES = 16
SWEEP_SAMPLES = 64


class Executor(Protocol):
    """Where a sharded run's work runs (``shards`` > 1): built by the caller, e.g.
    :func:`zoorepro.scale.shards.executor`, and passed in; the stages never import it."""

    def preprocess_executor(self):
        """A ``concurrent.futures``-like executor for :func:`preprocess.preprocess_folder`."""

    def run_accuracy(self, name: str, backend, job, arts) -> dict:
        """The accuracy run of ``backend`` over ``job`` in shards; returns its summary."""


def _check_executor(run: Run, executor) -> None:
    """Shards asked for and nowhere to run them: refused, never run unsharded in silence."""
    if run.config.shards > 1 and executor is None:
        raise ConfigError(f"shards: {run.config.shards} needs the shards' executor: run with "
                          f"'zoorepro run', or pass executor=zoorepro.scale.shards.executor(run)")


@dataclass(frozen=True)
class Stage:
    name: str
    notebook: str
    record: type
    requires: tuple
    run: Callable[..., object]     # run(run, executor=None)
    keys: tuple = ()          # the parameters this stage's notebook shows


COMMON_KEYS = ("name", "recipe", "output_root", "run_dir")


# ------------------------------------------------------------------ 1. preprocess
def run_preprocess(run: Run, progress: bool = True,
                   executor: Executor | None = None) -> records.PreprocessRecord:
    cfg = run.config
    _check_executor(run, executor)
    images, unlabelled, missing = run_images(cfg)
    out = run.bin_dir
    spec = cfg.recipe_spec.preprocess
    check_free_space(out, images, spec, run.results, len(cfg.backends), cfg.outfmt)
    # sharded: Dask tasks decode and write, the outcomes are tallied here as unsharded
    pool = executor.preprocess_executor() if executor is not None else None
    result = preprocess.preprocess_folder(images, out, spec, cfg.workers, progress=progress,
                                          executor=pool)
    record = records.PreprocessRecord(**result.to_dict())
    run.write(record)
    if result.failed:
        raise DataError(preprocess.failure_message(result))
    run.write(records.DatasetRecord(
        data_dir=cfg.data_dir, images=len(images),
        image_list_sha256=data.image_list_hash(images),
        label_file=cfg.label_file, label_file_sha256=data.sha256_file(cfg.label_file),
        labels_without_image=len(missing), labels_without_image_examples=missing[:20],
        unlabelled_images=len(unlabelled), unlabelled_examples=unlabelled[:20],
        label_mismatch_allowed=cfg.allow_label_mismatch, max_images=cfg.max_images,
        bin_dir=str(out), keys=[data.image_key(p.name) for p in images]))
    return record


def run_inputs(run: Run) -> list[Path]:
    """This run's ``.bin`` files, in image order: only its own images, also when ``bin_dir``
    is shared with other runs."""
    ensure(run, "preprocess")
    folder = run.bin_dir
    files = [folder / f"{k}.bin" for k in run.read(records.DatasetRecord).keys]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise DataError(f"{folder}: {len(missing)} of this run's .bin files are missing, e.g. "
                        f"{', '.join(missing[:5])}; rerun preprocessing (01_preprocess)")
    return files


def sample_inputs(run: Run, n: int) -> np.ndarray:
    a = aipp_mod.load(run.config.aipp_config)
    return np.stack([bench.load_input(f, a.input_shape) for f in run_inputs(run)[:n]])


# ------------------------------------------------------------------ 2. export
def run_export(run: Run, executor: Executor | None = None) -> records.ExportRecord:
    """The export stage: the models, ATC (:func:`run_atc`), then the export record, its
    done-marker, last (interrupted before it, the stage runs again)."""
    ensure(run, "preprocess", executor)
    record = export_record(run)
    run_atc(run, record)
    run.write(record)
    return record


def export_record(run: Run) -> records.ExportRecord:
    """The ONNX and AIPP models made, and their record (not written: the caller writes it,
    last, as the export stage's done-marker)."""
    cfg = run.config
    ensure(run, "preprocess")
    a = aipp_mod.load(cfg.aipp_config)
    recipe = cfg.recipe_spec
    run.models.mkdir(parents=True, exist_ok=True)
    if cfg.onnx_model:
        onnx_path = Path(cfg.onnx_model)
    else:
        onnx_path = export.export_onnx(recipe, cfg.weights, run.models / export.onnx_name(recipe),
                                       cfg.opset)
    fused = export.build_aipp_model(recipe, onnx_path, a,
                                    run.models / export.aipp_onnx_name(recipe))
    has_weights = bool(cfg.weights) and os.path.isfile(cfg.weights)
    record = records.ExportRecord(
        onnx=str(onnx_path), onnx_sha256=data.sha256_file(onnx_path),
        aipp_onnx=str(fused), aipp_onnx_sha256=data.sha256_file(fused),
        weights=cfg.weights if has_weights else None,
        weights_sha256=data.sha256_file(cfg.weights) if has_weights else None,
        opset=cfg.opset, aipp=a.to_dict(), aipp_config_sha256=data.sha256_file(cfg.aipp_config),
        weights_notes=(weights.dtype_notes(cfg.weights) or None) if has_weights else None)
    if has_weights:
        record.parity = export.parity(recipe, cfg.weights, onnx_path, fused, a,
                                      sample_inputs(run, PARITY_IMAGES)).to_dict()
    else:
        record.parity_not_run = "no weights file: ONNX given directly, nothing to compare with"
    return record


def run_atc(run: Run, exp: records.ExportRecord | None = None) -> records.AtcRecord:
    """ATC for every batch size when ``atc`` is on PATH; otherwise the exact commands, not run.
    ``exp``: the export record (by default the run's, exporting first when it is missing).
    Done once: a run that has ``atc.json`` gets it back (the export stage ran ATC)."""
    if run.has(records.AtcRecord):
        return run.read(records.AtcRecord)
    cfg = run.config
    exp = exp or ensure_record(run, "export")
    soc = cfg.soc_version or atc.detect_soc_version()
    sizes = cfg.om_batch_sizes
    commands = [atc.shell_line(atc.atc_command(cfg.recipe_spec, exp.onnx, bs,
                                               soc or atc.SOC_PLACEHOLDER, cfg.aipp_config,
                                               str(run.models), cfg.atc_extra_args))
                for bs in sizes]
    record = records.AtcRecord(status="ok", soc_version=soc, commands=commands)
    if not atc.available():
        record.status, record.reason = "not run", ("atc is not on PATH here (CANN toolkit not "
                                                   "installed or set_env.sh not sourced)")
    elif not soc:
        record.status, record.reason = "not run", ("soc_version unknown: set soc_version in "
                                                   "params (e.g. Ascend310P3) or make npu-smi "
                                                   "available")
    else:
        record.models = atc.build_all(cfg.recipe_spec, exp.onnx, sizes, soc, cfg.aipp_config,
                                      run.models, cfg.atc_extra_args)
    run.write(record)
    return record


# ------------------------------------------------------------------ 3. infer
def artifacts(run: Run) -> backends_mod.Artifacts:
    cfg = run.config
    exp = ensure_record(run, "export")
    om_models = {}
    if any(backends_mod.needs_om(name) for name in cfg.backends):
        a = run.read(records.AtcRecord) if run.has(records.AtcRecord) else run_atc(run)
        om_models = {m["batch_size"]: m["om"] for m in a.models or []}
    return backends_mod.Artifacts(aipp_onnx=exp.aipp_onnx, weights=cfg.weights,
                                  aipp_config=cfg.aipp_config, om_models=om_models,
                                  recipe=cfg.recipe_spec, atc_extra_args=cfg.atc_extra_args,
                                  int8_onnx=int8_model(run, exp).model
                                  if cfg.precision == "int8" else "")


def int8_model(run: Run, exp: records.ExportRecord | None = None) -> records.QuantizeRecord:
    """The run's int8 AIPP model (built on first use, then kept while its calibration hash
    holds: :func:`zoorepro.run.precision.int8_model`)."""
    exp = exp or ensure_record(run, "export")
    return precision_mod.int8_model(run, run_inputs(run), exp.aipp_onnx)


def create_backends(run: Run) -> tuple[dict, dict]:
    """({name: backend}, {name: not-run entry}) for the config's backends."""
    cfg = run.config
    arts = artifacts(run)
    made, skipped = {}, {}
    for name in cfg.backends:
        refused = backends_mod.refuses(name, cfg.precision)
        if refused:
            skipped[name] = records.InferEntry(status="not run", reason=refused)
            continue
        try:
            made[name] = backends_mod.create(name, arts, cfg.device, cfg.threads,
                                             device_id=cfg.device_id, precision=cfg.precision)
        except backends_mod.BackendUnavailable as exc:
            skipped[name] = records.InferEntry(status="not run", reason=str(exc))
    return made, skipped


def no_backend_message(skipped: dict) -> str:
    return ("no backend produced a result:\n" +
            "\n".join(f"  - {name}: {st.reason}" for name, st in skipped.items()))


def sweep_backends(run: Run, made: dict) -> list:
    """The batch-size sweep of every backend; writes records/bench.json and bench.csv."""
    cfg = run.config
    files = run_inputs(run)
    samples = sample_inputs(run, SWEEP_SAMPLES)
    settings = bench.SweepSettings(tuple(cfg.batch_sizes), cfg.bench_iterations,
                                   cfg.bench_min_seconds, cfg.warmup, cfg.timing)
    rows, npu_only = [], bool(made)
    for name, backend in made.items():
        job = backends_mod.SweepJob(samples, settings, files, cfg.outfmt, cfg.infer_streams,
                                    run.results / name)
        npu_only = npu_only and backends_mod.runs_on_npu(name)
        rows.extend(backend.run_sweep(job))
    run.write(records.BenchRecord(definition=AIS_BENCH_DEFINITION if npu_only
                                  else bench.THROUGHPUT_DEFINITION, records=rows))
    return rows


def run_bench(run: Run) -> tuple[list, dict]:
    """``zoorepro bench``: preprocessing and export when missing, then the sweep only.
    Returns (bench rows, {backend: not-run entry}); no backend at all is an error."""
    ensure(run, "preprocess")
    made, skipped = create_backends(run)
    if not made:
        raise NoBackendRan(no_backend_message(skipped))
    try:
        rows = sweep_backends(run, made)
    except BaseException:
        close_backends(made)          # never hides the error that stopped the sweep
        raise
    problems = close_backends(made)
    if problems:
        raise AisBenchError("the sweep finished, but releasing the backends failed: "
                            + "; ".join(problems))
    return rows, skipped


def close_backends(made: dict) -> list[str]:
    """Close every backend, even when one fails; returns what failed."""
    problems = []
    for name, backend in made.items():
        try:
            backend.close()
        except Exception as exc:      # noqa: BLE001 - reported, the others still close
            problems.append(f"{name}: {exc}")
    return problems


def run_infer(run: Run, progress: bool = True,
              executor: Executor | None = None) -> records.InferRecord:
    """Accuracy run (ais_bench layout) and throughput sweep for every backend; sharded, the
    accuracy run is ``executor``'s (Dask tasks writing into the same folder)."""
    cfg = run.config
    _check_executor(run, executor)
    ensure(run, "preprocess", executor)
    made, status = create_backends(run)
    try:
        files, shape = run_inputs(run), aipp_mod.load(cfg.aipp_config).input_shape
        for name, backend in made.items():
            out = run.results / name
            job = backends_mod.AccuracyJob(run.bin_dir, files, out, cfg.accuracy_batch_size,
                                           shape, cfg.outfmt, cfg.warmup, progress,
                                           cfg.infer_streams, scratch=run.root / "inputs")
            if executor is not None:
                summary = executor.run_accuracy(name, backend, job, artifacts(run))
            else:
                summary = backend.run_accuracy(job)
            info = backend.info()
            dirname = result_dirname(cfg.accuracy_batch_size)
            status[name] = records.InferEntry(
                status="ok", **info, result_dir=str(out / dirname),
                summary=str(summary_path(out, dirname)),
                accuracy_batch_size=cfg.accuracy_batch_size,
                compute_throughput=summary["throughput"],
                streams=summary.get("streams", 1), stream_threads=summary.get("stream_threads"),
                throughput_definition=summary.get("throughput_definition"),
                foreign_files=summary["foreign_files"],
                other_inputs=summary.get("other_inputs", 0),
                e2e_throughput=summary["e2e_throughput"], notes=summary.get("shard_notes"))
        sweep_backends(run, made)
    except BaseException:
        close_backends(made)          # never hides the error that stopped inference
        raise
    for problem in close_backends(made):
        name = problem.split(":", 1)[0]
        status[name].notes = [*(status[name].notes or []), f"releasing the backend failed: "
                                                           f"{problem.split(': ', 1)[1]}"]
    record = records.InferRecord({name: status[name] for name in cfg.backends if name in status})
    run.write(record)
    if not made:
        raise NoBackendRan(no_backend_message(status))
    return record


# ------------------------------------------------------------------ 4. evaluate
def run_evaluate(run: Run, executor: Executor | None = None) -> records.AccuracyRecord:
    cfg = run.config
    status = ensure_record(run, "infer")
    labels = data.read_labels(cfg.label_file)
    dataset = run.read(records.DatasetRecord)
    exp = run.read(records.ExportRecord)
    out: dict = {}
    preds: dict = {}
    for name, st in status.entries.items():
        if st.status != "ok":
            out[name] = records.AccuracyEntry(status="not run", reason=st.reason or "")
            continue
        pred = evaluate.read_result_folder(st.result_dir, cfg.workers)
        preds[name] = pred
        metrics = evaluate.score(pred, labels, expected=dataset.keys)
        per_image = metrics.pop("per_image_top1")
        metrics.update(backend=name, device=st.device, batch_size=st.accuracy_batch_size,
                       weights_sha256=exp.weights_sha256, onnx_sha256=exp.onnx_sha256,
                       image_list_sha256=dataset.image_list_sha256,
                       label_file_sha256=dataset.label_file_sha256, warnings=list(pred.notes))
        entry = records.AccuracyEntry(status="ok", **metrics)
        folder = run.results / name
        evaluate.write_results(metrics, folder, cfg.recipe_spec.scoring.result_file)
        atomic_write_json(folder / "predictions.json", per_image)
        atomic_write_text(folder / "predictions.csv",
                          evaluate.predictions_csv(pred, labels, name))
        out[name] = entry
    primary = out.get(cfg.primary_backend)
    if primary is not None and primary.status == "ok":
        for fname in (cfg.recipe_spec.scoring.result_file, evaluate.METRICS_JSON):
            atomic_copy(run.results / cfg.primary_backend / fname, run.root / fname)
    record = records.AccuracyRecord(out)
    atomic_write_text(run.root / "accuracy.csv", records.accuracy_csv(record, run.root.name))
    names = list(preds)
    run.write(records.ParityRecord([{"a": x, "b": y, **evaluate.parity(preds[x], preds[y])}
                                    for i, x in enumerate(names) for y in names[i + 1:]]))
    run.write(record)         # the done-marker, last
    return record


# ------------------------------------------------------------------ 5. ladder
def run_ladder(run: Run, executor: Executor | None = None) -> records.LadderRecord:
    """Where accuracy goes (:func:`zoorepro.run.precision.measure`) on the run's images,
    after scoring: row b is the accuracy result the evaluate stage scored."""
    ensure(run, "evaluate", executor)
    files = run_inputs(run)
    images = None
    if run.config.ladder:   # row a reads the JPEGs: the very ones preprocessed, or none
        found = run_images(run.config)[0]
        by_key = {data.image_key(p.name): p for p in found}
        images = [by_key.get(data.image_key(f.name)) for f in files]
        same = data.image_list_hash(found) == run.read(records.DatasetRecord).image_list_sha256
        images = images if all(images) and same else None
    return precision_mod.measure(run, files, artifacts(run), images)


def ladder_on_images(run: Run, data_dir: str, label_file: str, max_images: int = 0,
                     output_root: str | None = None) -> Run:
    """The ladder of ``run``'s recipe, weights and settings on other images: a NEW run (a
    finished run is never changed) in ``output_root`` (by default the run's own), taken
    through every stage up to the ladder; returns it."""
    cfg = run.config.replace(data_dir=str(data_dir), label_file=str(label_file),
                             max_images=max_images, run_dir="", bin_dir="", ladder=True,
                             shards=1,     # here, in this process: no Dask executor
                             name=f"{run.config.name}-ladder",
                             output_root=str(output_root or run.root.parent))
    other = Run.create(cfg)
    ensure(other, "ladder")
    return other


# ------------------------------------------------------------------ the stages
STAGES = {s.name: s for s in (
    Stage("preprocess", "01_preprocess.ipynb", records.DatasetRecord, (), run_preprocess,
          ("data_dir", "label_file", "max_images", "allow_label_mismatch", "bin_dir", "workers",
           "backends", "outfmt")),
    Stage("export", "02_export.ipynb", records.ExportRecord, ("preprocess",), run_export,
          ("weights", "onnx_model", "aipp_config", "opset", "soc_version", "atc_extra_args",
           "batch_sizes", "accuracy_batch_size")),
    Stage("infer", "03_infer.ipynb", records.InferRecord, ("preprocess", "export"), run_infer,
          ("backends", "device", "precision", "timing", "accuracy_batch_size", "batch_sizes",
           "outfmt", "bench_iterations", "bench_min_seconds", "warmup", "threads",
           "infer_streams", "device_id")),
    Stage("evaluate", "04_evaluate.ipynb", records.AccuracyRecord, ("infer",), run_evaluate,
          ("label_file", "workers")),
    Stage("ladder", "05_ladder.ipynb", records.LadderRecord, ("evaluate",), run_ladder,
          ("ladder", "ladder_batch_size", "calibration_images", "calibration_dir", "threads",
           "bench_iterations", "bench_min_seconds", "warmup", "timing")),
)}
REPORT_NOTEBOOK = "06_report.ipynb"
REPORT_KEYS = ("reference_tolerance_pct",)
NOTEBOOKS = tuple(s.notebook for s in STAGES.values()) + (REPORT_NOTEBOOK,)


def notebook_keys(notebook: str) -> tuple:
    """The parameters a notebook shows: the common ones and its stage's."""
    own = next((s.keys for s in STAGES.values() if s.notebook == notebook), REPORT_KEYS)
    return COMMON_KEYS + tuple(k for k in own if k not in COMMON_KEYS)


def ensure(run: Run, name: str, executor: Executor | None = None) -> list[str]:
    """Run stage ``name`` (and what it requires) unless its record is there; returns the
    names of the stages that ran.  ``executor``: where a sharded run's work goes
    (:func:`zoorepro.scale.shards.executor`); the stages never import it."""
    stage = STAGES[name]
    if run.has(stage.record):
        return []
    run.check_recipe()          # a stage that runs follows the recipe the run began with
    ran = []
    for req in stage.requires:
        ran += ensure(run, req, executor)
    stage.run(run, executor=executor)
    return ran + [name]


def ensure_record(run: Run, name: str):
    """The record of stage ``name``, running the stage first when it is missing."""
    ensure(run, name)
    return run.read(STAGES[name].record)


def ensure_for_report(run: Run, executor: Executor | None = None) -> list[str]:
    """Run missing stages (standalone use) unless the run already failed or was ingested:
    then the report shows what there is."""
    if run.has(records.FailureRecord) or run.origin != "run" or run.finished:
        return []             # a finished run (one from before the ladder too) stays as it is
    return ensure(run, "ladder", executor)
