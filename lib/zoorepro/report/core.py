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

from zoorepro.recipe.data import sha256_file
from zoorepro.files import atomic_write_text
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
    recipe: object = None     # the zoorepro.recipebook.Recipe the run kept (None: none kept)

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
    return RunData(run.root, run.all_records(), run.params_text(), run.recipe)


@functools.lru_cache(maxsize=8)
def _sha_of(path: str, size: int, mtime: int) -> str:
    return sha256_file(path)


def is_demo_weights(sha: str | None, recipe) -> bool:
    """Whether ``sha`` is the recipe's demo weights file (the file, hashed here)."""
    demo = recipe.demo_weights() if recipe is not None and sha else ""
    if not demo or not os.path.isfile(demo):
        return False
    st = os.stat(demo)
    return _sha_of(demo, st.st_size, st.st_mtime_ns) == sha


def describe_weights(sha: str | None, ingested: bool, recipe) -> str:
    """What the weights of sha256 ``sha`` are: the recipe's demo weights, a file the recipe
    knows by its hash, or the user's."""
    if not sha:
        return ("not recorded (results ingested from an NPU host)" if ingested
                else "no weights file (ONNX given directly)")
    if is_demo_weights(sha, recipe):
        return recipe.weights.demo.name
    for prefix, name in (recipe.weights.known.items() if recipe is not None else ()):
        if sha.startswith(prefix):
            return name
    return "user-supplied weights"


def published_accuracy(recipe) -> list:
    """``[(label, images, top1, top5 or None, source)]``: the recipe's published figures per
    chip, then the framework's reference (none without a recipe)."""
    if recipe is None:
        return []
    pub, ref = recipe.published, recipe.reference
    rows = [(f"recipe {chip}", pub.images, a1, a5, pub.source)
            for chip, (a1, a5) in pub.accuracy.items()]
    if ref.top1 is not None:
        rows.append((ref.label, pub.images, ref.top1, ref.top5, ref.source))
    return rows


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
    ``figures`` are what the run is compared with: for a full-set run ``(name, Acc@1, Acc@5
    or None)`` per published figure (the recipe's first chip, then the framework's), for the
    demo its independent (Acc@1, Acc@5, images).  ``recipe``: the recipe's first published
    (Acc@1, Acc@5), () when it has none; ``full_images``: the set the recipe scores."""
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
    full_images: int = 50000
    measured_by: str = ""
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
    recipe = data.recipe
    weights = describe_weights(m.weights_sha256, data.ingested, recipe)
    demo = is_demo_weights(m.weights_sha256, recipe)
    n = m.images
    tol = (read_params(data) or {}).get("reference_tolerance_pct", 1.0)
    full = recipe.published.images if recipe is not None else 0
    chips = list(recipe.published.accuracy.values()) if recipe is not None else []
    base = dict(backend=name, device=m.device, top1=m.top1, top5=m.top5, images=n,
                weights=weights, tolerance=tol, recipe=tuple(chips[0]) if chips else (),
                full_set=n == full, full_images=full, best=best_throughput(data))
    against = []
    if recipe is not None:
        if chips:
            against.append(("the recipe", *chips[0]))
        if recipe.reference.top1 is not None:
            against.append((recipe.reference.name, recipe.reference.top1,
                            recipe.reference.top5))
    if n == full and not demo and against:
        ok = any(abs(m.top1 - a1) <= tol and (a5 is None or abs(m.top5 - a5) <= tol)
                 for _, a1, a5 in against)
        return Verdict(REPRODUCED if ok else NOT_REPRODUCED,
                       "REPRODUCED" if ok else "NOT reproduced", figures=tuple(against), **base)
    if demo:
        exp = recipe.weights.demo.expected
        base["measured_by"] = recipe.weights.demo.measured_by
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
