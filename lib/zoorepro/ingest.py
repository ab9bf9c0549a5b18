"""``zoorepro ingest``: results written by ais_bench on an NPU host -> a run folder + report.

Input, as ais_bench writes it (Ascend/tools ``ais-bench_workload/tool/ais_bench``):

* ``RESULT_DIR`` = ``<output>/<dirname>/`` with one ``<stem>_0.txt|.npy|.bin`` per real
  image (padding slots of the last batch are not saved).  TXT: ``reshape(-1, last_dim)``,
  one line per row, ``%f`` values each followed by a space;
* ``<output>/<dirname>_summary.json`` beside it: ``NPU_compute_time`` / ``H2D_latency`` /
  ``D2H_latency`` (min, max, mean, median, percentile(99%), count), ``throughput``,
  ``npu_compute_time_list``, ``args`` (the argv), ``filesinfo``, ``pid``;
* optionally the pure-inference (``--loop``) summaries of a batch-size sweep, the text of
  ``npu-smi info``, the CANN version and the kit's ``kit.json`` (hashes of what was sent).

Output: a NEW run folder with ``result.json``, ``metrics.json`` and the records the report
reads, labelled with the NPU that produced them, then ``report.html``.  Nothing here
computes an NPU figure: every number comes from the files given.
"""
from __future__ import annotations

import json
import os
import platform
import re
import warnings
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import yaml

from . import atc, bench, data, evaluate, pipeline, provenance
from .aisbench import NAME, npu_device_name, parse_cann_version
from .data import DataError
from .files import atomic_copy, atomic_write_json, atomic_write_text, read_json

AIS_BENCH_DEFINITION = (
    "ais_bench pure inference (--loop): 1000 * batch_size / mean NPU_compute_time (ms); "
    "NPU_compute_time = host wall time around each synchronous model execute on the NPU, "
    "i.e. device compute only; zero-filled input (--pure_data_type zero), H2D/D2H copies "
    "excluded, file I/O and pre/post-processing excluded")
AIS_BENCH_REAL_DEFINITION = AIS_BENCH_DEFINITION.replace(
    "zero-filled input (--pure_data_type zero)", "real images")
SUMMARY_KEYS = ("NPU_compute_time", "H2D_latency", "D2H_latency", "throughput")


class IngestError(DataError):
    """The NPU results cannot be ingested as given; the message says why and what to do."""


# ------------------------------------------------------------------ summaries
def read_summary(path: str | os.PathLike) -> dict:
    """An ais_bench ``*_summary.json``; an error names the file and the missing keys."""
    path = Path(path)
    if not path.is_file():
        raise IngestError(f"{path}: summary not found")
    try:
        with open(path, encoding="utf-8") as fh:
            s = json.load(fh)
    except (OSError, ValueError) as exc:
        raise IngestError(f"{path}: not a readable JSON summary ({exc})") from None
    if not isinstance(s, dict):
        raise IngestError(f"{path}: expected a JSON object (ais_bench *_summary.json)")
    missing = [k for k in SUMMARY_KEYS if k not in s]
    if missing:
        raise IngestError(f"{path}: not an ais_bench summary, missing {', '.join(missing)} "
                          f"(ais_bench writes <output>/<output_dirname>_summary.json when "
                          f"--output is given)")
    return s


def _arg_value(args: Sequence[str], *names: str) -> str | None:
    """Value of ``--name=V`` / ``--name V`` in an argv list (last one wins)."""
    found = None
    args = [str(a) for a in args or []]
    for i, a in enumerate(args):
        for n in names:
            if a.startswith(n + "="):
                found = a.split("=", 1)[1]
            elif a == n and i + 1 < len(args):
                found = args[i + 1]
    return found


def summary_batch_size(summary: dict, path: str | os.PathLike = "") -> int:
    """``--batchsize`` from the summary's argv, else from the OM name or the file name."""
    args = summary.get("args") or []
    for text in (_arg_value(args, "--batchsize"), summary.get("batchsize")):
        if text is not None and str(text).isdigit():
            return int(text)
    model = _arg_value(args, "--model", "-m") or ""
    for text in (Path(model).name, Path(path).name):
        m = re.search(r"bs(\d+)", text)
        if m:
            return int(m.group(1))
    raise IngestError(f"{path or 'summary'}: batch size unknown (no --batchsize in its args, "
                      f"no bs<N> in the model or file name); the throughput needs it")


def summary_device_id(summary: dict) -> int | None:
    text = _arg_value(summary.get("args") or [], "--device", "-d")
    return int(text) if text is not None and text.isdigit() else None


def summary_is_pure(summary: dict) -> bool:
    """Pure inference (no ``--input``): ais_bench fed zero (or random) bytes."""
    return _arg_value(summary.get("args") or [], "--input", "-i") is None


def _stat(s: dict, key: str, field: str):
    v = (s.get(key) or {}).get(field)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


PIPELINE_MEAN = ("ais_bench --pipeline with several threads: mean = total time during which "
                 "at least one inference ran (union of the [start, end] intervals) / inferences")


def compute_times(summary: dict, path: str | os.PathLike = "") -> tuple[list, float | None, str]:
    """(per-inference ms, the mean ais_bench's throughput uses, how it was computed) from a
    summary's ``npu_compute_time_list``.

    ais_bench writes durations (ms) in its usual modes, and ``[start, end]`` pairs with
    ``--pipeline --threads N`` (N > 1), where its mean is the union of the intervals divided by
    their count (``Summary.get_list_info(merge=True)``).  Non-numbers, non-finite or
    non-positive times are errors naming the file: they are never turned into figures."""
    raw = summary.get("npu_compute_time_list") or []
    where = f"{path or 'summary'}: npu_compute_time_list"
    if not isinstance(raw, list):
        raise IngestError(f"{where} is not a list; not an ais_bench summary")
    if not raw:
        return [], _stat(summary, "NPU_compute_time", "mean"), "NPU_compute_time.mean"
    pairs = all(isinstance(t, (list, tuple)) for t in raw)
    if pairs:
        if not all(len(t) == 2 for t in raw):
            raise IngestError(f"{where}: expected [start, end] pairs (ais_bench --pipeline)")
        flat = [v for t in raw for v in t]
    else:
        flat = raw
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in flat):
        bad = next(v for v in flat if isinstance(v, bool) or not isinstance(v, (int, float)))
        raise IngestError(f"{where} holds {bad!r}, not a time in ms; the summary is damaged: "
                          f"copy it again from the NPU host")
    a = np.asarray(flat, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise IngestError(f"{where} holds non-finite times (nan or inf); the summary is "
                          f"damaged or the run failed: rerun ais_bench")
    if pairs:
        iv = a.reshape(-1, 2)
        durations = iv[:, 1] - iv[:, 0]
        if np.any(durations <= 0):
            raise IngestError(f"{where}: an interval ends before it starts; rerun ais_bench")
        merged, total = None, 0.0
        for start, end in sorted(iv.tolist()):
            if merged is None or merged[1] < start:
                if merged is not None:
                    total += merged[1] - merged[0]
                merged = [start, end]
            else:
                merged[1] = max(merged[1], end)
        total += merged[1] - merged[0]
        return durations.tolist(), total / len(iv), PIPELINE_MEAN
    if np.any(a <= 0):
        raise IngestError(f"{where} holds a time <= 0 ms; impossible for an inference: the "
                          f"summary is damaged: rerun ais_bench")
    return a.tolist(), float(a.mean()), "mean of npu_compute_time_list"


def bench_record(summary: dict, path: str | os.PathLike, device: str, version: str = "") -> dict:
    """One bench record (``bench.BENCH_FIELDS`` plus NPU extras) from an ais_bench summary."""
    bs = summary_batch_size(summary, path)
    times, mean, mean_from = compute_times(summary, path)
    st = bench.time_stats(times) if times else None
    pipeline = mean_from == PIPELINE_MEAN
    median = st["median"] if st and not pipeline else _stat(summary, "NPU_compute_time", "median")
    count = st["count"] if st else int(_stat(summary, "NPU_compute_time", "count") or 0)
    problems = []
    if not mean or not np.isfinite(mean) or mean <= 0:
        problems.append("no NPU compute time in the summary")
        mean = None
    spread_note = ""
    if st and st["median"] and not pipeline:
        spread = st["p90"] / st["median"]
        if spread > bench.VALIDITY_SPREAD:
            problems.append(f"p90/median {spread:.2f} > {bench.VALIDITY_SPREAD}")
    elif pipeline:
        spread_note = " (pipeline mode: overlapping inferences, spread not checked)"
    elif not st:
        spread_note = " (no npu_compute_time_list: spread not checked)"
    ours = bench.throughput(bs, mean)
    reported = summary.get("throughput")
    pure = summary_is_pure(summary)
    pure_type = _arg_value(summary.get("args") or [], "--pure_data_type") or "zero"
    definition = AIS_BENCH_DEFINITION if pure else AIS_BENCH_REAL_DEFINITION
    if pipeline:
        definition += "; " + PIPELINE_MEAN
    per_call = st if st and not pipeline else None
    return {
        "backend": NAME, "device": device, "batch_size": bs, "iterations": count,
        "seconds": round(sum(times) / 1000.0, 4) if times and not pipeline else None,
        "min_ms": per_call["min"] if per_call else _stat(summary, "NPU_compute_time", "min"),
        "mean_ms": mean, "median_ms": median, "p90_ms": per_call["p90"] if per_call else None,
        "p99_ms": per_call["percentile(99%)"] if per_call else
        _stat(summary, "NPU_compute_time", "percentile(99%)"),
        "max_ms": per_call["max"] if per_call else _stat(summary, "NPU_compute_time", "max"),
        "throughput": ours, "throughput_reported": reported,
        "throughput_definition": definition,
        "threads": None, "version": version,
        "input": (f"{pure_type} bytes (ais_bench pure inference)" if pure
                  else f"real images from {_arg_value(summary.get('args') or [], '--input', '-i')}"),
        "h2d_mean_ms": _stat(summary, "H2D_latency", "mean"),
        "d2h_mean_ms": _stat(summary, "D2H_latency", "mean"),
        "summary": str(path),
        "valid": not problems, "validity": "; ".join(problems) or ("ok" + spread_note),
    }


# ---------------------------------------------------------------- predictions
def read_predictions(folder: str | os.PathLike) -> tuple[evaluate.Predictions, list[str]]:
    """The result folder read by ``evaluate.read_result_folder`` (TXT outputs spread over
    several rows are joined there) and the warnings raised while reading."""
    folder = Path(folder)
    if not folder.is_dir():
        raise IngestError(f"{folder}: result folder not found (give the folder ais_bench "
                          f"wrote, e.g. result/result_bs1)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pred = evaluate.read_result_folder(folder, workers=0)
    return pred, [str(w.message) for w in caught]


DEVICE_DIR = re.compile(r"^device(\d+)_(\d+)$")


def device_shards(result_dir: str | os.PathLike) -> list[dict]:
    """The ``device<K>_<i>/`` folders of a multi-device ais_bench run (``--device 0,1``), in
    process order, each with its ``device<K>_<i>_summary.json`` path; [] for a plain folder."""
    folder = Path(result_dir)
    if not folder.is_dir():
        return []
    out = []
    for e in os.scandir(folder):
        m = DEVICE_DIR.match(e.name)
        if m and e.is_dir():
            out.append({"device_id": int(m.group(1)), "index": int(m.group(2)),
                        "folder": folder / e.name, "summary": folder / f"{e.name}_summary.json"})
    if out and evaluate.list_result_folder(folder)[0]:
        raise IngestError(f"{folder}: holds both outputs and device<K>_<i>/ folders; give the "
                          f"folder of one ais_bench run")
    return sorted(out, key=lambda d: d["index"])


def read_device_predictions(result_dir: Path, shards: list[dict]):
    """Every device folder read and joined; an image that several devices inferred (a
    multi-device run without --divide_input infers every image on every device) is scored
    once, from the first device, and the note says whether the devices agreed."""
    parts, warns = [], []
    for sh in shards:
        pred, w = read_predictions(sh["folder"])
        sh["images"] = len(pred.keys)
        parts.append(pred)
        warns += w
    seen: dict[str, tuple[int, int]] = {}
    keys, rows, paths, dup, disagree = [], [], {}, 0, 0
    for p_i, pred in enumerate(parts):
        if pred.n_classes != parts[0].n_classes:
            raise IngestError(f"{result_dir}: device folders hold outputs of different lengths "
                              f"({parts[0].n_classes} and {pred.n_classes}); not one run")
        for j, k in enumerate(pred.keys):
            if k in seen:
                dup += 1
                a, b = seen[k]
                disagree += int(not np.array_equal(parts[a].top5[b], pred.top5[j]))
                continue
            seen[k] = (p_i, j)
            keys.append(k)
            rows.append(pred.top5[j])
            paths[k] = pred.paths[k]
    order = sorted(range(len(keys)), key=lambda i: data.natural_key(keys[i]))
    merged = evaluate.Predictions([keys[i] for i in order], np.stack([rows[i] for i in order]),
                                  parts[0].n_classes, [f for p in parts for f in p.foreign],
                                  str(result_dir), paths)
    if dup:
        warns.append(f"{dup} output(s) were written by more than one device (ais_bench without "
                     f"--divide_input infers every image on every device); each image was "
                     f"scored once; the devices' top-5 "
                     + ("agreed on every one" if not disagree else
                        f"DIFFERED on {disagree} image(s)"))
    return merged, warns


# -------------------------------------------------------------------- helpers
def chip_for(npu_smi_text: str | None, device_id: int | None) -> tuple[str | None, list]:
    """(soc_version of the chip used, all chips) from ``npu-smi info`` text."""
    chips = atc.parse_npu_smi(npu_smi_text or "")
    if not chips:
        return None, chips
    pick = next((c for c in chips if device_id is not None and c["npu"] == device_id), chips[0])
    return pick["soc_version"], chips


def read_manifest(path: str | os.PathLike | None) -> dict:
    if not path:
        return {}
    path = Path(path)
    if not path.is_file():
        raise IngestError(f"{path}: kit manifest not found (it is kit.json, copied into the "
                          f"results folder by run_on_npu.sh)")
    try:
        return read_json(path)
    except ValueError as exc:
        raise IngestError(f"{path}: not valid JSON ({exc})") from None


def _report_config(run_root: Path, result_dir: Path, labels: Path, aipp_config: str,
                   manifest: dict):
    """A config for the report notebook on this run folder.  Its records are complete, so
    it runs no stage, and (records/ingest.json present) it does not check local paths."""
    from .config import from_mapping
    bss = (manifest.get("batch_sizes") or [1])
    return from_mapping({
        "name": run_root.name, "data_dir": str(result_dir), "label_file": str(labels),
        "aipp_config": aipp_config, "weights": "", "backends": [NAME], "batch_sizes": list(bss),
        "output_root": str(run_root.parent), "run_dir": str(run_root),
    }, source="ingest", check_paths=False)


def _aipp_config_path(manifest_path: str | os.PathLike | None) -> str:
    cands = []
    if manifest_path:
        cands.append(Path(manifest_path).parent / "aipp.config")
    cands.append(pipeline.project_root() / "aipp.config")
    for c in cands:
        if c.is_file():
            return str(c)
    raise IngestError("no aipp.config found (put the kit's aipp.config beside kit.json)")


TOOL_VERSIONS = "ais_bench_version.txt"   # the kit writes `pip show ais_bench aclruntime` there


def parse_pip_show(text: str) -> str:
    """``"ais_bench 0.0.2, aclruntime 0.0.2"`` from ``pip show`` output ("" if none)."""
    found, name = [], None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Name":
            name = value.strip()
        elif key.strip() == "Version" and name:
            found.append(f"{name} {value.strip()}")
            name = None
    return ", ".join(found)


def tool_versions(folders: Iterable) -> str:
    """The ais_bench/aclruntime versions the kit recorded, from the first folder holding
    its ``ais_bench_version.txt`` ("" when none does)."""
    for folder in folders:
        path = Path(folder) / TOOL_VERSIONS
        if path.is_file():
            return parse_pip_show(path.read_text(encoding="utf-8", errors="replace"))
    return ""


# --------------------------------------------------------------------- ingest
def ingest(result_dir: str | os.PathLike, labels_path: str | os.PathLike,
           out_root: str | os.PathLike = "reports", summaries: Iterable = (),
           npu_smi_text: str | None = None, cann_version: str | None = None,
           soc_version: str | None = None, manifest: str | os.PathLike | None = None,
           accuracy_summary: str | os.PathLike | None = None, name: str = "npu",
           render: bool = True, kernel: str | None = None) -> Path:
    """Score ``result_dir`` against ``labels_path`` and write a new run folder under
    ``out_root`` (records, ``result.json``, ``metrics.json``, ``report.html``).

    ``summaries``: pure-inference ``*_summary.json`` files of a batch sweep.  The accuracy
    run's own summary is ``<result_dir>_summary.json`` beside the folder (or
    ``accuracy_summary``); when it is missing the accuracy is still scored and the records
    say that no throughput came with it."""
    result_dir = Path(result_dir).resolve()
    labels_path = Path(labels_path).resolve()
    labels = data.read_labels(labels_path)
    shards = device_shards(result_dir)
    if shards:
        pred, read_warnings = read_device_predictions(result_dir, shards)
    else:
        pred, read_warnings = read_predictions(result_dir)
    man = read_manifest(manifest)
    expected = man.get("keys") or None
    metrics = evaluate.score(pred, labels, expected=expected)
    per_image = metrics.pop("per_image_top1")

    # the accuracy run's summary (one per device when ais_bench ran on several)
    notes = []
    summary_note = None
    per_device = []
    if shards:
        if accuracy_summary:
            raise IngestError("--accuracy-summary: a multi-device result folder holds one "
                              "summary per device (device<K>_<i>_summary.json); leave it out")
        for sh in shards:
            if not sh["summary"].is_file():
                raise IngestError(f"{sh['summary']}: summary of {sh['folder'].name} not found; "
                                  f"copy the whole result folder from the NPU host")
            s_ = read_summary(sh["summary"])
            _, mean, _ = compute_times(s_, sh["summary"])
            bs_ = summary_batch_size(s_, sh["summary"])
            per_device.append({"device_id": sh["device_id"], "process": sh["index"],
                               "images": sh["images"], "batch_size": bs_,
                               "throughput": bench.throughput(bs_, mean),
                               "summary": str(sh["summary"])})
        acc_summary_path = shards[0]["summary"]
        acc_summary = read_summary(acc_summary_path)
    else:
        acc_summary_path = Path(accuracy_summary) if accuracy_summary else \
            result_dir.parent / f"{result_dir.name}_summary.json"
        acc_summary = read_summary(acc_summary_path) if acc_summary_path.is_file() else None
        if accuracy_summary and acc_summary is None:
            raise IngestError(f"{acc_summary_path}: summary not found")
    if acc_summary is None:
        summary_note = (f"no {acc_summary_path.name} beside {result_dir.name}: accuracy scored "
                        f"from the outputs alone; no throughput and no device id from the "
                        f"accuracy run")
        notes.append(summary_note)
        m = re.search(r"bs(\d+)$", result_dir.name)
        acc_bs = int(m.group(1)) if m else man.get("accuracy_batch_size")
        device_id = man.get("device_id")
    else:
        acc_bs = summary_batch_size(acc_summary, acc_summary_path)
        device_id = summary_device_id(acc_summary)
    if per_device:
        device_id = per_device[0]["device_id"]
        notes.append(f"ais_bench ran on {len(per_device)} NPU devices "
                     f"({', '.join(str(d['device_id']) for d in per_device)}); each image was "
                     f"scored once; throughput is summed over devices as ais_bench's "
                     f"'summary throughput'")

    # the device, in words
    detected, chips = chip_for(npu_smi_text, device_id)
    soc = soc_version or detected or man.get("soc_version") or None
    if soc and not soc.startswith("Ascend"):
        soc = f"Ascend{soc}"
    cann = parse_cann_version(cann_version) if cann_version else None
    device = npu_device_name(soc, cann)
    if not npu_smi_text and not soc_version:
        notes.append("no npu-smi info given: the chip is "
                     + (f"{soc} from the kit's params" if soc else "not recorded"))
    tools = tool_versions(([Path(manifest).resolve().parent] if manifest else [])
                          + [result_dir.parent.parent, result_dir.parent])
    version = f"{tools or 'ais_bench'} (on the NPU host)"

    # sweep summaries
    sweep_records, sweep_paths = [], []
    for p in summaries or ():
        s = read_summary(p)
        sweep_records.append(bench_record(s, p, device, version))
        sweep_paths.append(str(Path(p).resolve()))
    sweep_records.sort(key=lambda r: r["batch_size"])

    # the run folder
    run_root = pipeline.new_run_dir(out_root, name)
    run = pipeline.Run(run_root)
    run.records.mkdir(exist_ok=True)
    folder = run.results / NAME
    evaluate.write_results(metrics, folder)
    atomic_write_json(folder / "predictions.json", per_image)
    for fname in ("result.json", "metrics.json"):
        atomic_copy(folder / fname, run_root / fname)

    acc_throughput = None
    acc_definition = AIS_BENCH_REAL_DEFINITION
    if per_device:
        if all(d["throughput"] for d in per_device):
            acc_throughput = sum(d["throughput"] for d in per_device)
        acc_definition += ("; summed over the NPU devices the accuracy run used (ais_bench's "
                           "'summary throughput' of a multi-device run)")
    elif acc_summary is not None:
        _, mean, mean_from = compute_times(acc_summary, acc_summary_path)
        acc_throughput = bench.throughput(acc_bs, mean) if acc_bs else None
        if mean_from == PIPELINE_MEAN:
            acc_definition += "; " + PIPELINE_MEAN

    record = {
        "source": "zoorepro ingest: results produced by ais_bench on an Ascend NPU host",
        "result_dir": str(result_dir), "labels": str(labels_path),
        "accuracy_summary": str(acc_summary_path) if acc_summary is not None else None,
        "throughput_from_accuracy_run": "yes" if acc_throughput else "no",
        "sweep_summaries": sweep_paths, "manifest": str(manifest) if manifest else None,
        "device": device, "soc_version": soc, "cann": cann, "npu_chips": chips,
        "device_id": device_id, "notes": notes, "read_warnings": read_warnings,
        "devices": per_device or None,
        "ais_bench_args": (acc_summary or {}).get("args"),
    }
    run.write("ingest", record)
    run.write("environment", {
        "produced_on": "Ascend NPU host (results ingested by zoorepro)",
        "npu": soc or "not recorded", "cann": cann or "not recorded",
        "npu_chips": ", ".join(f"{c['npu']}: {c['name']} ({c['health']})" for c in chips) or
        "npu-smi info not given",
        "npu_device_id": device_id,
        "ais_bench_args": " ".join(map(str, (acc_summary or {}).get("args") or [])) or None,
        "npu_smi_info": npu_smi_text or None,
        "ingested_on": platform.platform(),
        "zoorepro_git_commit": provenance.git_commit(),
    })
    run.write("dataset", {
        "data_dir": man.get("data_dir") or "not recorded (ingested results)",
        "images": metrics["images"],
        "image_list_sha256": man.get("image_list_sha256"),
        "label_file": str(labels_path), "label_file_sha256": data.sha256_file(labels_path),
        "labels_without_image": None, "max_images": man.get("max_images"),
        "bin_dir": "on the NPU host", "keys": list(pred.keys),
    })
    if man.get("export"):
        run.write("export", {**man["export"], "parity": None,
                             "parity_not_run": "ingested NPU results: ONNX/PyTorch parity is "
                                               "checked by a local zoorepro run"})
    if man.get("preprocess"):
        run.write("preprocess", man["preprocess"])
    if man.get("atc_commands"):
        cmds = [c.replace('"Ascend${chip_name}"', soc or "Ascend${chip_name}")
                for c in man["atc_commands"]]
        run.write("atc", {"status": "ok (on the NPU host)", "soc_version": soc, "commands": cmds})
    run.write("infer", {NAME: {
        "status": "ok", "backend": NAME, "device": device, "version": version,
        "result_dir": str(result_dir),
        "summary": str(acc_summary_path) if acc_summary is not None else None,
        "accuracy_batch_size": acc_bs, "compute_throughput": acc_throughput,
        "e2e_throughput": None, "throughput_definition": acc_definition,
        "devices": per_device or None,
        "throughput_note": None if acc_throughput else
        (summary_note or "the accuracy summary holds no NPU compute time"),
        "source": "ingested",
    }})
    acc = {**metrics, "backend": NAME, "device": device, "batch_size": acc_bs,
           "weights_sha256": (man.get("export") or {}).get("weights_sha256"),
           "onnx_sha256": (man.get("export") or {}).get("onnx_sha256"),
           "image_list_sha256": man.get("image_list_sha256"),
           "label_file_sha256": data.sha256_file(labels_path),
           "warnings": read_warnings + notes, "source": "ingested from an NPU host"}
    run.write("accuracy", {NAME: {"status": "ok", **acc}})
    bench.write_records(sweep_records, run.record("bench"), AIS_BENCH_DEFINITION)

    atomic_write_text(run_root / "params.yaml", yaml.safe_dump({
        "source": "zoorepro ingest", "result_dir": str(result_dir), "labels": str(labels_path),
        "summaries": sweep_paths, "device": device, "reference_tolerance_pct":
        (man.get("params") or {}).get("reference_tolerance_pct", 1.0),
        "kit_params": man.get("params"),
    }, sort_keys=False))
    if render:
        render_report(run_root, result_dir, labels_path, _aipp_config_path(manifest), man, kernel)
    return run_root


def render_report(run_root: Path, result_dir: Path, labels: Path, aipp_config: str,
                  manifest: dict, kernel: str | None = None) -> Path | None:
    """Execute the report notebook on the run folder and render ``report.html``.
    A failing notebook is kept and recorded in ``records/failure.json``."""
    import papermill as pm
    from . import report, runner
    run = pipeline.Run(run_root)
    cfg = _report_config(run_root, result_dir, labels, aipp_config, manifest)
    try:
        runner.execute(runner.REPORT_NOTEBOOK, cfg, run, kernel)
    except pm.PapermillExecutionError as exc:
        run.write("failure", {"notebook": runner.REPORT_NOTEBOOK,
                              "cell": runner._failing_cell(run.notebooks / runner.REPORT_NOTEBOOK),
                              "error": f"{exc.ename}: {exc.evalue}"})
    executed = run.notebooks / runner.REPORT_NOTEBOOK
    if executed.is_file():
        return report.render_html(executed, run_root / "report.html")
    return None
