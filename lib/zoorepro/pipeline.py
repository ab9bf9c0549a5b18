"""Run folders and the stages the notebooks call: preprocess -> export -> infer -> evaluate.

Each stage reads the config and the run folder, writes flat records under
``<run>/records/`` and returns what it wrote.  A stage whose inputs are missing runs the
earlier stage first, so every notebook also runs on its own.
"""
from __future__ import annotations

import datetime as _dt
import os
import shutil
import warnings
from typing import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from . import aipp as aipp_mod
from . import backends as backends_mod
from . import atc, bench, data, evaluate, export, preprocess, provenance
from .config import RunConfig
from .data import DataError
from .files import atomic_copy, atomic_write_json, atomic_write_text, read_json

NOTEBOOKS = ("01_preprocess.ipynb", "02_export.ipynb", "03_infer.ipynb", "04_evaluate.ipynb",
             "05_report.ipynb")
PARITY_IMAGES = 16
SWEEP_SAMPLES = 64


def project_root() -> Path:
    return Path(__file__).resolve().parents[2]


def notebooks_dir() -> Path:
    return project_root() / "notebooks"


@dataclass(frozen=True)
class Run:
    root: Path

    @property
    def records(self) -> Path:
        return self.root / "records"

    @property
    def models(self) -> Path:
        return self.root / "model"

    @property
    def results(self) -> Path:
        return self.root / "results"

    @property
    def notebooks(self) -> Path:
        return self.root / "notebooks"

    def record(self, name: str) -> Path:
        return self.records / f"{name}.json"

    def has(self, name: str) -> bool:
        return self.record(name).is_file()

    def read(self, name: str):
        return read_json(self.record(name))

    def write(self, name: str, obj) -> Path:
        return atomic_write_json(self.record(name), obj)


def new_run_dir(output_root: str | os.PathLike, name: str) -> Path:
    """A fresh folder ``<output_root>/<name>-<YYYYmmdd-HHMMSS>[-k]``; never reuses one."""
    root = Path(output_root)
    root.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    for k in range(1000):
        cand = root / (f"{name}-{stamp}" + (f"-{k}" if k else ""))
        try:
            cand.mkdir()
            return cand
        except FileExistsError:
            continue
    raise RuntimeError(f"{root}: could not make a new run folder")


def open_run(cfg: RunConfig) -> tuple[RunConfig, Run]:
    """The run folder of ``cfg`` (a new one when ``run_dir`` is empty); records the params."""
    try:
        if cfg.run_dir:
            root = Path(cfg.run_dir)
            root.mkdir(parents=True, exist_ok=True)
        else:
            root = new_run_dir(cfg.output_root, cfg.name)
            cfg = cfg.replace(run_dir=str(root))
        probe = root / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        where = cfg.run_dir or cfg.output_root
        raise data.DataError(f"{where}: cannot create or write the run folder ({exc.strerror or exc}); "
                             f"set output_root to a writable folder") from None
    run = Run(root)
    run.records.mkdir(exist_ok=True)
    if not (root / "params.yaml").exists():
        atomic_write_text(root / "params.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    if not run.has("environment"):
        run.write("environment", provenance.environment())
    return cfg, run


def bin_dir(cfg: RunConfig, run: Run) -> Path:
    return Path(cfg.bin_dir) if cfg.bin_dir else run.root / "bin"


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
            raise data.DataError(f"{where}: {free / 2**30:.2f} GiB free, the run needs "
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
        raise data.DataError("images and labels do not match; stopped before inference:\n  - "
                             + "\n  - ".join(problems) + "\nUse the val_label.txt that belongs to "
                             "these images, or set allow_label_mismatch: true to evaluate only the "
                             "images that have labels (the report then shows these counts).")
    if not matched.images:
        raise data.DataError(f"{cfg.data_dir}: no image has a label in {cfg.label_file}")
    return matched.images, [p.name for p in matched.unlabelled], missing


def run_preprocess(cfg: RunConfig, run: Run, progress: bool = True) -> dict:
    images, unlabelled, missing = run_images(cfg)
    out = bin_dir(cfg, run)
    check_free_space(out, images, run.results, len(cfg.backends), cfg.outfmt)
    result = preprocess.preprocess_folder(images, out, cfg.workers, progress=progress)
    record = result.to_dict()
    run.write("preprocess", record)
    if result.failed:
        raise data.DataError(preprocess.failure_message(result))
    run.write("dataset", {
        "data_dir": cfg.data_dir, "images": len(images),
        "image_list_sha256": data.image_list_hash(images),
        "label_file": cfg.label_file, "label_file_sha256": data.sha256_file(cfg.label_file),
        "labels_without_image": len(missing), "labels_without_image_examples": missing[:20],
        "unlabelled_images": len(unlabelled), "unlabelled_examples": unlabelled[:20],
        "label_mismatch_allowed": cfg.allow_label_mismatch, "max_images": cfg.max_images,
        "bin_dir": str(out), "keys": [data.image_key(p.name) for p in images],
    })
    return record


def ensure_preprocessed(cfg: RunConfig, run: Run) -> None:
    if not run.has("dataset"):
        run_preprocess(cfg, run)


# ------------------------------------------------------------------ stage 2
def run_inputs(cfg: RunConfig, run: Run) -> list[Path]:
    """This run's ``.bin`` files, in image order: only its own images, also when ``bin_dir``
    is shared with other runs."""
    ensure_preprocessed(cfg, run)
    folder = bin_dir(cfg, run)
    files = [folder / f"{k}.bin" for k in run.read("dataset")["keys"]]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise data.DataError(f"{folder}: {len(missing)} of this run's .bin files are missing, e.g. "
                             f"{', '.join(missing[:5])}; rerun preprocessing (01_preprocess)")
    return files


def sample_inputs(cfg: RunConfig, run: Run, n: int) -> np.ndarray:
    return np.stack([bench.load_input(f) for f in run_inputs(cfg, run)[:n]])


def run_export(cfg: RunConfig, run: Run) -> dict:
    ensure_preprocessed(cfg, run)
    a = aipp_mod.load(cfg.aipp_config)
    run.models.mkdir(parents=True, exist_ok=True)
    if cfg.onnx_model:
        onnx_path = Path(cfg.onnx_model)
    else:
        onnx_path = export.export_onnx(cfg.weights, run.models / export.ONNX_NAME, cfg.opset)
    fused = export.build_aipp_model(onnx_path, a, run.models / export.AIPP_ONNX_NAME)
    record = {
        "onnx": str(onnx_path), "onnx_sha256": data.sha256_file(onnx_path),
        "aipp_onnx": str(fused), "aipp_onnx_sha256": data.sha256_file(fused),
        "weights": cfg.weights if os.path.isfile(cfg.weights) else None,
        "weights_sha256": data.sha256_file(cfg.weights) if os.path.isfile(cfg.weights) else None,
        "opset": cfg.opset, "aipp": a.to_dict(),
        "aipp_config_sha256": data.sha256_file(cfg.aipp_config),
    }
    if record["weights"]:
        par = export.parity(cfg.weights, onnx_path, fused, a,
                            sample_inputs(cfg, run, PARITY_IMAGES))
        record["parity"] = par.to_dict()
    else:
        record["parity"] = None
        record["parity_not_run"] = "no weights file: ONNX given directly, nothing to compare with"
    run.write("export", record)
    return record


def om_batch_sizes(cfg: RunConfig) -> list[int]:
    """Batch sizes that need an .om: the sweep's and the accuracy run's."""
    return sorted(set(cfg.batch_sizes) | {cfg.accuracy_batch_size})


def run_atc(cfg: RunConfig, run: Run) -> dict:
    """ATC for every batch size when ``atc`` is on PATH; otherwise the exact commands, not run."""
    exp = ensure_exported(cfg, run)
    soc = cfg.soc_version or atc.detect_soc_version()
    sizes = om_batch_sizes(cfg)
    commands = [atc.shell_line(atc.atc_command(exp["onnx"], bs, soc or atc.SOC_PLACEHOLDER,
                                               cfg.aipp_config, str(run.models), cfg.atc_extra_args))
                for bs in sizes]
    record = {"soc_version": soc, "commands": commands}
    if not atc.available():
        record.update(status="not run", reason="atc is not on PATH here (CANN toolkit not "
                      "installed or set_env.sh not sourced)")
    elif not soc:
        record.update(status="not run", reason="soc_version unknown: set soc_version in params "
                      "(e.g. Ascend310P3) or make npu-smi available")
    else:
        record.update(status="ok", models=atc.build_all(exp["onnx"], sizes, soc,
                                                        cfg.aipp_config, run.models,
                                                        cfg.atc_extra_args))
    run.write("atc", record)
    return record


def ensure_exported(cfg: RunConfig, run: Run) -> dict:
    if not run.has("export"):
        return run_export(cfg, run)
    return run.read("export")


# ------------------------------------------------------------------ stage 3
def artifacts(cfg: RunConfig, run: Run) -> backends_mod.Artifacts:
    rec = ensure_exported(cfg, run)
    om_models = {}
    if "ais_bench" in cfg.backends:
        a = run.read("atc") if run.has("atc") else run_atc(cfg, run)
        om_models = {m["batch_size"]: m["om"] for m in a.get("models", [])}
    return backends_mod.Artifacts(aipp_onnx=rec["aipp_onnx"], weights=cfg.weights,
                                  aipp_config=cfg.aipp_config, om_models=om_models)


def _npu_accuracy(backend, cfg: RunConfig, run: Run, out: Path) -> dict:
    """ais_bench: the recipe's accuracy command."""
    files = run_inputs(cfg, run)
    inputs = bin_dir(cfg, run)
    if len(files) != len(bench.list_inputs(inputs)[0]):
        # ais_bench reads a whole folder and refuses symbolic links (path_security_check):
        # the subset is hard-linked (copied across file systems) into a folder of its own
        inputs = run.root / "inputs"
        inputs.mkdir(exist_ok=True)
        for f in files:
            if not (inputs / f.name).exists():
                try:
                    os.link(f, inputs / f.name)
                except OSError:
                    atomic_copy(f, inputs / f.name)
    summary = backend.run_accuracy(inputs, out, cfg.accuracy_batch_size, cfg.outfmt)
    summary.setdefault("foreign_files", [])
    summary.setdefault("e2e_throughput", None)
    return summary


def _npu_sweep(backend, cfg: RunConfig, out: Path) -> list:
    """ais_bench: the recipe's --loop=50 sweep (device compute only, zero input)."""
    from . import aisbench, ingest
    info = backend.info()
    return [ingest.bench_record(backend.run_perf(bs, out),
                                aisbench.summary_path(out, aisbench.perf_dirname(bs)),
                                info["device"], info.get("version", ""))
            for bs in cfg.batch_sizes]


def create_backends(cfg: RunConfig, run: Run) -> tuple[dict, dict]:
    """({name: backend}, {name: not-run status}) for the config's backends."""
    arts = artifacts(cfg, run)
    made, skipped = {}, {}
    for name in cfg.backends:
        try:
            made[name] = backends_mod.create(name, arts, cfg.device, cfg.threads,
                                             device_id=cfg.device_id, precision=cfg.precision)
        except backends_mod.BackendUnavailable as exc:
            skipped[name] = {"status": "not run", "reason": str(exc)}
    return made, skipped


def sweep_backends(cfg: RunConfig, run: Run, made: dict) -> list:
    """The batch-size sweep of every backend; writes records/bench.json and bench.csv."""
    files = run_inputs(cfg, run)
    samples = np.stack([bench.load_input(f) for f in files[:SWEEP_SAMPLES]])
    settings = bench.SweepSettings(tuple(cfg.batch_sizes), cfg.bench_iterations,
                                   cfg.bench_min_seconds, cfg.warmup)
    records, npu_only = [], bool(made)
    for name, backend in made.items():
        if hasattr(backend, "run_perf"):
            records.extend(_npu_sweep(backend, cfg, run.results / name))
        else:
            npu_only = False
            records.extend(bench.sweep(backend, samples, settings, files, cfg.outfmt,
                                       cfg.infer_streams))
    from .ingest import AIS_BENCH_DEFINITION
    bench.write_records(records, run.record("bench"),
                        AIS_BENCH_DEFINITION if npu_only else bench.THROUGHPUT_DEFINITION)
    return records


def close_backends(made: dict) -> None:
    for backend in made.values():
        backend.close()


class NoBackendRan(DataError):
    """No backend of the config could run here; the message says what each needs."""


def no_backend_message(skipped: dict) -> str:
    return ("no backend produced a result:\n" +
            "\n".join(f"  - {name}: {st['reason']}" for name, st in skipped.items()))


def run_bench(cfg: RunConfig, run: Run) -> tuple[list, dict]:
    """``zoorepro bench``: preprocessing and export when missing, then the sweep only.
    Returns (records, {backend: not-run status}); no backend at all is an error."""
    ensure_preprocessed(cfg, run)
    made, skipped = create_backends(cfg, run)
    if not made:
        raise NoBackendRan(no_backend_message(skipped))
    try:
        return sweep_backends(cfg, run, made), skipped
    finally:
        close_backends(made)


def run_infer(cfg: RunConfig, run: Run, progress: bool = True) -> dict:
    """Accuracy run (ais_bench layout) and throughput sweep for every backend."""
    ensure_preprocessed(cfg, run)
    made, status = create_backends(cfg, run)
    try:
        _infer_all(cfg, run, made, status, progress)
    finally:
        close_backends(made)
    status = {name: status[name] for name in cfg.backends if name in status}
    run.write("infer", status)
    if not made:
        raise NoBackendRan(no_backend_message(status))
    return status


def _infer_all(cfg: RunConfig, run: Run, made: dict, status: dict, progress: bool) -> None:
    for name, backend in made.items():
        out = run.results / name
        if hasattr(backend, "run_accuracy"):
            summary = _npu_accuracy(backend, cfg, run, out)
        else:
            summary = bench.run_folder(backend, bin_dir(cfg, run), out,
                                       bench.result_dirname(cfg.accuracy_batch_size),
                                       cfg.accuracy_batch_size, cfg.outfmt, cfg.warmup, progress,
                                       files=run_inputs(cfg, run), streams=cfg.infer_streams)
        status[name] = {"status": "ok", **backend.info(),
                        "result_dir": str(out / bench.result_dirname(cfg.accuracy_batch_size)),
                        "summary": str(out / f"{bench.result_dirname(cfg.accuracy_batch_size)}_summary.json"),
                        "accuracy_batch_size": cfg.accuracy_batch_size,
                        "compute_throughput": summary["throughput"],
                        "streams": summary.get("streams", 1),
                        "stream_threads": summary.get("stream_threads"),
                        "throughput_definition": summary.get("throughput_definition"),
                        "foreign_files": summary["foreign_files"],
                        "other_inputs": summary.get("other_inputs", 0),
                        "e2e_throughput": summary["e2e_throughput"]}
    sweep_backends(cfg, run, made)


def ensure_inferred(cfg: RunConfig, run: Run) -> dict:
    if not run.has("infer"):
        return run_infer(cfg, run)
    return run.read("infer")


# ------------------------------------------------------------------ stage 4
def run_evaluate(cfg: RunConfig, run: Run) -> dict:
    status = ensure_inferred(cfg, run)
    labels = data.read_labels(cfg.label_file)
    dataset = run.read("dataset")
    exp = run.read("export")
    out: dict = {}
    preds: dict = {}
    for name, st in status.items():
        if st.get("status") != "ok":
            out[name] = {"status": "not run", "reason": st.get("reason", "")}
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pred = evaluate.read_result_folder(st["result_dir"], cfg.workers)
        preds[name] = pred
        metrics = evaluate.score(pred, labels, expected=dataset["keys"])
        per_image = metrics.pop("per_image_top1")
        metrics.update({"backend": name, "device": st.get("device"),
                        "batch_size": st.get("accuracy_batch_size"),
                        "weights_sha256": exp.get("weights_sha256"),
                        "onnx_sha256": exp.get("onnx_sha256"),
                        "image_list_sha256": dataset["image_list_sha256"],
                        "label_file_sha256": dataset["label_file_sha256"],
                        "warnings": [str(w.message) for w in caught]})
        folder = run.results / name
        evaluate.write_results(metrics, folder)
        atomic_write_json(folder / "predictions.json", per_image)
        out[name] = {"status": "ok", **metrics}
    primary = out.get(cfg.primary_backend, {})
    if primary.get("status") == "ok":
        for fname in ("result.json", "metrics.json"):
            atomic_copy(run.results / cfg.primary_backend / fname, run.root / fname)
    run.write("accuracy", out)
    names = list(preds)
    run.write("parity", [{"a": x, "b": y, **evaluate.parity(preds[x], preds[y])}
                         for i, x in enumerate(names) for y in names[i + 1:]])
    return out


def ensure_evaluated(cfg: RunConfig, run: Run) -> dict:
    if not run.has("accuracy"):
        return run_evaluate(cfg, run)
    return run.read("accuracy")


def is_ingested(run_dir: str | os.PathLike | None) -> bool:
    return bool(run_dir) and (Path(run_dir) / "records" / "ingest.json").is_file()


def open_from_notebook(namespace) -> tuple[RunConfig, Run]:
    """A notebook's first step: its parameters -> validated config -> run folder.
    Ingested NPU results have no local images or weights, so their paths are not checked."""
    from .config import from_namespace
    ingested = is_ingested(namespace.get("run_dir"))
    return open_run(from_namespace(namespace, check_paths=not ingested))


def ensure_for_report(cfg: RunConfig, run: Run) -> None:
    """Run missing stages (standalone use) unless the run already failed: then show what ran."""
    if not run.has("failure"):
        ensure_evaluated(cfg, run)
