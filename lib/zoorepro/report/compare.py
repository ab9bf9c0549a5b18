"""Compare several run folders in one self-contained HTML page (``zoorepro compare``).

Built only from each run folder's records (``records/*.json``) and its per-backend
``results/<backend>/predictions.json``: accuracy side by side, throughput curves of every run
on one plot (with the recipe's published 310P3 / 310B1 series), parity of top-1 predictions
where runs scored the same images, and the environments with their differences highlighted.

The functions below gather what the page shows as data; ``templates/compare.html.j2`` is all
the markup, rendered by the report's autoescaping environment (:func:`report.render`), so every
string that came from a file is escaped.  The plot is an embedded PNG, the stylesheet is
``templates/zoorepro.css`` inline (the report's); the page loads nothing from the network.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

from zoorepro.errors import CompareError  # noqa: F401  (raised here; defined in errors)
from zoorepro.recipe import evaluate
from zoorepro import report
from zoorepro.errors import RecordError
from zoorepro.files import atomic_write_json, atomic_write_text, read_json
from zoorepro.run.folder import Run, new_run_dir
from zoorepro.report import fmt

DIFF_CLASS = "zr-diff"
PARITY_EXAMPLES = 5


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
        return self.data.ingested


# ------------------------------------------------------------ loading
def open_run(run_dir) -> Run:
    """The :class:`Run` of a folder given on the command line, with a clear error when it is
    not a readable run folder."""
    if isinstance(run_dir, Run):
        return run_dir
    root = Path(run_dir)
    fix = ("pass a folder made by 'zoorepro run' or 'zoorepro ingest' "
           "(e.g. reports/demo-YYYYmmdd-HHMMSS)")
    if not root.exists():
        raise CompareError(f"{root}: folder not found; {fix}")
    if not root.is_dir():
        raise CompareError(f"{root}: not a folder; {fix}")
    if not (root / "records").is_dir():
        raise CompareError(f"{root}: not a zoorepro run folder (no records/ folder inside); {fix}")
    return Run.open(root)


def run_data(run) -> report.RunData:
    """A run's records, each checked by its record class; a damaged record is an error that
    says to rerun that run or leave it out."""
    run = open_run(run)
    try:
        data = report.load(run)
    except RecordError as exc:
        raise CompareError(f"{exc}: rerun that run, or leave it out of the comparison") from None
    if not (data.accuracy_entries or data.bench or data.environment or data.infer_entries):
        raise CompareError(f"{run.records_dir}: no accuracy, bench, infer or environment "
                           f"record; the run stopped before producing results: rerun it, or "
                           f"leave it out")
    return data


def _read_predictions(root: Path, backend: str) -> tuple[dict | None, str | None]:
    p = root / "results" / backend / "predictions.json"
    if not p.is_file():
        return None, f"no {p.relative_to(root)} in this run folder"
    try:
        preds = read_json(p, max_bytes=evaluate.PREDICTIONS_MAX_BYTES)
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


def load_entries(runs) -> list[Entry]:
    """The comparison's entries from :class:`Run` objects (or their folders)."""
    runs = [open_run(r) for r in runs]
    roots = [r.root for r in runs]
    datas = [run_data(r) for r in runs]
    entries = []
    for label, data in zip(_labels(roots), datas):
        e = Entry(label, data)
        for backend, m in data.accuracy_entries.items():
            if m.status != "ok":
                continue
            preds, why = _read_predictions(data.root, backend)
            if preds is None:
                e.missing_predictions[backend] = why
            else:
                e.predictions[backend] = preds
        entries.append(e)
    return entries


# ------------------------------------------------------------ the page, as data
# Each function gathers what one part of the page shows; compare.html.j2 is all the markup.
def runs_rows(entries: list[Entry]) -> list[list]:
    rows = []
    for e in entries:
        d = e.data.dataset
        f = e.data.failure
        status = f"failed in {f.notebook}, cell {f.cell}: {f.error}" if f else "complete"
        backends = ", ".join(f"{b} ({st.status})" for b, st in e.data.infer_entries.items())
        rows.append([e.label, str(e.root.resolve()), backends or "—", d and d.images,
                     "ingested from an NPU host" if e.ingested else "run by zoorepro", status])
    return rows


def accuracy_rows(entries: list[Entry]) -> list[list]:
    rows = []
    for e in entries:
        acc = e.data.accuracy_entries
        if not acc:
            rows.append([e.label, "—", "", "", "", "", "", "", "",
                         "no accuracy record: evaluation did not run"])
        for backend, m in acc.items():
            if m.status != "ok":
                rows.append([e.label, backend, "not run", "", "", "", "", "", "", m.reason or ""])
                continue
            rows.append([e.label, backend, m.device, fmt(m.images)] +
                        [fmt(getattr(m, f"top{i}")) for i in range(1, 6)] +
                        [f"{report.describe_weights(m.weights_sha256, e.ingested, e.data.recipe)}"
                         f"; weights "
                         f"sha256 {str(m.weights_sha256)[:12]}; images sha256 "
                         f"{str(m.image_list_sha256)[:12]}; bs {m.batch_size}"])
    many = len(recipes_of(entries)) > 1
    for recipe in recipes_of(entries).values():
        for label, images, a1, a5, source in report.published_accuracy(recipe):
            label = f"{recipe.title}: {label}" if many else label
            rows.append([label + " (published)", "", "", f"{images:,}", f"{a1:.2f}", "",
                         "", "", "" if a5 is None else f"{a5:.2f}", source])
    return rows


def recipes_of(entries: list) -> dict:
    """``{recipe name: Recipe}`` of the runs compared, in order (runs that kept none: none)."""
    out: dict = {}
    for e in entries:
        r = e.data.recipe
        if r is not None:
            out.setdefault(r.name, r)
    return out


def published_series(entries: list) -> dict:
    """The recipes' published throughput series, each labelled with its recipe when the runs
    follow more than one."""
    recipes = recipes_of(entries)
    many = len(recipes) > 1
    return {(f"{r.title}: {label}" if many else label): series
            for r in recipes.values() for label, series in r.throughput_labels().items()}


def throughput_figure(entries: list[Entry]):
    """Throughput vs batch size of every (run, backend), with the recipe's NPU series dashed.
    A series has its report's colour (plotstyle); the same series of a later run is keyed by
    its run too, so it gets a colour of its own."""
    from zoorepro.report.plotstyle import series_groups
    groups: dict = {}
    for e in entries:
        recs = [r for r in e.data.bench_rows if r.throughput]
        for key, group in series_groups(recs, prefix=f"{e.label}: ").items():
            groups[f"{e.label}: {key}" if key in groups else key] = group
    return report.plot_throughput(
        groups, "Throughput by batch size, all runs (ais_bench definition)",
        published_series(entries))


def throughput_data(entries: list[Entry]) -> dict:
    """The plot (the page's one piece of trusted HTML), the bench rows, their notes (busy
    host, percentiles from few iterations) and the definitions."""
    rows, defs, recs, runs = [], [], [], []
    for e in entries:
        bench = e.data.bench
        if bench and bench.definition:
            defs.append([e.label, bench.definition])
        rows.extend([e.label] + r for r in report.throughput_rows(e.data))
        recs.extend(e.data.bench_rows)
        runs.extend([e.label] * len(e.data.bench_rows))
    plot = report.figure_html(
        throughput_figure(entries),
        "Throughput by batch size of every run, with the recipe's published series")
    return {"plot": plot, "headers": ["run"] + report.THROUGHPUT_HEADERS, "rows": rows,
            "definitions": defs, "notes": report.throughput_notes(recs, runs)}


def parity_pairs(entries: list[Entry]) -> list[dict]:
    """Every pair of (run, backend) predictions: common images and top-1 agreement."""
    items = [(e, b, p) for e in entries for b, p in e.predictions.items()]
    out = []
    for (ea, ba, pa), (eb, bb, pb) in combinations(items, 2):
        common = [k for k in pa if k in pb]
        differ = [k for k in common if pa[k] != pb[k]]
        out.append({"run_a": ea.label, "backend_a": ba, "run_b": eb.label, "backend_b": bb,
                    "common_images": len(common),
                    "top1_agreement_pct": (evaluate.percent(len(common) - len(differ),
                                                            len(common)) if common else None),
                    "disagreements": len(differ), "examples": differ[:PARITY_EXAMPLES]})
    return out


def parity_data(entries: list[Entry], pairs: list[dict]) -> dict:
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
    left_out = [f"{e.label} / {b}: {why}" for e in entries
                for b, why in e.missing_predictions.items()]
    return {"rows": rows, "left_out": left_out}


def _env_rows(e: Entry) -> dict:
    """Flat {item: value} describing what produced a run."""
    d = e.data
    env = d.environment.data() if d.environment else {}     # every field it records
    rows = {"recipe": d.recipe and f"{d.recipe.name} (sha256 {d.recipe.sha256[:12]})"}
    rows.update({k: v for k, v in env.items() if k != "packages"})
    rows.update({f"package {k}": v or "not installed"
                 for k, v in (env.get("packages") or {}).items()})
    for b, st in d.infer_entries.items():
        rows[f"device of {b}"] = st.device if st.status == "ok" else f"not run: {st.reason or ''}"
    for k in ("soc_version", "cann", "device_id"):
        if d.ingest and getattr(d.ingest, k) is not None:
            rows[f"NPU {k}"] = getattr(d.ingest, k)
    ds, ex = d.dataset, d.export
    rows.update({"images": ds and ds.images, "image list sha256": ds and ds.image_list_sha256,
                 "label file sha256": ds and ds.label_file_sha256,
                 "weights sha256": ex and ex.weights_sha256,
                 "weights identified as": report.describe_weights(ex and ex.weights_sha256,
                                                                  e.ingested, d.recipe),
                 "ONNX sha256": ex and ex.onnx_sha256})
    return rows


def environment_data(entries: list[Entry]) -> dict:
    """Every item of every run, one row each; ``classes``: DIFF_CLASS where the runs differ."""
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
    return {"rows": rows, "classes": classes, "differing": sum(bool(c) for c in classes)}


def summary_data(entries: list[Entry], pairs: list[dict]) -> dict:
    """The banner: agreement across runs (None when no two runs share images), best throughput."""
    across = [p for p in pairs if p["common_images"] and p["run_a"] != p["run_b"]]
    agreement = None
    if across:
        pct = [p["top1_agreement_pct"] for p in across]
        agreement = {"min": min(pct), "max": max(pct), "pairs": len(across),
                     "common": max(p["common_images"] for p in across)}
    best = []
    for e in entries:
        b = report.best_throughput(e.data)
        if b:
            best.append({"label": e.label, "throughput": b.throughput, "backend": b.backend,
                         "batch_size": b.batch_size, "device": b.device})
    return {"agreement": agreement, "best": best}


# ------------------------------------------------------------ page
def render(entries: list[Entry], pairs: list[dict] | None = None) -> str:
    pairs = parity_pairs(entries) if pairs is None else pairs
    titles = [r.title for r in recipes_of(entries).values()] or ["recipe not recorded"]
    return report.render("compare.html.j2", labels=[e.label for e in entries],
                         titles=titles,
                         summary=summary_data(entries, pairs), runs=runs_rows(entries),
                         accuracy=accuracy_rows(entries), throughput=throughput_data(entries),
                         parity=parity_data(entries, pairs),
                         environment=environment_data(entries)) + "\n"


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


__all__ = ["CompareError", "Entry", "compare", "load_entries", "parity_pairs", "run_data",
           "render"]
