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
reads, labelled with the NPU that produced them, then ``report.html``; with ``ladder_from``
(``--ladder-from RUN_DIR``) also the precision ladder: a local run's rows a-e and row f, the
NPU's outputs against that run's row b (:mod:`ingestladder`).  Nothing here computes an NPU
figure: every number comes from the files given.
"""
from __future__ import annotations

import dataclasses
import os
import platform
import re
from pathlib import Path
from typing import Iterable

import numpy as np

from zoorepro.recipe import data, evaluate
from zoorepro.run import provenance, records
from zoorepro.ascend import ingestchecks as checks
from zoorepro.ascend import ingesthost, ingestladder
from zoorepro.ascend.aisclues import DEVICE_DIR, summary_device_id
from zoorepro.ascend.aisformat import (AIS_BENCH_DEFINITION, AIS_BENCH_REAL_DEFINITION, NAME,
                                       PIPELINE_MEAN, arg_value, compute_times, read_summary,
                                       throughput)
from zoorepro.backends.bench import bench_record
from zoorepro.ascend.atc import npu_device_name, parse_cann_version
from zoorepro.errors import IngestError
from zoorepro.files import (atomic_copy, atomic_write_json, atomic_write_text, dump_yaml,
                            links_outside)
from zoorepro.ascend.ingestchecks import (MANIFEST_TYPES, MAX_TEXT_BYTES, TOOL_VERSIONS,  # noqa: F401
                                          parse_pip_show, read_manifest, tool_versions)  # noqa: F401
from zoorepro.run.folder import Run


# ---------------------------------------------------------------- predictions
def read_predictions(folder: str | os.PathLike) -> tuple[evaluate.Predictions, list[str]]:
    """The result folder read by ``evaluate.read_result_folder`` (TXT outputs spread over
    several rows are joined there) and its notes (foreign files, ...)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise IngestError(f"{folder}: result folder not found (give the folder ais_bench "
                          f"wrote, e.g. result/result_bs1)")
    pred = evaluate.read_result_folder(folder, workers=0, backend="ais_bench (NPU)")
    return pred, list(pred.notes)


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
        sh["images"], sh["keys"] = len(pred.keys), list(pred.keys)
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


# --------------------------------------------------------------------- ingest
FIX = ("copy the result folder of one run and its summary again (the throughput is 1000 x "
       "batch size / mean time: a wrong batch size multiplies it)")


def ingest(result_dir: str | os.PathLike, labels_path: str | os.PathLike,
           out_root: str | os.PathLike = "reports", summaries: Iterable = (),
           npu_smi_text: str | None = None, cann_version: str | None = None,
           soc_version: str | None = None, manifest: str | os.PathLike | None = None,
           accuracy_summary: str | os.PathLike | None = None, name: str = "npu",
           npu_smi_file: str | os.PathLike | None = None, recipe: str | None = None,
           ladder_from: str | os.PathLike | None = None) -> Run:
    """Score ``result_dir`` against ``labels_path`` and write a new run folder under
    ``out_root`` (records, ``result.json``, ``metrics.json``); returns it (the CLI renders
    its report with :func:`zoorepro.runner.render_report`).

    ``summaries``: pure-inference ``*_summary.json`` files of a batch sweep.  The accuracy
    run's own summary is ``<result_dir>_summary.json`` beside the folder (or
    ``accuracy_summary``); when it is missing the accuracy is still scored and the records
    say that no throughput came with it.  ``npu_smi_file``: the saved ``npu-smi info`` (or
    its text as ``npu_smi_text``).  ``ladder_from``: a local run folder of the same recipe
    whose precision ladder was measured: its rows a-e and row f, the NPU's results against
    its row b (:mod:`ingestladder`).  Every clue is cross-checked first (:mod:`ingestchecks`):
    nothing is written for results that disagree with themselves or with ``ladder_from``."""
    name = checks.check_run_name(name)
    smi_where = "--npu-smi text"
    if npu_smi_file is not None:
        if npu_smi_text is not None:
            raise IngestError("give npu-smi info as a file or as text, not both")
        npu_smi_text = checks.read_small_text(npu_smi_file, "npu-smi info text (--npu-smi)",
                                              "give the npu-smi.txt run_on_npu.sh saved")
        smi_where = str(npu_smi_file)
    chips, smi_note = ingesthost.npu_smi_chips(npu_smi_text, smi_where)
    ingesthost.check_soc(soc_version, "--soc-version")
    given_labels = labels_path
    result_dir = Path(result_dir).resolve()
    checks.check_not_a_run_folder(result_dir)
    labels_path = Path(labels_path).resolve()
    labels = checks.read_labels_guarded(given_labels, data.read_labels)
    shards = device_shards(result_dir)
    outputs = []
    for folder in [sh["folder"] for sh in shards] or [result_dir]:
        if folder.is_dir():
            found = list(evaluate.list_result_folder(folder)[0].values())
            checks.check_linked_outputs(folder, found)
            outputs += found
    checks.check_bin_sizes(result_dir, outputs)
    if shards:
        pred, read_warnings = read_device_predictions(result_dir, shards)
    else:
        pred, read_warnings = read_predictions(result_dir)
    checks.check_formats(result_dir, pred.paths.values())
    checks.check_constant_outputs(result_dir, pred)
    man = read_manifest(manifest)
    recipe = ingesthost.ingest_recipe(man, manifest, recipe)   # None: none named anywhere
    if man.get("label_file_sha256") not in (None, data.sha256_file(labels_path)):
        raise IngestError(f"{given_labels}: not the label file the kit was made with (its "
                          f"sha256 differs from kit.json's label_file_sha256); give the "
                          f"val_label.txt run_on_npu.sh copied into the results")
    linked = links_outside(result_dir, [*pred.paths.values(), *(sh["summary"] for sh in shards)])
    expected = man.get("keys") or None
    metrics = evaluate.score(pred, labels, expected=expected)
    per_image = metrics.pop("per_image_top1")

    # the accuracy run's summary (one per device when ais_bench ran on several), its batch
    # size and its image count, against the folder name, the kit and the labels
    notes = []
    summary_note = None
    per_device = []
    ext = [(f"the folder name {result_dir.name}", int(m[-1]))
           for m in [re.findall(r"bs([0-9]{1,9})", result_dir.name)] if m]
    if man.get("accuracy_batch_size"):
        ext.append(("the kit's accuracy_batch_size", man["accuracy_batch_size"]))
    problems = []
    if shards:
        if accuracy_summary:
            raise IngestError("--accuracy-summary: a multi-device result folder holds one "
                              "summary per device (device<K>_<i>_summary.json); leave it out")
        for sh in shards:
            if not sh["summary"].is_file():
                raise IngestError(f"{sh['summary']}: summary of {sh['folder'].name} not found; "
                                  f"copy the whole result folder from the NPU host")
            s_ = read_summary(sh["summary"])
            checks.check_accuracy_summary(s_, sh["summary"])
            _, mean, _ = compute_times(s_, sh["summary"])
            bs_ = checks.agree(checks.summary_clues(s_, sh["summary"]) + ext, sh["folder"], FIX)
            checks.check_evidence(s_, sh["summary"], bs_, ext)
            problems += [f"{sh['folder'].name}: {p}"
                         for p in checks.count_problems(s_, sh["summary"], bs_, sh["keys"])]
            per_device.append({"device_id": sh["device_id"], "process": sh["index"],
                               "images": sh["images"], "batch_size": bs_,
                               "throughput": throughput(bs_, mean),
                               "summary": str(sh["summary"])})
        acc_summary_path = shards[0]["summary"]
        acc_summary = read_summary(acc_summary_path)
        asked = arg_value(acc_summary.get("args") or [], "--device", "-d") or ""
        want = [int(d) for d in asked.split(",") if d.strip().isdigit()]
        have = [sh["device_id"] for sh in shards]
        if want and sorted(want) != sorted(have) or len(set(have)) != len(have):
            raise IngestError(
                f"{result_dir}: ais_bench was run with --device {asked} but the folder holds "
                f"{', '.join(sh['folder'].name for sh in shards)}; a device's results are "
                f"missing, doubled or from another run (a timestamped --output without "
                f"--output_dirname can split one run over two folders): copy the complete "
                f"result folder of one run")
    else:
        beside = result_dir.parent / f"{result_dir.name}_summary.json"
        acc_summary_path = Path(accuracy_summary) if accuracy_summary else beside
        acc_summary = read_summary(acc_summary_path) if acc_summary_path.is_file() else None
        if accuracy_summary and acc_summary is None:
            raise IngestError(f"{acc_summary_path}: summary not found")
        if acc_summary is not None:
            checks.check_accuracy_summary(acc_summary, acc_summary_path)
            checks.check_summary_beside(beside, acc_summary_path, acc_summary)
    linked += links_outside(result_dir.parent, [acc_summary_path] if acc_summary else [])
    if linked:
        notes.append(f"{len(linked)} ingested file(s) are symlinks pointing outside the result "
                     f"folder {result_dir}, e.g. {'; '.join(linked[:3])}: those results were "
                     f"read from there, not from what ais_bench wrote in the folder")
    if acc_summary is None:
        summary_note = (f"no {acc_summary_path.name} beside {result_dir.name}: accuracy scored "
                        f"from the outputs alone; no throughput and no device id from the "
                        f"accuracy run")
        notes.append(summary_note)
        acc_bs = checks.agree(ext, result_dir, FIX)
        device_id = man.get("device_id")
    else:
        acc_bs = checks.agree(checks.summary_clues(acc_summary, acc_summary_path) + ext,
                              result_dir, FIX)
        device_id = summary_device_id(acc_summary)
        if not shards:
            checks.check_evidence(acc_summary, acc_summary_path, acc_bs, ext)
            problems += checks.count_problems(acc_summary, acc_summary_path, acc_bs, pred.keys)
    label_gap = None if expected else checks.label_problem(labels, pred.keys, labels_path)
    if label_gap and (man.get("params") or {}).get("allow_label_mismatch") is True:
        notes.append(f"{label_gap}: only the images with an output were scored (the kit's "
                     f"allow_label_mismatch)")
    elif label_gap:
        problems.append(label_gap)
    checks.completeness(result_dir, len(pred.keys), problems)
    if per_device:
        device_id = per_device[0]["device_id"]
        notes.append(f"ais_bench ran on {len(per_device)} NPU devices "
                     f"({', '.join(str(d['device_id']) for d in per_device)}); each image was "
                     f"scored once; throughput is summed over devices as ais_bench's "
                     f"'summary throughput'")

    # the device, in words
    soc, soc_notes = ingesthost.chip_for(chips, device_id, soc_version, man.get("soc_version"),
                                         smi_where)
    notes += [smi_note] if smi_note else []
    notes += soc_notes
    cann = parse_cann_version(cann_version) if cann_version else None
    device = npu_device_name(soc, cann)
    if not chips and not soc_version:
        notes.append(("no npu-smi info given" if not smi_note else "no chip list") + ": the "
                     "chip is " + (f"{soc} from the kit's params" if soc else "not recorded"))
    tools = tool_versions(([Path(manifest).resolve().parent] if manifest else [])
                          + [result_dir.parent.parent, result_dir.parent])
    version = f"{tools or 'ais_bench'} (on the NPU host)"

    # sweep summaries
    sweep_records, sweep_paths = [], []
    for p, s in checks.sweep_summaries(summaries, acc_summary_path if acc_summary else None,
                                       man.get("batch_sizes")):
        sweep_records.append(bench_record(s, p, device, version))
        sweep_paths.append(str(Path(p).resolve()))
    sweep_records.sort(key=lambda r: r["batch_size"])
    ladder = None if ladder_from is None else ingestladder.prepare(
        ladder_from, recipe=recipe, man=man, manifest=manifest, pred=pred, labels=labels,
        labels_path=labels_path, result_dir=result_dir, soc=soc,
        engine=f"{tools or 'ais_bench'} on {device}", sweep=sweep_records)

    # the run folder
    run = Run.create_ingested(out_root, name)
    if recipe is not None:
        run.keep_recipe(recipe)         # the report reads the kit's recipe from the run
    folder = run.results / NAME
    result_file = recipe.scoring.result_file if recipe is not None else evaluate.RESULT_JSON
    evaluate.write_results(metrics, folder, result_file)
    atomic_write_json(folder / "predictions.json", per_image)
    for fname in (result_file, evaluate.METRICS_JSON):
        atomic_copy(folder / fname, run.root / fname)

    acc_throughput = None
    acc_definition = AIS_BENCH_REAL_DEFINITION
    if per_device:
        if all(d["throughput"] for d in per_device):
            acc_throughput = sum(d["throughput"] for d in per_device)
        acc_definition += ("; summed over the NPU devices the accuracy run used (ais_bench's "
                           "'summary throughput' of a multi-device run)")
    elif acc_summary is not None:
        _, mean, mean_from = compute_times(acc_summary, acc_summary_path)
        acc_throughput = throughput(acc_bs, mean) if acc_bs else None
        if mean_from == PIPELINE_MEAN:
            acc_definition += "; " + PIPELINE_MEAN

    acc_args = (acc_summary or {}).get("args")
    run.write(records.IngestRecord(
        source="zoorepro ingest: results produced by ais_bench on an Ascend NPU host",
        result_dir=str(result_dir), labels=str(labels_path),
        accuracy_summary=str(acc_summary_path) if acc_summary is not None else None,
        throughput_from_accuracy_run="yes" if acc_throughput else "no",
        sweep_summaries=sweep_paths, manifest=str(manifest) if manifest else None,
        device=device, soc_version=soc, cann=cann, npu_chips=chips, device_id=device_id,
        notes=notes, read_warnings=read_warnings, devices=per_device or None,
        ais_bench_args=acc_args))
    run.write(records.EnvironmentRecord(
        produced_on="Ascend NPU host (results ingested by zoorepro)",
        npu=soc or "not recorded", cann=cann or "not recorded",
        npu_chips=", ".join(f"{c['npu']}: {c['name']} ({c['health']})" for c in chips) or
        "npu-smi info not given",
        npu_device_id=device_id,
        ais_bench_args=" ".join(map(str, acc_args or [])) or None,
        npu_smi_info=npu_smi_text or None, ingested_on=platform.platform(),
        zoorepro_git_commit=provenance.git_commit()))
    run.write(records.DatasetRecord(
        data_dir=man.get("data_dir") or "not recorded (ingested results)",
        images=metrics["images"], image_list_sha256=man.get("image_list_sha256"),
        label_file=str(labels_path), label_file_sha256=data.sha256_file(labels_path),
        labels_without_image=man.get("labels_without_image"),
        unlabelled_images=man.get("unlabelled_images", 0),
        unlabelled_examples=man.get("unlabelled_examples") or [],
        label_mismatch_allowed=bool((man.get("params") or {}).get("allow_label_mismatch")),
        max_images=man.get("max_images"), bin_dir="on the NPU host", keys=list(pred.keys)))
    export = None           # the kit's records, read by the classes that wrote them
    if man.get("export"):
        export = dataclasses.replace(
            records.ExportRecord.from_json(man["export"], f"{manifest} (export)"), parity=None,
            parity_not_run="ingested NPU results: ONNX/PyTorch parity is checked by a local "
                           "zoorepro run")
        run.write(export)
    if man.get("preprocess"):
        run.write(records.PreprocessRecord.from_json(man["preprocess"], f"{manifest} (preprocess)"))
    if man.get("atc_commands"):
        cmds = [c.replace('"Ascend${chip_name}"', soc or "Ascend${chip_name}")
                for c in man["atc_commands"]]
        run.write(records.AtcRecord(status="ok (on the NPU host)", soc_version=soc,
                                    commands=cmds))
    run.write(records.InferRecord({NAME: records.InferEntry(
        status="ok", backend=NAME, device=device, version=version,
        result_dir=str(result_dir),
        summary=str(acc_summary_path) if acc_summary is not None else None,
        accuracy_batch_size=acc_bs, compute_throughput=acc_throughput, e2e_throughput=None,
        throughput_definition=acc_definition, devices=per_device or None,
        throughput_note=None if acc_throughput else
        (summary_note or "the accuracy summary holds no NPU compute time"),
        source="ingested")}))
    run.write(records.AccuracyRecord({NAME: records.AccuracyEntry(
        status="ok", **metrics, backend=NAME, device=device, batch_size=acc_bs,
        weights_sha256=export.weights_sha256 if export else None,
        onnx_sha256=export.onnx_sha256 if export else None,
        image_list_sha256=man.get("image_list_sha256"),
        label_file_sha256=data.sha256_file(labels_path),
        warnings=read_warnings + notes, source="ingested from an NPU host")}))
    run.write(records.BenchRecord(definition=AIS_BENCH_DEFINITION, records=sweep_records))
    ingestladder.write(run, ladder)

    atomic_write_text(run.root / "params.yaml", dump_yaml({
        "source": "zoorepro ingest", "result_dir": str(result_dir), "labels": str(labels_path),
        "summaries": sweep_paths, "device": device, "reference_tolerance_pct":
        (man.get("params") or {}).get("reference_tolerance_pct", 1.0),
        "kit_params": man.get("params"),
        "recipe": recipe.name if recipe else None,
        "recipe_sha256": recipe.sha256 if recipe else None,
        **({"ladder_from": str(Path(ladder_from).resolve())} if ladder is not None else {}),
    }))
    return run
