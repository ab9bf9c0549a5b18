"""Compare several run folders in one self-contained HTML page (``zoorepro compare``).

Built only from each run folder's records (``records/*.json``) and its per-backend
``results/<backend>/predictions.json``: accuracy side by side, throughput curves of every run
on one plot (with the recipe's published 310P3 / 310B1 series), parity of top-1 predictions
where runs scored the same images, and the environments with their differences highlighted.

Every string that came from a file is escaped; the plot is an embedded PNG; the page loads
nothing from the network.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

from . import references as ref
from . import report
from .data import DataError
from .files import atomic_write_json, atomic_write_text, read_json
from .pipeline import new_run_dir
from .report import esc, fmt, table

DIFF_CLASS = "zr-diff"
PARITY_EXAMPLES = 5


class CompareError(DataError):
    """A run folder that cannot be compared; the message names the file, the problem and the fix."""


@dataclass
class Entry:
    """One run folder, as the comparison sees it."""
    label: str
    data: report.RunData
    predictions: dict = field(default_factory=dict)      # backend -> {image key: top-1 class}
    missing_predictions: dict = field(default_factory=dict)  # backend -> why none

    @property
    def root(self) -> Path:
        return self.data.root

    @property
    def ingested(self) -> bool:
        return bool(self.data.get("ingest"))


# ------------------------------------------------------------ loading
def load_run(run_dir: str | os.PathLike) -> report.RunData:
    """A run folder's records; a clear error when ``run_dir`` is not a readable run folder."""
    root = Path(run_dir)
    fix = ("pass a folder made by 'zoorepro run' or 'zoorepro ingest' "
           "(e.g. reports/demo-YYYYmmdd-HHMMSS)")
    if not root.exists():
        raise CompareError(f"{root}: folder not found; {fix}")
    if not root.is_dir():
        raise CompareError(f"{root}: not a folder; {fix}")
    records = root / "records"
    if not records.is_dir():
        raise CompareError(f"{root}: not a zoorepro run folder (no records/ folder inside); {fix}")
    for name in report.RECORDS:
        p = records / f"{name}.json"
        if p.is_file():
            try:
                read_json(p)
            except (OSError, ValueError) as exc:
                raise CompareError(f"{p}: cannot be read as JSON ({exc}); the run folder is "
                                   f"damaged: rerun that run, or leave it out of the "
                                   f"comparison") from None
    data = report.load(root)
    if not any(data.get(n) for n in ("accuracy", "bench", "environment", "infer")):
        raise CompareError(f"{records}: no accuracy, bench, infer or environment record; the run "
                           f"stopped before producing results: rerun it, or leave it out")
    return data


def _read_predictions(root: Path, backend: str) -> tuple[dict | None, str | None]:
    p = root / "results" / backend / "predictions.json"
    if not p.is_file():
        return None, f"no {p.relative_to(root)} in this run folder"
    try:
        preds = read_json(p)
    except (OSError, ValueError) as exc:
        return None, f"{p.relative_to(root)} cannot be read ({exc})"
    if not isinstance(preds, dict):
        return None, f"{p.relative_to(root)} is not a {{image key: class}} mapping"
    return preds, None


def _labels(roots: list[Path]) -> list[str]:
    names = [r.resolve().name or str(r) for r in roots]
    out = []
    for i, n in enumerate(names):
        out.append(n if names.count(n) == 1 else f"{n} #{i + 1}")
    return out


def load_entries(run_dirs) -> list[Entry]:
    roots = [Path(d) for d in run_dirs]
    datas = [load_run(r) for r in roots]
    entries = []
    for label, data in zip(_labels(roots), datas):
        e = Entry(label, data)
        for backend, m in (data.get("accuracy") or {}).items():
            if m.get("status") != "ok":
                continue
            preds, why = _read_predictions(data.root, backend)
            if preds is None:
                e.missing_predictions[backend] = why
            else:
                e.predictions[backend] = preds
        entries.append(e)
    return entries


# ------------------------------------------------------------ sections
def runs_section(entries: list[Entry]) -> str:
    rows = []
    for e in entries:
        d = e.data.get("dataset") or {}
        f = e.data.get("failure")
        status = (f"failed in {f.get('notebook')}, cell {f.get('cell')}: {f.get('error')}" if f
                  else "complete")
        backends = ", ".join(f"{b} ({st.get('status')})" for b, st in (e.data.get("infer") or {}).items())
        rows.append([e.label, str(e.root.resolve()), backends or "—", d.get("images"),
                     "ingested from an NPU host" if e.ingested else "run by zoorepro", status])
    return table(["run", "folder", "backends", "images", "source", "status"], rows)


def accuracy_section(entries: list[Entry]) -> str:
    rows = []
    for e in entries:
        acc = e.data.get("accuracy") or {}
        if not acc:
            rows.append([e.label, "—", "", "", "", "", "", "", "", "no accuracy record: evaluation did not run"])
        for backend, m in acc.items():
            if m.get("status") != "ok":
                rows.append([e.label, backend, "not run", "", "", "", "", "", "", m.get("reason", "")])
                continue
            rows.append([e.label, backend, m.get("device"), fmt(m.get("images"))] +
                        [fmt(m.get(f"top{i}")) for i in range(1, 6)] +
                        [f"{report.describe_weights(m.get('weights_sha256'), e.ingested)}; weights "
                         f"sha256 {str(m.get('weights_sha256'))[:12]}; images sha256 "
                         f"{str(m.get('image_list_sha256'))[:12]}; bs {m.get('batch_size')}"])
    for label, (a1, a5) in ref.ACCURACY.items():
        rows.append([label + " (published)", "", "", f"{ref.FULL_VAL_IMAGES:,}", f"{a1:.2f}", "",
                     "", "", f"{a5:.2f}",
                     ref.TORCHVISION_SOURCE if label.startswith("torchvision") else ref.RECIPE_SOURCE])
    return table(["run", "backend", "device", "images", "Acc@1 %", "Acc@2 %", "Acc@3 %",
                  "Acc@4 %", "Acc@5 %", "weights; image list; batch"], rows, cls="zr-table zr-acc")


def throughput_figure(entries: list[Entry]):
    """Throughput vs batch size of every (run, backend), with the recipe's NPU series dashed."""
    groups: dict = {}
    for e in entries:
        for r in (e.data.get("bench") or {}).get("records", []):
            if r.get("throughput"):
                label = f"{e.label}: {r['backend']} {r.get('precision', 'fp32')} ({r.get('device')})"
                groups.setdefault(label, []).append(r)
    return report.plot_throughput(groups, "Throughput by batch size, all runs (ais_bench definition)")


def throughput_section(entries: list[Entry]) -> str:
    rows = []
    defs = []
    for e in entries:
        bench = e.data.get("bench") or {}
        if bench.get("definition"):
            defs.append([e.label, bench["definition"]])
        rows.extend([e.label] + r for r in report.throughput_rows(e.data))
    img = report.figure_html(throughput_figure(entries),
                     "Throughput by batch size of every run, with the recipe's published series")
    body = img + table(["run"] + report.THROUGHPUT_HEADERS, rows)
    if defs:
        body += "<h3>Throughput definitions</h3>" + table(["run", "definition"], defs)
    return body


def parity_pairs(entries: list[Entry]) -> list[dict]:
    """Every pair of (run, backend) predictions: common images and top-1 agreement."""
    items = [(e, b, p) for e in entries for b, p in e.predictions.items()]
    out = []
    for (ea, ba, pa), (eb, bb, pb) in combinations(items, 2):
        common = [k for k in pa if k in pb]
        differ = [k for k in common if pa[k] != pb[k]]
        out.append({"run_a": ea.label, "backend_a": ba, "run_b": eb.label, "backend_b": bb,
                    "common_images": len(common),
                    "top1_agreement_pct": (100.0 * (len(common) - len(differ)) / len(common)
                                           if common else None),
                    "disagreements": len(differ), "examples": differ[:PARITY_EXAMPLES]})
    return out


def parity_section(entries: list[Entry], pairs: list[dict]) -> str:
    rows = []
    for p in pairs:
        if not p["common_images"]:
            rows.append([p["run_a"], p["backend_a"], p["run_b"], p["backend_b"], 0,
                         "no common images", ""])
            continue
        ex = ", ".join(p["examples"])
        rows.append([p["run_a"], p["backend_a"], p["run_b"], p["backend_b"], p["common_images"],
                     fmt(p["top1_agreement_pct"], 2, " %"),
                     f"{p['disagreements']} differ" + (f", e.g. {ex}" if ex else "")])
    notes = [f"{e.label} / {b}: {why}" for e in entries for b, why in e.missing_predictions.items()]
    out = (table(["run A", "backend A", "run B", "backend B", "common images", "top-1 agreement",
                  "disagreements"], rows) if rows
           else "<p>Fewer than two (run, backend) prediction sets: nothing to compare.</p>")
    out += ("<p class='zr-note'>Top-1 class per image from each backend's "
            "results/&lt;backend&gt;/predictions.json, compared on the image keys both scored.</p>")
    if notes:
        out += "<p>Left out (no predictions):</p><ul>" + "".join(
            f"<li>{esc(n)}</li>" for n in notes) + "</ul>"
    return out


def _env_rows(e: Entry) -> dict:
    """Flat {item: value} describing what produced a run."""
    d = e.data
    env = d.get("environment") or {}
    rows = {k: v for k, v in env.items() if k != "packages"}
    rows.update({f"package {k}": v or "not installed" for k, v in (env.get("packages") or {}).items()})
    for b, st in (d.get("infer") or {}).items():
        rows[f"device of {b}"] = st.get("device") if st.get("status") == "ok" else f"not run: {st.get('reason', '')}"
    ing = d.get("ingest") or {}
    for k in ("soc_version", "cann", "device_id"):
        if ing.get(k) is not None:
            rows[f"NPU {k}"] = ing.get(k)
    ds = d.get("dataset") or {}
    ex = d.get("export") or {}
    rows.update({"images": ds.get("images"), "image list sha256": ds.get("image_list_sha256"),
                 "label file sha256": ds.get("label_file_sha256"),
                 "weights sha256": ex.get("weights_sha256"),
                 "weights identified as": report.describe_weights(ex.get("weights_sha256"), e.ingested),
                 "ONNX sha256": ex.get("onnx_sha256")})
    return rows


def environment_section(entries: list[Entry]) -> str:
    per_run = [_env_rows(e) for e in entries]
    keys: list = []
    for r in per_run:
        keys.extend(k for k in r if k not in keys)
    rows, classes = [], []
    for k in keys:
        values = ["—" if r.get(k) is None else str(r.get(k)) for r in per_run]
        differs = len(set(values)) > 1
        rows.append([k] + values + ["differs" if differs else "same"])
        classes.append(DIFF_CLASS if differs else "")
    html = table(["item"] + [e.label for e in entries] + ["across runs"], rows, cls="zr-table zr-env")
    n = sum(bool(c) for c in classes)
    return (f"<p>{n} of {len(rows)} item(s) differ between the runs (highlighted).</p>"
            + _mark_rows(html, classes))


def _mark_rows(html: str, classes: list[str]) -> str:
    """Give body rows of a :func:`report.table` a CSS class.  Safe because every cell of that
    table was escaped (no Raw cells), so ``<tr>`` only occurs as a real row tag."""
    head, sep, body = html.partition("<tbody>")
    parts = body.split("<tr>")
    assert len(parts) == len(classes) + 1, "every row needs a class (or '')"
    rows = "".join((f'<tr class="{esc(c)}">' if c else "<tr>") + p
                   for c, p in zip(classes, parts[1:]))
    return head + sep + parts[0] + rows


# ------------------------------------------------------------ page
def template_css() -> str:
    """The report template's own stylesheet, so both pages look alike."""
    src = (report.TEMPLATE_DIR / "zoorepro" / "index.html.j2").read_text(encoding="utf-8")
    m = re.search(r"<style[^>]*>(.*?)</style>", src, re.S)
    return m.group(1) if m else ""


PAGE_CSS = """
  body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
         sans-serif; font-size: 14px; line-height: 1.45; color: #222; }
  h1 { font-size: 24px; } h2 { font-size: 19px; margin-top: 26px; border-bottom: 1px solid #ddd; }
  h3 { font-size: 15px; }
  .zr-table tr.zr-diff td { background: #fff3cd; }
  .zr-table tr.zr-diff td:first-child { font-weight: bold; border-left: 4px solid #e0a800; }
  .jp-OutputArea { overflow-x: auto; }
  .zr-acc td, .zr-acc th { overflow-wrap: break-word; }
  .zr-env td:first-child { min-width: 9em; }
  @media (max-width: 600px) { .zr-table { min-width: 560px; } h1 { font-size: 20px; } }
"""


def render(entries: list[Entry], pairs: list[dict] | None = None) -> str:
    pairs = parity_pairs(entries) if pairs is None else pairs
    across = [p for p in pairs if p["common_images"] and p["run_a"] != p["run_b"]]
    lines = [f"<b>{len(entries)} runs compared</b>: " + ", ".join(esc(e.label) for e in entries) + "."]
    if across:
        pct = [p["top1_agreement_pct"] for p in across]
        lines.append(f"Top-1 agreement between runs on common images: <b>{fmt(min(pct), 2, ' %')}"
                     + (f" – {fmt(max(pct), 2, ' %')}" if max(pct) != min(pct) else "")
                     + f"</b> over {len(across)} pair(s) of (run, backend); "
                     f"{max(p['common_images'] for p in across):,} common images at most.")
    else:
        lines.append("No two runs scored common images: no prediction parity between runs.")
    best = []
    for e in entries:
        b = report.best_throughput(e.data)
        if b:
            best.append(f"{esc(e.label)}: {b['throughput']:,.1f} img/s ({esc(b['backend'])}, "
                        f"batch {b['batch_size']}, {esc(b['device'])})")
    if best:
        lines.append("Best throughput: " + "; ".join(best) + ".")
    summary = "<br>".join(lines)
    sections = [
        ("Runs", runs_section(entries)),
        ("Accuracy", accuracy_section(entries)),
        ("Throughput by batch size", throughput_section(entries)),
        ("Parity of predictions", parity_section(entries, pairs)),
        ("Environment and inputs", environment_section(entries)),
    ]
    body = "".join(f'<h2 id="{esc(t.lower().replace(" ", "-"))}">{esc(t)}</h2>'
                   f'<div class="jp-OutputArea">{html}</div>' for t, html in sections)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1.0\">"
            "<link rel=\"icon\" href=\"data:,\">"
            "<title>zoorepro comparison</title>"
            f"<style type=\"text/css\">{template_css()}{PAGE_CSS}</style></head>"
            "<body class=\"jp-Notebook\">"
            "<h1>SqueezeNet 1.1 — comparison of zoorepro runs</h1>"
            f'<div class="zr-banner">{summary}</div>{body}</body></html>\n')


def compare(run_dirs, out_dir: str | os.PathLike, name: str = "compare") -> Path:
    """Load ``run_dirs``, render the comparison into a new folder under ``out_dir``; returns it."""
    run_dirs = list(run_dirs)
    if len(run_dirs) < 2:
        raise CompareError(f"{', '.join(map(str, run_dirs)) or '(none)'}: compare needs at least "
                           f"two run folders; pass two or more")
    entries = load_entries(run_dirs)
    pairs = parity_pairs(entries)
    html = render(entries, pairs)
    folder = new_run_dir(out_dir, name)
    atomic_write_json(folder / "compare.json", {
        "runs": [{"label": e.label, "folder": str(e.root.resolve())} for e in entries],
        "parity": pairs})
    atomic_write_text(folder / "report.html", html)
    return folder


__all__ = ["CompareError", "Entry", "compare", "load_entries", "load_run", "parity_pairs",
           "render"]
