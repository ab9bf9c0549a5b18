"""The report's sections: each gathers what it shows from a run's records and renders its
template, ``templates/report/<function name>.html.j2``.  No markup is written here; every
value is escaped by the template environment (:func:`zoorepro.report.core.jinja_env`).

Reached as ``report.<name>`` (``report.verdict(data)``, ...), as the notebooks call them.
"""
from __future__ import annotations

import os

from zoorepro.backends.registry import runs_on_npu
from zoorepro.files import read_json
from zoorepro.recipe.preprocess import conversion_note
from zoorepro.report.plotstyle import plot_throughput, series_groups
from zoorepro.report.throughput import (THROUGHPUT_HEADERS, bench_records, throughput_notes,
                                        throughput_rows)
from zoorepro.report.core import (RunData, ok_accuracy, accuracy_run_note, describe_weights,
                                  figure_html, fmt, published_accuracy, ratio, render,
                                  verdict_of)


def _section(name: str, **context) -> str:
    return render(f"report/{name}.html.j2", **context)


def failure_banner(data: RunData) -> str:
    return _section("failure_banner", failure=data.failure)


def _mismatch(data: RunData) -> dict | None:
    d = data.dataset
    if d is None or not (d.unlabelled_images or d.labels_without_image):
        return None
    return {"unlabelled": d.unlabelled_images,
            "unlabelled_examples": ", ".join(d.unlabelled_examples[:5]),
            "without_image": d.labels_without_image,
            "without_image_examples": ", ".join(d.labels_without_image_examples[:5]),
            "images": d.images}


def mismatch_banner(data: RunData) -> str:
    return _section("mismatch_banner", mismatch=_mismatch(data))


def verdict(data: RunData) -> str:
    """The headline: failure / label-mismatch banners, then :func:`report.verdict_of` worded."""
    return _section("verdict", failure=data.failure, mismatch=_mismatch(data),
                    v=verdict_of(data))


def accuracy_table(data: RunData) -> str:
    rows = []
    for name, m in data.accuracy_entries.items():
        if m.status != "ok":
            rows.append([f"zoorepro {name}", "not run", "", "", "", "", "", m.reason or ""])
            continue
        rows.append([f"zoorepro {name}", m.device, m.images] +
                    [f"{getattr(m, f'top{i}'):.2f}" for i in range(1, 6)] +
                    [f"bs {m.batch_size}; weights "
                     f"{describe_weights(m.weights_sha256, data.ingested, data.recipe)}; "
                     f"weights sha256 {str(m.weights_sha256)[:12]}; images sha256 "
                     f"{str(m.image_list_sha256)[:12]}"])
    for label, images, a1, a5, source in published_accuracy(data.recipe):
        rows.append([label + " (published)", "", f"{images:,}", f"{a1:.2f}",
                     "", "", "", "" if a5 is None else f"{a5:.2f}", source])
    return _section("accuracy_table", rows=rows, int8=_int8_note(data))


def _int8_note(data: RunData) -> str | None:
    """Where an accuracy figure came from the int8 model: what it was calibrated on."""
    ran = [n for n, e in data.infer_entries.items() if e.status == "ok" and e.precision == "int8"]
    q = data.quantize
    if not ran:
        return None
    if q is None:
        return (f"{', '.join(ran)} ran the int8 model, but the run has no quantize record: "
                f"its calibration is unknown")
    return (f"{', '.join(ran)} ran the int8 model ({q.method} sha256 {q.model_sha256[:12]}), "
            f"calibrated on {q.calibration_set}.")


def predictions_sample(data: RunData, limit: int = 12) -> str:
    """The first images of the headline backend: label and top-1, with class names."""
    acc = ok_accuracy(data)
    if not acc:
        return ""
    name = next(iter(acc))
    path = data.root / "results" / name / "predictions.json"
    if not path.is_file():
        return ""
    from zoorepro.recipe.evaluate import PREDICTIONS_MAX_BYTES
    from zoorepro.recipe.data import class_names, read_labels
    preds = read_json(path, max_bytes=PREDICTIONS_MAX_BYTES)
    label_file = data.dataset.label_file if data.dataset else None
    labels = read_labels(label_file) if label_file and os.path.isfile(label_file) else {}
    names = class_names()

    def named(c):
        return f"{c} {names[c]}" if c is not None and 0 <= c < len(names) else str(c)
    rows = [[k, named(labels.get(k)), named(p), "yes" if labels.get(k) == p else "no"]
            for k, p in list(preds.items())[:limit]]
    return _section("predictions_sample", backend=name, rows=rows, total=len(preds))


def throughput_table(data: RunData) -> str:
    return _section("throughput_table", definition=data.bench.definition if data.bench else "",
                    headers=THROUGHPUT_HEADERS, rows=throughput_rows(data),
                    notes=throughput_notes(bench_records(data)))


RATIO_HEADERS = ["backend", "device", "precision", "timing", "batch", "ours img/s"]
NOT_COMPARABLE_TIMING = "not comparable: timed with host-device copies (set timing: device)"


def chip_name(chip: str) -> str:
    """``Ascend310P3`` as the recipes' tables head it: ``310P3``."""
    return chip[len("Ascend"):] if chip.startswith("Ascend") else chip


def published_throughput(recipe) -> dict:
    """``{chip: {batch size: img/s}}`` the recipe publishes ({} without a recipe)."""
    return dict(recipe.published.throughput) if recipe is not None else {}


def recipe_ratio_headers(data: RunData) -> list:
    return RATIO_HEADERS + [h for chip in published_throughput(data.recipe)
                            for h in (f"{chip_name(chip)} img/s", f"ours / {chip_name(chip)}")]


def recipe_ratio_rows(data: RunData) -> list:
    """Our figure beside each chip's published one at each of the recipe's batch sizes, with
    the ratio -- only for records timed as ais_bench times (device compute only): a GPU
    figure timed around the call (with its copies) is listed as not comparable."""
    chips = published_throughput(data.recipe)
    sizes = {bs for series in chips.values() for bs in series}
    rows = []
    for r in data.bench_rows:
        bs, ours = r.batch_size, r.throughput
        if bs not in sizes or not ours:
            continue
        comparable = r.timing == "device" or str(r.device).startswith(("cpu", "npu"))
        mark = ("" if r.valid else " (invalid timing)") + (" (busy host)" if r.busy else "")
        row = [r.backend, r.device, r.precision, (r.timing or "device") if comparable
               else (r.timing or "call"), bs, fmt(ours, 1) + (mark if comparable else "")]
        for k, series in enumerate(chips.values()):
            theirs = series.get(bs)
            if theirs is None:
                row += ["", ""]
            elif not comparable:
                row += [fmt(theirs, 1), NOT_COMPARABLE_TIMING if k == 0 else ""]
            else:
                row += [fmt(theirs, 1), ratio(ours / theirs)]
        rows.append(row)
    return rows


def recipe_ratio_table(data: RunData) -> str:
    """Our throughput against the recipe's published table, chip by chip, batch by batch."""
    r = data.recipe
    sizes = sorted({bs for s in published_throughput(r).values() for bs in s})
    return _section("recipe_ratio_table", headers=recipe_ratio_headers(data),
                    rows=recipe_ratio_rows(data), source=r.published.source if r else "",
                    sizes=sizes)


def e2e_table(data: RunData) -> str:
    rows = []
    for name, st in data.infer_entries.items():
        if st.status != "ok":
            rows.append([name, "not run", "", "", "", st.reason or ""])
            continue
        rows.append([name, st.device, st.accuracy_batch_size, fmt(st.compute_throughput, 1),
                     fmt(st.e2e_throughput, 1), st.throughput_note or accuracy_run_note(st)])
    return _section("e2e_table", rows=rows)


THROUGHPUT_FIGURE_TITLE = "Throughput by batch size (ais_bench definition)"


def throughput_plot(data: RunData) -> str:
    """This run's throughput by batch size, per backend (and precision), as an ``<img>``."""
    fig = plot_throughput(series_groups(bench_records(data)), THROUGHPUT_FIGURE_TITLE,
                          data.recipe.throughput_labels() if data.recipe else {})
    return figure_html(fig, "Throughput by batch size")


def preprocess_section(data: RunData) -> str:
    pre, d = data.preprocess, data.dataset
    failed = pre.failed if pre else []
    rows = [["images", pre and pre.total], ["written", pre and pre.written],
            ["reused from an earlier run", pre and pre.reused], ["failed", len(failed)],
            ["converted to RGB", len(pre.non_rgb if pre else [])],
            ["decoded by content (not JPEG)", len(pre.not_jpeg if pre else [])],
            [".bin folder", pre and pre.out_dir], ["bytes per .bin", pre and pre.bin_bytes],
            ["image list sha256", d and d.image_list_sha256]]
    rows += [[f"failed: {n}", r] for n, r in failed[:20]]
    return _section("preprocess_section", rows=rows)


def parity_section(data: RunData) -> str:
    rows = [[p.a, p.b, p.images, fmt(p.top1_agreement_pct, 2, " %")
             + (f" ({p.non_finite_images} with NaN/inf scores: disagreeing)"
                if p.non_finite_images else ""),
             fmt(p.max_abs_logit_diff, 6)] for p in (data.parity.pairs if data.parity else [])]
    return _section("parity_section", rows=rows)


def export_section(data: RunData) -> str:
    e = data.export
    if not e:
        return _section("export_section", rows=None)
    p = e.parity         # evaluate's parity figures: a plain mapping
    rows = [["ONNX opset", e.opset], ["ONNX sha256", e.onnx_sha256],
            ["AIPP ONNX sha256", e.aipp_onnx_sha256]]
    if p:
        rows += [["images compared", p["images"]],
                 ["max |ONNX − PyTorch| (logits)", f"{p['max_abs_diff']:.3g}"],
                 ["max |AIPP-ONNX − PyTorch| (logits)", f"{p['max_abs_diff_aipp']:.3g}"],
                 ["top-1 agreement", f"{100 * p['top1_agreement']:.1f} %"
                  + (f" ({p['non_finite_images']} image(s) with NaN/inf scores count as "
                     f"disagreeing)" if p.get("non_finite_images") else "")],
                 ["max |AIPP − torchvision Normalize| (input tensor)", f"{p['max_norm_diff']:.3g}"]]
    else:
        rows.append(["parity", "not run: " + str(e.parity_not_run)])
    a = e.aipp          # the aipp.config's fields: a plain mapping
    rows.append(["aipp.config", f"min_chn {a.get('min_chn')}, "
                                f"var_reci_chn {a.get('var_reci_chn')}, "
                                f"mean_chn {a.get('mean_chn')}, crop {a.get('crop')}, "
                                f"swap {a.get('rbuv_swap_switch')}"])
    return _section("export_section", rows=rows)


def _atc_context(data: RunData) -> dict:
    a = data.atc
    if not a:
        return {"atc": None}
    return {"atc": {"status": a.status, "reason": a.reason, "commands": "\n".join(a.commands),
                    "chip_known": bool(a.soc_version)}}


def atc_section(data: RunData) -> str:
    return _section("atc_section", **_atc_context(data))


def npu_section(data: RunData) -> str:
    npu = {k: st for k, st in data.infer_entries.items() if runs_on_npu(k)}
    ran = next((st for st in npu.values() if st.status == "ok"), None)
    if ran is not None:
        ing = data.ingest
        rows = [["device", ran.device], ["chip (soc_version)", ing and ing.soc_version],
                ["CANN", ing and ing.cann], ["NPU device id", ing and ing.device_id],
                ["source", ing and ing.source or "ais_bench run by zoorepro on this host"],
                ["throughput definition", data.bench and data.bench.definition]]
        rows += [["note", n] for n in (ing.notes if ing else [])]
        return _section("npu_section", ran=True, rows=rows)
    reason = next((st.reason for st in npu.values() if st.reason), None) or (
        "ais_bench was not among this run's backends, and no NPU results were ingested.")
    chips = [chip_name(c) for c in published_throughput(data.recipe)]
    return _section("npu_section", ran=False, reason=reason, chips=chips, **_atc_context(data))


def warnings_section(data: RunData) -> str:
    """Everything odd that did not stop the run, by file name."""
    items = []
    for name, st in data.infer_entries.items():
        items.extend(f"{name}: {n}" for n in st.notes or [])   # shards, teardown
        if st.foreign_files:
            items.append(f"{name}: {len(st.foreign_files)} file(s) in the .bin folder are not "
                         f".bin/.npy inputs and were skipped: {', '.join(st.foreign_files[:10])}")
    for name, m in data.accuracy_entries.items():
        items.extend(f"{name}: {w}" for w in m.warnings)
    items.extend((data.export and data.export.weights_notes) or [])
    pre = data.preprocess
    if pre:
        items.extend(f"preprocessing failed for {n}: {r}" for n, r in pre.failed)
        decoder = data.recipe.preprocess.decoder if data.recipe else "pil"
        items.extend(f"{n}: {conversion_note(m, decoder)}" for n, m in pre.non_rgb)
        items.extend(f"{n}: a {f} file with an image extension, decoded by content"
                     for n, f in pre.not_jpeg)
    return _section("warnings_section", items=items)


def environment_section(data: RunData) -> str:
    env = data.environment.data() if data.environment else {}   # every field it records
    rows = [[k, v] for k, v in env.items() if k != "packages"]
    rows += [[f"package {k}", v or "not installed"] for k, v in (env.get("packages") or {}).items()]
    return _section("environment_section", rows=rows)


def provenance_section(data: RunData) -> str:
    d, e, env, pre = data.dataset, data.export, data.environment, data.preprocess
    rows = [["images", d and d.images], ["image folder", d and d.data_dir],
            ["image list sha256 (name + size)", d and d.image_list_sha256],
            ["label file", d and d.label_file], ["label file sha256", d and d.label_file_sha256],
            ["weights", e and e.weights], ["weights sha256", e and e.weights_sha256],
            ["weights identified as", describe_weights(e and e.weights_sha256, data.ingested,
                                                            data.recipe)],
            ["ONNX sha256", e and e.onnx_sha256],
            ["aipp.config sha256", e and e.aipp_config_sha256],
            ["zoorepro git commit", env and env.zoorepro_git_commit]]
    if pre and pre.non_rgb:
        rows.append(["converted to RGB", ", ".join(f"{n} ({m})" for n, m in pre.non_rgb)])
    if pre and pre.not_jpeg:
        rows.append(["decoded by content (not JPEG)",
                     ", ".join(f"{n} ({f})" for n, f in pre.not_jpeg)])
    return _section("provenance_section", rows=rows, params=data.params_text or "")


def notebook_links(data: RunData) -> str:
    names = [p.name for p in sorted((data.root / "notebooks").glob("*.ipynb"))]
    return _section("notebook_links", names=names)
