"""The report: built only from a run folder's records, rendered to one self-contained HTML.

Every string that came from a file is escaped.  Plots are matplotlib PNGs embedded by
nbconvert; the template loads nothing from the network.
"""
from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from pathlib import Path

from . import references as ref
from .data import sha256_file
from .files import atomic_write_text, read_json

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"


def esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def fmt(value, digits: int = 2, suffix: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{suffix}"
    return f"{value}{suffix}"


def table(headers, rows, cls: str = "zr-table") -> str:
    """An HTML table; every cell is escaped unless it is wrapped in :class:`Raw`."""
    def cell(v):
        return v.html if isinstance(v, Raw) else esc(v)
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


@dataclass(frozen=True)
class Raw:
    html: str


@dataclass
class RunData:
    root: Path
    records: dict = field(default_factory=dict)

    def get(self, name, default=None):
        return self.records.get(name, default)


RECORDS = ("environment", "dataset", "preprocess", "export", "atc", "infer", "bench", "accuracy",
           "parity", "ingest", "failure")


def load(run_dir: str | os.PathLike) -> RunData:
    root = Path(run_dir)
    recs = {}
    for name in RECORDS:
        p = root / "records" / f"{name}.json"
        if p.is_file():
            recs[name] = read_json(p)
    params = root / "params.yaml"
    if params.is_file():
        recs["params_text"] = params.read_text(encoding="utf-8")
    return RunData(root, recs)


def describe_weights(sha: str | None, ingested: bool = False) -> str:
    if not sha:
        return ("not recorded (results ingested from an NPU host)" if ingested
                else "no weights file (ONNX given directly)")
    for prefix, name in ref.KNOWN_WEIGHTS.items():
        if sha.startswith(prefix):
            return name
    demo = Path(__file__).resolve().parents[2] / "demo" / "weights" / "squeezenet1_1_caffe_folded.pth"
    if demo.is_file() and sha256_file(demo) == sha:
        return ref.DEMO_WEIGHTS_NAME
    return "user-supplied weights"


def _ok_accuracy(data: RunData) -> dict:
    return {k: v for k, v in (data.get("accuracy") or {}).items() if v.get("status") == "ok"}


# ------------------------------------------------------------ sections
def failure_banner(data: RunData) -> str:
    f = data.get("failure")
    if not f:
        return ""
    return (f'<div class="zr-banner zr-fail"><b>This run failed</b> in {esc(f.get("notebook"))}, '
            f'cell {esc(f.get("cell"))}: {esc(f.get("error"))}. The sections below show what did '
            f'run; the executed notebook is kept in notebooks/.</div>')


def mismatch_banner(data: RunData) -> str:
    d = data.get("dataset") or {}
    if not (d.get("unlabelled_images") or d.get("labels_without_image")):
        return ""
    return (f'<div class="zr-banner zr-fail"><b>Images and labels differ</b> '
            f'(allow_label_mismatch): {d.get("unlabelled_images", 0)} image(s) without a label were '
            f'left out (e.g. {esc(", ".join(d.get("unlabelled_examples", [])[:5]))}); '
            f'{d.get("labels_without_image", 0)} label(s) have no image (e.g. '
            f'{esc(", ".join(d.get("labels_without_image_examples", [])[:5]))}). Accuracy covers only '
            f'the {d.get("images")} images that have both.</div>')


def verdict(data: RunData) -> str:
    acc = _ok_accuracy(data)
    parts = [failure_banner(data), mismatch_banner(data)]
    if not acc:
        parts.append('<div class="zr-banner zr-fail">No accuracy result: evaluation did not run.</div>')
        return "".join(parts)
    name, m = next(iter(acc.items()))
    weights = describe_weights(m.get("weights_sha256"), bool(data.get("ingest")))
    n = m["images"]
    lines = [f"<b>{esc(name)}</b> on {esc(m.get('device'))}: Acc@1 <b>{m['top1']:.2f} %</b>, "
             f"Acc@5 <b>{m['top5']:.2f} %</b> on {n:,} images (weights: {esc(weights)})."]
    tol = (read_params(data) or {}).get("reference_tolerance_pct", 1.0)
    if n == ref.FULL_VAL_IMAGES and not weights.startswith("demo"):
        r1, r5 = ref.ACCURACY["recipe Ascend310P3"]
        t1, t5 = ref.ACCURACY["torchvision fp32"]
        ok_r = abs(m["top1"] - r1) <= tol and abs(m["top5"] - r5) <= tol
        ok_t = abs(m["top1"] - t1) <= tol and abs(m["top5"] - t5) <= tol
        word = "REPRODUCED" if (ok_r or ok_t) else "NOT reproduced"
        lines.append(f"Verdict: <b>{word}</b> within ±{tol} points of the recipe "
                     f"({r1} / {r5}) or torchvision ({t1} / {t5}).")
    elif weights.startswith("demo"):
        exp = ref.DEMO_EXPECTED
        if n == exp["images"]:
            same = abs(m["top1"] - exp["top1"]) < 1e-9 and abs(m["top5"] - exp["top5"]) < 1e-9
            check = (f"an independent implementation measured {exp['top1']:.2f} / "
                     f"{exp['top5']:.2f} on these {exp['images']} images with these weights — "
                     f"<b>{'matched' if same else 'NOT matched'}</b>")
        else:
            check = (f"not checked: the independent figures ({exp['top1']:.2f} / {exp['top5']:.2f}) "
                     f"are for all {exp['images']} demo images, this run scored {n}")
        fewer = "" if n == ref.FULL_VAL_IMAGES else f", {n:,} images instead of 50,000"
        r1, r5 = ref.ACCURACY["recipe Ascend310P3"]
        lines.append(f"Demo check: {check}. The recipe's {r1} / {r5} is not comparable: other "
                     f"weights{fewer}.")
    else:
        r1, r5 = ref.ACCURACY["recipe Ascend310P3"]
        lines.append(f"Not comparable with the recipe's {r1} / {r5}: {n:,} images "
                     f"(the recipe scores all 50,000).")
    best = best_throughput(data)
    if best:
        lines.append(f"Best throughput: <b>{best['throughput']:,.1f} img/s</b> ({esc(best['backend'])}, "
                     f"batch {best['batch_size']}, {esc(best['device'])}; ais_bench definition: "
                     f"compute only).")
    parts.append('<div class="zr-banner">' + "<br>".join(lines) + "</div>")
    return "".join(parts)


def read_params(data: RunData) -> dict | None:
    import yaml
    text = data.get("params_text")
    return yaml.safe_load(text) if text else None


def best_throughput(data: RunData) -> dict | None:
    recs = [r for r in (data.get("bench") or {}).get("records", []) if r.get("valid") and r.get("throughput")]
    return max(recs, key=lambda r: r["throughput"]) if recs else None


def accuracy_table(data: RunData) -> str:
    rows = []
    for name, m in (data.get("accuracy") or {}).items():
        if m.get("status") != "ok":
            rows.append([f"zoorepro {name}", "not run", "", "", "", "", "", m.get("reason", "")])
            continue
        rows.append([f"zoorepro {name}", m.get("device"), m["images"]] +
                    [f"{m[f'top{i}']:.2f}" for i in range(1, 6)] +
                    [f"bs {m.get('batch_size')}; weights "
                     f"{describe_weights(m.get('weights_sha256'), bool(data.get('ingest')))}; "
                     f"weights sha256 {str(m.get('weights_sha256'))[:12]}; images sha256 "
                     f"{str(m.get('image_list_sha256'))[:12]}"])
    for label, (a1, a5) in ref.ACCURACY.items():
        rows.append([label + " (published)", "", f"{ref.FULL_VAL_IMAGES:,}", f"{a1:.2f}", "", "", "",
                     f"{a5:.2f}",
                     ref.TORCHVISION_SOURCE if label.startswith("torchvision") else ref.RECIPE_SOURCE])
    return table(["run", "device", "images", "Acc@1 %", "Acc@2 %", "Acc@3 %", "Acc@4 %",
                  "Acc@5 %", "what produced it"], rows)


def predictions_sample(data: RunData, limit: int = 12) -> str:
    """The first images of the headline backend: label and top-1, with class names."""
    acc = _ok_accuracy(data)
    if not acc:
        return ""
    name = next(iter(acc))
    path = data.root / "results" / name / "predictions.json"
    if not path.is_file():
        return ""
    from .data import class_names, read_labels
    preds = read_json(path)
    label_file = (data.get("dataset") or {}).get("label_file")
    labels = read_labels(label_file) if label_file and os.path.isfile(label_file) else {}
    names = class_names()

    def named(c):
        return f"{c} {names[c]}" if c is not None and 0 <= c < len(names) else str(c)
    rows = [[k, named(labels.get(k)), named(p), "yes" if labels.get(k) == p else "no"]
            for k, p in list(preds.items())[:limit]]
    return (f"<p class='zr-note'>First {len(rows)} of {len(preds)} images, {esc(name)} backend "
            f"(class names: torchvision's ImageNet metadata).</p>"
            + table(["image", "label", "top-1", "correct"], rows))


def throughput_rows(data: RunData) -> list:
    rows = []
    for r in (data.get("bench") or {}).get("records", []):
        rows.append([r["backend"], r["device"], r.get("precision", "fp32"), r["batch_size"],
                     fmt(r["throughput"], 1), e2e_cell(r), fmt(r["mean_ms"], 3), fmt(r["median_ms"], 3), fmt(r["p90_ms"], 3),
                     fmt(r["p99_ms"], 3), r["iterations"], fmt(r["seconds"], 2),
                     "valid" if r["valid"] else f"INVALID: {r['validity']}"])
    return rows


def e2e_cell(rec: dict) -> str:
    n = rec.get("e2e_streams") or 1
    cell = fmt(rec.get("e2e_throughput"), 1)
    return f"{cell} ({n} streams)" if n > 1 and rec.get("e2e_throughput") else cell


THROUGHPUT_HEADERS = ["backend", "device", "precision", "batch", "compute img/s", "end-to-end img/s",
                      "mean ms", "median ms", "p90 ms", "p99 ms", "iterations", "seconds",
                      "validity"]


def throughput_table(data: RunData) -> str:
    bench = data.get("bench") or {}
    defn = bench.get("definition", "")
    multi = any((r.get("e2e_streams") or 1) > 1 for r in bench.get("records", []))
    e2e = ("End-to-end img/s: reading the .bin files, batching, inference and writing the "
           "outputs, over at least 64 images per batch size"
           + ("; '(N streams)': in the accuracy run's N concurrent streams, while compute "
              "img/s is one session's" if multi else "") + ".")
    return (f"<p class='zr-note'>Compute img/s — {esc(defn)}. {esc(e2e)}</p>" +
            table(THROUGHPUT_HEADERS, throughput_rows(data)))


def e2e_table(data: RunData) -> str:
    rows = []
    for name, st in (data.get("infer") or {}).items():
        if st.get("status") != "ok":
            rows.append([name, "not run", "", "", "", st.get("reason", "")])
            continue
        rows.append([name, st.get("device"), st.get("accuracy_batch_size"),
                     fmt(st.get("compute_throughput"), 1), fmt(st.get("e2e_throughput"), 1),
                     st.get("throughput_note") or accuracy_run_note(st)])
    return table(["backend", "device", "batch", "compute img/s (ais_bench def.)",
                  "end-to-end img/s (read + infer + write)", "note"], rows)


def accuracy_run_note(st: dict) -> str:
    n = st.get("streams") or 1
    if n <= 1:
        return "accuracy run over the whole folder"
    per = st.get("stream_threads") or []
    return (f"accuracy run over the whole folder in {n} concurrent streams"
            + (f" ({'+'.join(map(str, per))} threads)" if per else "")
            + "; compute img/s = ais_bench's formula per stream, summed over streams")


def plot_throughput(groups: dict, title: str):
    """Throughput vs batch size, one line per ``{label: [bench records]}``, with the recipe's
    published NPU series dashed; invalid records marked with a red x."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(8, 4.6), dpi=100)
    ax = fig.subplots()
    for label, recs in groups.items():
        recs = sorted((r for r in recs if r.get("throughput")), key=lambda r: r["batch_size"])
        ax.plot([r["batch_size"] for r in recs], [r["throughput"] for r in recs], "o-",
                label=label[:80])
        bad = [r for r in recs if not r.get("valid")]
        if bad:
            ax.plot([r["batch_size"] for r in bad], [r["throughput"] for r in bad], "x",
                    color="red", markersize=10)
    for label, series in ref.THROUGHPUT.items():
        bss = sorted(series)
        ax.plot(bss, [series[b] for b in bss], "--", alpha=0.6, label=f"{label} (published)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel("images / s (inference call)")
    ax.set_title(title + ("" if groups else " — no bench records"))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def figure_html(fig, alt: str) -> str:
    """A figure as an embedded PNG ``<img>`` (no file, no network)."""
    import base64
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    b64 = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img class="zr-plot" alt="{esc(alt)}" src="data:image/png;base64,{b64}">'


def throughput_plot(data: RunData) -> str:
    """This run's throughput by batch size, per backend (and precision), as an ``<img>``."""
    groups: dict = {}
    for r in (data.get("bench") or {}).get("records", []):
        label = f"zoorepro {r['backend']} {r.get('precision', 'fp32')} ({r['device']})"
        groups.setdefault(label, []).append(r)
    fig = plot_throughput(groups, "Throughput by batch size (ais_bench definition)")
    return figure_html(fig, "Throughput by batch size")


def preprocess_section(data: RunData) -> str:
    pre = data.get("preprocess") or {}
    d = data.get("dataset") or {}
    rows = [["images", pre.get("total")], ["written", pre.get("written")],
            ["reused from an earlier run", pre.get("reused")], ["failed", len(pre.get("failed", []))],
            ["converted to RGB", len(pre.get("non_rgb", []))],
            ["decoded by content (not JPEG)", len(pre.get("not_jpeg", []))],
            [".bin folder", pre.get("out_dir")], ["bytes per .bin", pre.get("bin_bytes")],
            ["image list sha256", d.get("image_list_sha256")]]
    rows += [[f"failed: {n}", r] for n, r in pre.get("failed", [])[:20]]
    return table(["item", "value"], rows)


def parity_section(data: RunData) -> str:
    rows = [[p["a"], p["b"], p["images"], fmt(p["top1_agreement_pct"], 2, " %"),
             fmt(p["max_abs_logit_diff"], 6)] for p in (data.get("parity") or [])]
    if not rows:
        return "<p>Only one backend ran: no cross-backend comparison.</p>"
    return table(["backend A", "backend B", "images", "top-1 agreement", "max |logit A − logit B|"],
                 rows) + ("<p class='zr-note'>Logits compared as written in the result files "
                          "(TXT: 6 decimals, so differences below 5e-7 are not visible).</p>")


def export_section(data: RunData) -> str:
    e = data.get("export")
    if not e:
        return "<p>Export did not run.</p>"
    p = e.get("parity")
    rows = [["ONNX opset", e.get("opset")], ["ONNX sha256", e.get("onnx_sha256")],
            ["AIPP ONNX sha256", e.get("aipp_onnx_sha256")]]
    if p:
        rows += [["images compared", p["images"]],
                 ["max |ONNX − PyTorch| (logits)", f"{p['max_abs_diff']:.3g}"],
                 ["max |AIPP-ONNX − PyTorch| (logits)", f"{p['max_abs_diff_aipp']:.3g}"],
                 ["top-1 agreement", f"{100 * p['top1_agreement']:.1f} %"],
                 ["max |AIPP − torchvision Normalize| (input tensor)", f"{p['max_norm_diff']:.3g}"]]
    else:
        rows.append(["parity", "not run: " + str(e.get("parity_not_run"))])
    a = e.get("aipp", {})
    rows.append(["aipp.config", f"min_chn {a.get('min_chn')}, var_reci_chn {a.get('var_reci_chn')}, "
                                f"mean_chn {a.get('mean_chn')}, crop {a.get('crop')}, "
                                f"swap {a.get('rbuv_swap_switch')}"])
    return table(["check", "value"], rows)


def atc_section(data: RunData) -> str:
    a = data.get("atc")
    if not a:
        return "<p>ATC step did not run.</p>"
    head = (f"<p><b>ATC: {esc(a['status'])}</b>" + (f" — {esc(a.get('reason'))}" if a.get("reason") else "")
            + ". The recipe's commands for this run:</p>")
    note = ("" if a.get("soc_version") else
            "<p class='zr-note'>${chip_name}: the chip's name from 'npu-smi info' (e.g. 310P3), "
            "as in the recipe's README.</p>")
    return head + "<pre>" + esc("\n".join(a.get("commands", []))) + "</pre>" + note


def npu_section(data: RunData) -> str:
    infer = data.get("infer") or {}
    if "ais_bench" in infer and infer["ais_bench"].get("status") == "ok":
        st = infer["ais_bench"]
        ing = data.get("ingest") or {}
        rows = [["device", st.get("device")], ["chip (soc_version)", ing.get("soc_version")],
                ["CANN", ing.get("cann")], ["NPU device id", ing.get("device_id")],
                ["source", ing.get("source") or "ais_bench run by zoorepro on this host"],
                ["throughput definition", (data.get("bench") or {}).get("definition")]]
        rows += [["note", n] for n in ing.get("notes", [])]
        return ("<p><b>Ascend NPU results</b>: produced by ais_bench on the NPU named below.</p>"
                + table(["item", "value"], rows))
    reason = infer.get("ais_bench", {}).get("reason") or (
        "ais_bench was not among this run's backends, and no NPU results were ingested")
    return (f"<p><b>Ascend NPU (ATC + ais_bench): not run here.</b> {esc(reason)} "
            f"No figure in this report comes from an NPU; the 310P3/310B1 series are the recipe's "
            f"published numbers.</p>" + atc_section(data))


def warnings_section(data: RunData) -> str:
    """Everything odd that did not stop the run, by file name."""
    items = []
    for name, st in (data.get("infer") or {}).items():
        if st.get("foreign_files"):
            items.append(f"{name}: {len(st['foreign_files'])} file(s) in the .bin folder are not "
                         f".bin/.npy inputs and were skipped: {', '.join(st['foreign_files'][:10])}")
    for name, m in (data.get("accuracy") or {}).items():
        items.extend(f"{name}: {w}" for w in m.get("warnings", []))
    pre = data.get("preprocess") or {}
    items.extend(f"preprocessing failed for {n}: {r}" for n, r in pre.get("failed", []))
    items.extend(f"{n}: {m} image converted to RGB (as the recipe does)" for n, m in pre.get("non_rgb", []))
    items.extend(f"{n}: a {f} file with an image extension, decoded by content"
                 for n, f in pre.get("not_jpeg", []))
    if not items:
        return "<p>No warnings: every image decoded as an RGB JPEG and no stray files were found.</p>"
    return "<ul>" + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>"


def environment_section(data: RunData) -> str:
    env = data.get("environment") or {}
    rows = [[k, v] for k, v in env.items() if k != "packages"]
    rows += [[f"package {k}", v or "not installed"] for k, v in (env.get("packages") or {}).items()]
    return table(["item", "value"], rows)


def provenance_section(data: RunData) -> str:
    d = data.get("dataset") or {}
    e = data.get("export") or {}
    rows = [["images", d.get("images")], ["image folder", d.get("data_dir")],
            ["image list sha256 (name + size)", d.get("image_list_sha256")],
            ["label file", d.get("label_file")], ["label file sha256", d.get("label_file_sha256")],
            ["weights", e.get("weights")], ["weights sha256", e.get("weights_sha256")],
            ["weights identified as", describe_weights(e.get("weights_sha256"), bool(data.get("ingest")))],
            ["ONNX sha256", e.get("onnx_sha256")], ["aipp.config sha256", e.get("aipp_config_sha256")],
            ["zoorepro git commit", (data.get("environment") or {}).get("zoorepro_git_commit")]]
    pre = data.get("preprocess") or {}
    if pre.get("non_rgb"):
        rows.append(["converted to RGB", ", ".join(f"{n} ({m})" for n, m in pre["non_rgb"])])
    if pre.get("not_jpeg"):
        rows.append(["decoded by content (not JPEG)", ", ".join(f"{n} ({f})" for n, f in pre["not_jpeg"])])
    params = data.get("params_text") or ""
    return table(["item", "value"], rows) + f"<h4>Params as run</h4><pre>{esc(params)}</pre>"


def notebook_links(data: RunData) -> str:
    nbs = sorted((data.root / "notebooks").glob("*.ipynb"))
    if not nbs:
        return "<p>No executed notebooks in this run folder.</p>"
    return "<ul>" + "".join(f'<li><a href="notebooks/{esc(p.name)}">{esc(p.name)}</a></li>'
                            for p in nbs) + "</ul>"


# ------------------------------------------------------------ rendering
def render_html(executed_notebook: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Executed report notebook -> self-contained HTML (code hidden, no network requests)."""
    import nbformat
    from nbconvert import HTMLExporter
    nb = nbformat.read(str(executed_notebook), as_version=4)
    exporter = HTMLExporter(template_name="zoorepro", extra_template_basedirs=[str(TEMPLATE_DIR)],
                            exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": "zoorepro report"}})
    return atomic_write_text(dest, body)
