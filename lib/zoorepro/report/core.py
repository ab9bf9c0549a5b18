"""The report: built only from a run folder's records, rendered to one self-contained HTML.

Markup lives in Jinja2 templates (``templates/report/*.html.j2``, one per section, and
``templates/compare.html.j2``) rendered by one autoescaping environment, :func:`jinja_env`:
every value that reaches a template is escaped unless it is a :class:`markupsafe.Markup`, and
the only trusted HTML made in Python is the embedded plot (:func:`figure_html`).  What the
headline says is decided as data (:class:`Verdict`, :func:`verdict_of`) and only worded by a
template.  Both pages inline one stylesheet, ``templates/zoorepro.css``.
The section functions (``report.verdict``, ``report.accuracy_table``, ...) live in
:mod:`zoorepro.report.sections` and are reachable here by name.  Plots are matplotlib PNGs
embedded by nbconvert; the template loads nothing from the network.
"""
from __future__ import annotations

import functools
import html
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
from markupsafe import Markup

from zoorepro.recipe import references as ref
from zoorepro.recipe.data import sha256_file
from zoorepro.files import atomic_write_text, project_root
from zoorepro.report.plotstyle import plot_throughput  # noqa: F401  (report.plot_throughput, as before)

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"


def esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def fmt(value, digits: int = 2, suffix: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{suffix}"
    return f"{value}{suffix}"


def ratio(value) -> str:
    """A ratio with three significant digits and a times sign: ``2.60e-3×``, ``0.510×``,
    ``1.00×``, ``12.3×``, ``390×`` (powers of ten below 0.01 and from 1000 on), never
    ``0.000x``."""
    if value is None:
        return "—"
    if value == 0:
        return "0×"
    if 0.01 <= abs(value) < 1000:
        text = f"{value:#.3g}".rstrip(".")
    else:
        mantissa, exponent = f"{value:.2e}".split("e")
        text = f"{mantissa}e{int(exponent)}"
    return text + "×"


# a table cell that is one number (with its unit mark): never wrapped (zoorepro.css .zr-num)
NUMERIC_CELL = re.compile(r"[-+]?(\d[\d,]*(\.\d+)?|\.\d+)(e[-+]?\d+)?( ?(%|×|\*))?")
LONG_TOKEN = 30     # a cell with a word this long (a hash, a path) may wrap inside it (.zr-long)


def is_numeric(value) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, (int, float)) or (
        isinstance(value, str) and NUMERIC_CELL.fullmatch(value.strip()) is not None)


def is_long_token(value) -> bool:
    return isinstance(value, str) and any(len(w) >= LONG_TOKEN for w in value.split())


def urlseg(name) -> str:
    """``name`` as one quoted URL path segment (``:`` ``/`` ``#`` ``?`` percent-encoded), for
    links that templates build as ``./<segment>``: never a scheme, never another folder."""
    from urllib.parse import quote
    return quote(str(name), safe="")


# ------------------------------------------------------------ templates
def _finalize(value):
    """Every ``{{ value }}`` of a template, before autoescape: Markup passes as it is, anything
    else is escaped by :func:`esc` (None is "", quotes are ``&quot;`` / ``&#x27;`` as in the
    hand-written report), so autoescape has nothing left to do."""
    if hasattr(value, "__html__"):
        return value
    return Markup(esc(value))


@functools.lru_cache(maxsize=None)
def jinja_env() -> jinja2.Environment:
    """The one template environment of the report and the compare page (autoescape on)."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("zoorepro.report", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             finalize=_finalize, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(fmt=fmt, pyformat=format, urlseg=urlseg, ratio=ratio)
    env.tests.update(numeric=is_numeric, longtoken=is_long_token)
    return env


def render(template: str, **context) -> str:
    """``templates/<template>`` rendered with ``context`` (every value escaped)."""
    return jinja_env().get_template(template).render(**context)


def table(headers, rows, cls: str = "zr-table") -> str:
    """An HTML table; every cell is escaped (a cell that is already :class:`Markup` is kept)."""
    return render("report/table.html.j2", headers=headers, rows=rows, cls=cls)


@dataclass
class RunData:
    """A run's records, typed (:mod:`zoorepro.run.records` objects, by name; one given as
    JSON data is read by its class), and its ``params.yaml`` text.  Each record is an
    attribute (``data.accuracy``, ``data.bench``, ...), None when the run has none."""
    root: Path
    records: dict = field(default_factory=dict)
    params_text: str | None = None

    def __post_init__(self):
        from zoorepro.run import records
        self.records = {k: v if isinstance(v, records.Record) else
                        records.ALL[k].from_json(v, f"{self.root}/records/{k}.json")
                        for k, v in self.records.items()}

    def __getattr__(self, name: str):
        """A record by its name (``records.ALL``: ``data.accuracy``, ``data.bench``, ...):
        None when the run has none; any other name is an AttributeError."""
        from zoorepro.run import records
        if name in records.ALL:
            return self.__dict__.get("records", {}).get(name)
        raise AttributeError(f"RunData has no attribute {name!r}")

    @property
    def infer_entries(self) -> dict:
        """``{backend: records.InferEntry}`` ({} without an infer record)."""
        return self.infer.entries if self.infer else {}

    @property
    def accuracy_entries(self) -> dict:
        """``{backend: records.AccuracyEntry}`` ({} without an accuracy record)."""
        return self.accuracy.entries if self.accuracy else {}

    @property
    def bench_rows(self) -> list:
        """The sweep's ``records.BenchRow`` s ([] without a bench record)."""
        return self.bench.records if self.bench else []

    @property
    def ingested(self) -> bool:
        return self.ingest is not None


def load(run) -> RunData:
    """The records of a run (a :class:`zoorepro.run.folder.Run` or its folder), each read and
    checked by its record class, plus ``params.yaml`` as text."""
    from zoorepro.run.folder import Run
    run = run if isinstance(run, Run) else Run.open(run)
    return RunData(run.root, run.all_records(), run.params_text())


def describe_weights(sha: str | None, ingested: bool = False) -> str:
    if not sha:
        return ("not recorded (results ingested from an NPU host)" if ingested
                else "no weights file (ONNX given directly)")
    for prefix, name in ref.KNOWN_WEIGHTS.items():
        if sha.startswith(prefix):
            return name
    demo = project_root() / "demo" / "weights" / "squeezenet1_1_caffe_folded.pth"
    if demo.is_file() and sha256_file(demo) == sha:
        return ref.DEMO_WEIGHTS_NAME
    return "user-supplied weights"


def ok_accuracy(data: RunData) -> dict:
    """``{backend: records.AccuracyEntry}`` of the backends that ran."""
    return {k: v for k, v in data.accuracy_entries.items() if v.status == "ok"}


def read_params(data: RunData) -> dict | None:
    import yaml
    text = data.params_text
    return yaml.safe_load(text) if text else None


def best_throughput(data: RunData):
    """The valid ``records.BenchRow`` with the highest throughput, or None."""
    rows = [r for r in data.bench_rows if r.valid and r.throughput]
    return max(rows, key=lambda r: r.throughput) if rows else None


# ------------------------------------------------------------ the verdict, as data
@dataclass(frozen=True)
class Verdict:
    """What the report's headline says about a run; ``report/verdict.html.j2`` words it.

    ``kind`` is one of :data:`VERDICT_KINDS`; ``word`` is the bold word of the verdict
    ("REPRODUCED", "NOT reproduced", "matched", "NOT matched"; "" where there is none).
    ``figures`` are the published (Acc@1, Acc@5) compared with: the recipe's, then
    torchvision's for a full-set run, or the demo's independent (Acc@1, Acc@5, images)."""
    kind: str
    word: str = ""
    backend: str = ""
    device: str | None = None
    top1: float = 0.0
    top5: float = 0.0
    images: int = 0
    weights: str = ""
    tolerance: float = 1.0
    recipe: tuple = ()
    figures: tuple = ()
    full_set: bool = False
    best: object = field(default=None, hash=False, compare=False)   # a records.BenchRow


REPRODUCED, NOT_REPRODUCED = "reproduced", "not reproduced"
DEMO_MATCHED, DEMO_NOT_MATCHED = "demo matched", "demo not matched"
DEMO_NOT_CHECKED = "demo not checked"
NOT_COMPARABLE, NO_ACCURACY = "not comparable", "no accuracy"
VERDICT_KINDS = (REPRODUCED, NOT_REPRODUCED, DEMO_MATCHED, DEMO_NOT_MATCHED, DEMO_NOT_CHECKED,
                 NOT_COMPARABLE, NO_ACCURACY)


def verdict_of(data: RunData) -> Verdict:
    """The verdict on the headline (first successful) backend, from the records only."""
    acc = ok_accuracy(data)
    if not acc:
        return Verdict(NO_ACCURACY)
    name, m = next(iter(acc.items()))
    weights = describe_weights(m.weights_sha256, data.ingested)
    n = m.images
    tol = (read_params(data) or {}).get("reference_tolerance_pct", 1.0)
    base = dict(backend=name, device=m.device, top1=m.top1, top5=m.top5, images=n,
                weights=weights, tolerance=tol, recipe=tuple(ref.ACCURACY["recipe Ascend310P3"]),
                full_set=n == ref.FULL_VAL_IMAGES, best=best_throughput(data))
    if n == ref.FULL_VAL_IMAGES and not weights.startswith("demo"):
        r1, r5 = ref.ACCURACY["recipe Ascend310P3"]
        t1, t5 = ref.ACCURACY["torchvision fp32"]
        ok_r = abs(m.top1 - r1) <= tol and abs(m.top5 - r5) <= tol
        ok_t = abs(m.top1 - t1) <= tol and abs(m.top5 - t5) <= tol
        ok = ok_r or ok_t
        return Verdict(REPRODUCED if ok else NOT_REPRODUCED,
                       "REPRODUCED" if ok else "NOT reproduced",
                       figures=((r1, r5), (t1, t5)), **base)
    if weights.startswith("demo"):
        exp = ref.DEMO_EXPECTED
        figures = (exp["top1"], exp["top5"], exp["images"])
        if n != exp["images"]:
            return Verdict(DEMO_NOT_CHECKED, figures=figures, **base)
        same = abs(m.top1 - exp["top1"]) < 1e-9 and abs(m.top5 - exp["top5"]) < 1e-9
        return Verdict(DEMO_MATCHED if same else DEMO_NOT_MATCHED,
                       "matched" if same else "NOT matched", figures=figures, **base)
    return Verdict(NOT_COMPARABLE, **base)


# ------------------------------------------------------------ throughput
def accuracy_run_note(st) -> str:
    """How the accuracy run of ``st`` (a ``records.InferEntry``) was made, in words."""
    n = st.streams or 1
    if n <= 1:
        return "accuracy run over the whole folder"
    per = st.stream_threads or []
    return (f"accuracy run over the whole folder in {n} concurrent streams"
            + (f" ({'+'.join(map(str, per))} threads)" if per else "")
            + "; compute img/s = ais_bench's formula per stream, summed over streams")


def figure_html(fig, alt: str) -> Markup:
    """A figure as an embedded PNG ``<img>`` (no file, no network).  The one piece of trusted
    HTML handed to templates: rendered by the autoescaping ``report/figure.html.j2`` from the
    escaped ``alt`` and the base64 text of a PNG made here, so it is safe to mark as Markup."""
    import base64
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    b64 = base64.b64encode(buf.getvalue()).decode("ascii")
    return Markup(render("report/figure.html.j2", alt=alt, png_base64=b64))


# ------------------------------------------------------------ rendering
def render_html(executed_notebook: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Executed report notebook -> self-contained HTML (code hidden, no network requests)."""
    import nbformat
    from nbconvert import HTMLExporter
    nb = nbformat.read(str(executed_notebook), as_version=4)
    # the base dir finds templates/zoorepro/; the extra path lets it include zoorepro.css
    exporter = HTMLExporter(template_name="zoorepro", extra_template_basedirs=[str(TEMPLATE_DIR)],
                            extra_template_paths=[str(TEMPLATE_DIR)],
                            exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": "zoorepro report"}})
    return atomic_write_text(dest, body)
