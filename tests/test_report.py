"""Report sections: escaping, verdict wording, rendering to self-contained HTML."""
import dataclasses
import re

import pytest


from zoorepro import config, report
from zoorepro import runner
from zoorepro.run import records, stages
from zoorepro import recipebook
from zoorepro.run.folder import Run

from conftest import small_params

EVIL = "<script>alert(1)</script>"
EVIL_FILE = "<img src=x onerror=alert(1)>"   # '/' cannot be in a file name; same attack


# ------------------------------------------------------------ typed records from partial data
# What a test leaves out of a record: the required fields, with neutral values.
FILL = {
    "preprocess": dict(out_dir="bin", decoder="PIL", total=0, written=0, reused=0, ok=0,
                       failed=[], non_rgb=[], not_jpeg=[], bin_bytes=0),
    "dataset": dict(data_dir="images", images=0, image_list_sha256=None, label_file="labels",
                    label_file_sha256="0" * 64, keys=[], bin_dir="bin"),
    "export": dict(onnx="m.onnx", onnx_sha256="0" * 64, opset=11, aipp={},
                   aipp_config_sha256="0" * 64),
    "atc": dict(status="ok", soc_version=None, commands=[]),
    "failure": dict(notebook="n", cell="1", error="e"),
    "ingest": dict(source="s", result_dir="r", labels="l", device="npu"),
}
ROW = dict(backend="onnxruntime", device="cpu: X", batch_size=1, iterations=1, throughput=None,
           throughput_definition="d", valid=True, validity="ok")


def bench_row(**kw) -> records.BenchRow:
    """A sweep point from the fields a test names (the others neutral); unchecked, so a
    test may put any value in any field."""
    return records.BenchRow(**{**ROW, **kw})


def typed(name: str, obj):
    """The record ``name`` from a test's partial data (objects pass as they are), built by
    its class's constructor without the read check, as a stage builds one."""
    if isinstance(obj, records.Record):
        return obj
    cls = records.ALL[name]
    if name in ("infer", "accuracy"):
        return cls({k: v if isinstance(v, cls.ENTRY) else cls.ENTRY(**v) for k, v in obj.items()})
    if name == "bench":
        return cls(definition=obj.get("definition", "d"),
                   records=[r if isinstance(r, records.BenchRow) else bench_row(**r)
                            for r in obj.get("records", [])])
    if name == "parity":
        return cls([records.ParityPair(**p) for p in obj])
    return cls(**{**FILL.get(name, {}), **obj})


SQ = recipebook.load("squeezenet1_1")          # the recipe a test's run followed, by default
FULL = SQ.published.images


def run_data(root, recs: dict | None = None, recipe=SQ) -> report.RunData:
    """``report.RunData`` of typed records made from ``recs`` (``params_text``: the params),
    the run having followed ``recipe``."""
    recs = dict(recs or {})
    text = recs.pop("params_text", None)
    return report.RunData(root, {k: typed(k, v) for k, v in recs.items()}, text, recipe)


def test_table_escapes_every_cell():
    from markupsafe import Markup
    html = report.table(["a", EVIL], [[EVIL, 1], [Markup("<b>x</b>"), None]])
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>x</b>" in html


def test_sections_escape_strings_from_files(tmp_path):
    data = run_data(tmp_path, {
        "preprocess": {"failed": [[f"{EVIL}.JPEG", f"reason {EVIL}"]],
                       "non_rgb": [[f"{EVIL}.JPEG", "L"]],
                       "not_jpeg": [], "total": 1},
        "dataset": {"images": 1, "data_dir": EVIL, "unlabelled_images": 1,
                    "unlabelled_examples": [EVIL], "labels_without_image": 0},
        "failure": {"notebook": EVIL, "cell": "1", "error": EVIL},
        "params_text": f"name: '{EVIL}'\n",
        "environment": {"cpu": EVIL, "packages": {EVIL: EVIL}},
    })
    for fn in (report.verdict, report.preprocess_section, report.warnings_section,
               report.provenance_section, report.environment_section, report.accuracy_table):
        out = fn(data)
        assert "<script>" not in out, fn.__name__


def test_demo_verdict_wording(tmp_path):
    m = {"status": "ok", "images": 100, "top1": 65.0, "top5": 87.0, "device": "cpu: X",
         "weights_sha256": None}
    data = run_data(tmp_path, {"accuracy": {"onnxruntime": m}})
    assert "Not comparable" in report.verdict(data)
    full = dict(m, images=FULL, top1=57.9, top5=80.3,
                weights_sha256="f364aa15" + "0" * 56)
    v = report.verdict(run_data(tmp_path, {"accuracy": {"onnxruntime": full},
                                           "params_text": "reference_tolerance_pct: 1.0\n"}))
    assert "REPRODUCED" in v and "NOT" not in v and "recipe&#x27;s weights" in v
    off = dict(full, top1=50.0)
    assert "NOT reproduced" in report.verdict(
        run_data(tmp_path, {"accuracy": {"onnxruntime": off}}))


@pytest.mark.e2e
def test_file_names_from_disk_render_as_text(tmp_path, demo_images):
    """A real image named like a script tag flows through a run into report.html as text."""
    src = tmp_path / "imgs"
    src.mkdir()
    for p in demo_images[:2]:
        (src / p.name).write_bytes(p.read_bytes())
    (src / f"{EVIL_FILE}.JPEG").write_bytes(demo_images[2].read_bytes())
    cfg = config.from_mapping(small_params(tmp_path, data_dir=str(src), max_images=0,
                                           allow_label_mismatch=True, batch_sizes=[1]))
    run = Run.create(cfg)
    stages.ensure(run, "evaluate")
    html = runner.render_report(run).report.read_text()
    assert "&lt;img src=x onerror=alert(1)&gt;" in html   # the name is shown ...
    assert EVIL_FILE not in html                          # ... as text, never as markup
    assert not re.search(r'<script[^>]+src=', html)


def test_throughput_table_headers_match_rows(tmp_path):
    rec = {k: 1.0 for k in records.BENCH_CSV_FIELDS if k.endswith(("_ms", "throughput"))}
    rec.update(backend="onnxruntime", device="cpu: X", batch_size=8, iterations=50, valid=True,
               validity="ok", precision="fp32")
    data = run_data(tmp_path, {"bench": {"records": [rec], "definition": "d"}})
    rows = report.throughput_rows(data)
    assert len(rows[0]) == len(report.THROUGHPUT_HEADERS)
    assert rows[0][report.THROUGHPUT_HEADERS.index("batch")] == 8


def test_streams_are_named_where_figures_depend_on_them(tmp_path):
    rec = {k: 1.0 for k in records.BENCH_CSV_FIELDS if k.endswith(("_ms", "throughput"))}
    rec.update(backend="onnxruntime", device="cpu: X", batch_size=8, iterations=50, valid=True,
               validity="ok", precision="fp32", e2e_streams=2)
    data = run_data(tmp_path, {
        "bench": {"records": [rec], "definition": "d"},
        "infer": {"onnxruntime": {"status": "ok", "device": "cpu: X", "accuracy_batch_size": 1,
                                  "compute_throughput": 170.0, "e2e_throughput": 150.0,
                                  "streams": 2, "stream_threads": [2, 1]}}})
    table = report.throughput_table(data)
    assert "in the accuracy run&#x27;s concurrent streams (end-to-end streams column)" in table
    e2e = report.e2e_table(data)
    assert "2 concurrent streams (2+1 threads)" in e2e and "summed over streams" in e2e
    one = run_data(tmp_path, {"infer": {"onnxruntime": {
        "status": "ok", "device": "cpu: X", "accuracy_batch_size": 1, "streams": 1}}})
    assert "concurrent" not in report.e2e_table(one)


def test_streams_are_their_own_columns(tmp_path):
    """End-to-end img/s above compute img/s in one row: the streams of each, as numbers in
    their own columns, not a footnote or a '(2 streams)' inside the number."""
    rec = dict(backend="onnxruntime", device="cpu: X", precision="fp32", batch_size=8,
               iterations=50, throughput=100.0, e2e_throughput=150.0, e2e_streams=2,
               valid=True, validity="ok")
    no_e2e = dict(rec, e2e_throughput=None, e2e_streams=None)
    data = run_data(tmp_path, {"bench": {"records": [rec, no_e2e], "definition": "d"}})
    rows = report.throughput_rows(data)
    col = {h: [r[i] for r in rows] for i, h in enumerate(report.THROUGHPUT_HEADERS)}
    assert col["compute img/s"] == ["100.0", "100.0"] and col["compute streams"] == [1, 1]
    assert col["end-to-end img/s"] == ["150.0", "—"] and col["end-to-end streams"] == [2, "—"]
    html = report.throughput_table(data)
    assert "<th>end-to-end streams</th>" in html and "streams)" not in html


def test_ratio_keeps_significant_digits():
    assert [report.ratio(x) for x in (2.6e-3, 0.51, 1.0, 12.3, 390)] == \
        ["2.60e-3×", "0.510×", "1.00×", "12.3×", "390×"]
    assert report.ratio(4.2e4) == "4.20e4×" and report.ratio(None) == "—"
    assert report.ratio(0) == "0×"


def test_a_slow_cpu_against_the_npu_is_never_0_000x(tmp_path):
    rows = [dict(backend="onnxruntime", device="cpu: X", precision="fp32", batch_size=8,
                 throughput=55.4, timing="device", valid=True)]
    got = report.recipe_ratio_rows(run_data(tmp_path, {"bench": {"records": rows,
                                                                       "definition": "d"}}))
    assert got[0][7] == "2.60e-3×" and got[0][7] == report.ratio(55.4 / 21301.5)


def _bench_data(tmp_path, **kw):
    rec = dict(backend="onnxruntime", device="cpu: X", precision="fp32", batch_size=1,
               iterations=50, throughput=100.0, mean_ms=1.0, median_ms=1.0, p90_ms=1.5,
               p99_ms=2.0, seconds=0.5, valid=True, validity="ok")
    rec.update(kw)
    return run_data(tmp_path, {"bench": {"records": [rec], "definition": "d"}})


def test_percentiles_from_few_iterations_are_marked(tmp_path):
    from zoorepro.report import throughput as report_bench
    assert (report_bench.min_iterations(99), report_bench.min_iterations(90)) == (100, 10)
    col = report.THROUGHPUT_HEADERS.index
    for n, p90, p99 in ((5, "1.500*", "2.000*"), (50, "1.500", "2.000*"), (100, "1.500", "2.000")):
        data = _bench_data(tmp_path, iterations=n)
        row = report.throughput_rows(data)[0]
        assert (row[col("p90 ms")], row[col("p99 ms")]) == (p90, p99), n
        note = "* from 5 iterations: too few for that percentile (p99 needs at least 100, p90 10)"
        html = report.throughput_table(data)
        assert (note.replace("5", str(n), 1) in html) == (n < 100), html
    assert report.throughput_rows(_bench_data(tmp_path, iterations=5, p99_ms=None))[0][
        col("p99 ms")] == "—"


def test_busy_host_is_said_in_the_row_and_a_banner(tmp_path):
    quiet = _bench_data(tmp_path, busy=False, others_cpu_share=0.05, host_cores=8,
                        load_before=1.0, load_after=1.2)
    assert "Busy host" not in report.throughput_table(quiet)
    assert report.throughput_rows(quiet)[0][-1] == "valid"
    busy = _bench_data(tmp_path, busy=True, others_cpu_share=0.43, host_cores=8,
                       load_before=11.24, load_after=10.8, batch_size=8)
    assert report.throughput_rows(busy)[0][-1] == "valid; busy host"
    html = report.throughput_table(busy)
    assert "<b>Busy host</b>: 1 of 1 sweep point(s) were timed while other processes took " \
           "more than 25 % of the cores" in html
    assert "onnxruntime batch 8 (others 43 % of 8 cores; load 11.2 → 10.8)." in html
    only_load = _bench_data(tmp_path, busy=True, host_cores=8, load_before=11.0, load_after=9.0,
                            valid=False, validity="p90/median 3.00 > 1.5")
    assert report.throughput_rows(only_load)[0][-1] == "INVALID: p90/median 3.00 > 1.5; busy host"
    assert "onnxruntime batch 1 (load 11.0 → 9.0 on 8 cores)" in report.throughput_table(only_load)
    assert report.recipe_ratio_rows(busy)[0][5] == "100.0 (busy host)"


def test_figure_batch_axis_shows_numbers():
    """Batch sizes 1 ... 64 as numbers on the log2 axis, never 2^k."""
    rec = dict(backend="onnxruntime", device="cpu: X", precision="fp32", batch_size=4,
               throughput=10.0, valid=True)
    fig = report.plot_throughput({"s": [bench_row(**rec),
                                        bench_row(**dict(rec, batch_size=3, throughput=9.0))]}, "t",
                                 SQ.throughput_labels())     # its series span 1 ... 64
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    FigureCanvasAgg(fig).draw()
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["1", "2", "3", "4", "8", "16", "32", "64"]
    assert [t.get_text() for t in ax.get_xticklabels(minor=True)] in ([], [""] * len(
        ax.get_xticklabels(minor=True)))
    assert ax.get_xscale() == "log"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "measured on a busy host" not in legend and "timing not valid" not in " ".join(legend)
    fig = report.plot_throughput({"s": [bench_row(**rec, busy=True),
                                        bench_row(**dict(rec, valid=False))]}, "t")
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert {"measured on a busy host", "timing not valid (spread too large)"} <= set(legend)


def test_one_colour_per_series_in_every_figure(tmp_path):
    """The recipe's series always have their colours; a series of ours has the same colour
    in the report's figure, the notebook's (tables) and a comparison's."""
    from zoorepro.report import compare, plotstyle
    rec = bench_row(backend="onnxruntime", device="cpu: X", precision="fp32", batch_size=4,
                    throughput=10.0, valid=True)
    data = run_data(tmp_path, {"bench": {"definition": "d", "records": [rec]}})

    def colours(fig):
        return {line.get_label(): line.get_color() for line in fig.axes[0].get_lines()
                if not line.get_label().startswith("_")}
    from zoorepro.report.plotstyle import series_groups
    published = SQ.throughput_labels()
    mine = colours(report.plot_throughput(series_groups([rec]), "t", published))
    other = dataclasses.replace(rec, backend="torch")
    entries = [compare.Entry("b", run_data(tmp_path, {"bench": {"definition": "d",
                                                                      "records": [other]}})),
               compare.Entry("a", data), compare.Entry("c", data)]
    theirs = colours(compare.throughput_figure(entries))
    assert list(published) == ["recipe Ascend310P3", "recipe Ascend310B1"]
    for name, colour in zip(published, plotstyle.PUBLISHED_COLOURS):
        assert mine[f"{name} (published)"] == theirs[f"{name} (published)"] == colour
    key = plotstyle.series_key(rec)
    assert mine[f"zoorepro {key}"] == theirs[f"a: {key}"] == plotstyle.colour_of(key)
    assert theirs[f"c: {key}"] != theirs[f"a: {key}"]          # the same series, another run
    assert len(set(theirs.values())) == len(theirs)


def test_numbers_in_cells_never_wrap_and_words_never_break():
    html = report.table(["a"], [["1,215.788"], [50000], ["12.3*"], ["2.60e-3×"], ["85.00 %"],
                                ["onnxruntime"], ["cpu: X"], ["f" * 64], [True]])
    cells = re.findall(r"<td([^>]*)>([^<]*)</td>", html)
    assert [c for c, _ in cells] == [' class="zr-num"'] * 5 + ["", "", ' class="zr-long"', ""]
    css = (report.TEMPLATE_DIR / "zoorepro.css").read_text()
    rules = dict(re.findall(r"([^{}]+)\{([^{}]*)\}", re.sub(r"/\*.*?\*/", "", css, flags=re.S)))
    anywhere = [sel.strip() for sel, body in rules.items() if "anywhere" in body]
    assert all("zr-long" in sel or sel.startswith("pre") for sel in anywhere), anywhere
    nowrap = [sel for sel, body in rules.items() if "nowrap" in body]
    assert any(".zr-table td.zr-num" in sel for sel in nowrap)


# ------------------------------------------------------------ templates, escaping, the verdict
HOSTILE = (EVIL, EVIL_FILE)


def _hostile_records(bad: str) -> dict:
    """Every string a section shows, set to ``bad``."""
    bench = {"backend": bad, "device": bad, "precision": bad, "batch_size": 4,
             "throughput": 10.0, "e2e_throughput": 5.0, "mean_ms": 1.0, "median_ms": 1.0,
             "p90_ms": 1.0, "p99_ms": 1.0, "iterations": bad, "seconds": 1.0, "valid": False,
             "validity": bad, "e2e_streams": 2}
    acc = {"status": "ok", "images": 100, "device": bad, "batch_size": bad, "warnings": [bad],
           "weights_sha256": bad, "image_list_sha256": bad,
           **{f"top{i}": 50.0 for i in range(1, 6)}}
    return {
        "failure": {"notebook": bad, "cell": bad, "error": bad},
        "dataset": {"images": bad, "data_dir": bad, "label_file": bad, "label_file_sha256": bad,
                    "image_list_sha256": bad, "unlabelled_images": bad,
                    "unlabelled_examples": [bad],
                    "labels_without_image": bad, "labels_without_image_examples": [bad]},
        "accuracy": {bad: acc, "other": {"status": "failed", "reason": bad}},
        "bench": {"definition": bad, "records": [bench, dict(bench, valid=True, throughput=20.0)]},
        "infer": {bad: {"status": "ok", "device": bad, "accuracy_batch_size": bad,
                        "throughput_note": bad, "foreign_files": [bad]},
                  "ais_bench": {"status": "failed", "reason": bad}},
        "atc": {"status": bad, "reason": bad, "commands": [bad, bad], "soc_version": None},
        "parity": [{"a": bad, "b": bad, "images": bad, "top1_agreement_pct": 1.0,
                    "max_abs_logit_diff": 1.0}],
        "export": {"opset": bad, "onnx_sha256": bad, "weights": bad, "weights_sha256": bad,
                   "parity_not_run": bad, "aipp": {"min_chn": bad, "crop": bad}},
        "preprocess": {"total": bad, "out_dir": bad, "failed": [[bad, bad]],
                       "non_rgb": [[bad, bad]], "not_jpeg": [[bad, bad]]},
        "environment": {"cpu": bad, "gpu": bad, "zoorepro_git_commit": bad,
                        "packages": {bad: bad}},
        "ingest": {"soc_version": bad, "cann": bad, "notes": [bad], "source": bad},
        "ladder": {"status": "ok", "images": 100, "csv": bad, "notes": [bad], "rows": [
            {"step": "b", "name": bad, "how": bad, "status": "ok", "engine": bad, "images": 100,
             "top1": 50.0, "top5": 60.0, "compared": 100, "changed": 0, "fixed": 0, "broken": 0},
            {"step": "e", "name": bad, "how": bad, "status": "ok", "engine": bad, "images": 100,
             "top1": 49.0, "top5": 60.0, "compared": 100, "changed": 1, "fixed": 0, "broken": 1,
             "agreement_pct": 99.0, "max_abs_logit_delta": 1.0, "changed_examples": [bad]},
            {"step": "f", "name": bad, "how": bad, "status": "not run", "reason": bad}]},
        "quantize": {"model": bad, "model_sha256": bad, "source_model": bad,
                     "source_model_sha256": bad, "method": bad, "calibration_set": bad,
                     "calibration_images": 4, "calibration_sha256": bad},
        "params_text": f"name: '{bad}'\n",
    }


def test_every_section_renders_hostile_values_as_text(tmp_path):
    """A <script> or <img onerror> in any record value is shown as text by every section."""
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / f"{EVIL_FILE}.ipynb").write_text("{}")
    for bad in HOSTILE:
        hostile = dataclasses.replace(SQ, title=bad, source=bad, notes=(bad,))   # a recipe's
        data = run_data(tmp_path, _hostile_records(bad), hostile)
        ran = dict(data.records, infer={"ais_bench": {"status": "ok", "device": bad}})
        for name in report.SECTIONS:
            for d in (data, run_data(tmp_path, ran, hostile)):
                out = getattr(report, name)(d)
                assert "<script" not in out and "<img src=x" not in out, name
                assert "onerror=" not in out.replace("&lt;img src=x onerror=alert(1)&gt;", ""), name
                if name not in ("throughput_plot", "predictions_sample"):    # no text from records
                    assert report.esc(EVIL_FILE if name == "notebook_links" else bad) in out, name


def _acc(**kw) -> dict:
    m = {"status": "ok", "images": FULL, "top1": 57.9, "top5": 80.3,
         "device": "cpu: X", "weights_sha256": "f364aa15" + "0" * 56}
    m.update(kw)
    return m


def test_verdict_is_data(tmp_path):
    from dataclasses import FrozenInstanceError
    from zoorepro.recipe.data import sha256_file

    from conftest import DEMO_WEIGHTS

    def verdict_of(acc, **records):
        return report.verdict_of(run_data(tmp_path, {"accuracy": {"onnxruntime": acc}, **records}))

    v = verdict_of(_acc(), params_text="reference_tolerance_pct: 1.0\n")
    assert (v.kind, v.word, v.tolerance) == (report.REPRODUCED, "REPRODUCED", 1.0)
    assert v.figures == (("the recipe", 57.32, 80.06), ("torchvision", 58.178, 80.624))
    with pytest.raises(FrozenInstanceError):
        v.word = "x"
    v = verdict_of(_acc(top1=50.0))
    assert (v.kind, v.word) == (report.NOT_REPRODUCED, "NOT reproduced")
    exp = SQ.weights.demo.expected
    demo = _acc(images=exp["images"], top1=exp["top1"], top5=exp["top5"],
                weights_sha256=sha256_file(DEMO_WEIGHTS))
    v = verdict_of(demo)
    assert (v.kind, v.word, v.full_set) == (report.DEMO_MATCHED, "matched", False)
    assert verdict_of(dict(demo, top1=1.0)).word == "NOT matched"
    assert verdict_of(dict(demo, images=12)).kind == report.DEMO_NOT_CHECKED
    v = verdict_of(_acc(images=1234, weights_sha256=None))
    assert (v.kind, v.word, v.images) == (report.NOT_COMPARABLE, "", 1234)
    assert report.verdict_of(run_data(tmp_path, {})).kind == report.NO_ACCURACY
    # without a recipe kept nothing is compared (and nothing invented)
    v = report.verdict_of(run_data(tmp_path, {"accuracy": {"onnxruntime": _acc()}}, None))
    assert (v.kind, v.recipe, v.figures) == (report.NOT_COMPARABLE, (), ())


def test_a_recipe_without_published_figures_says_so(tmp_path):
    """EfficientNet-Lite0 (zoorepro's own): no NPU figures exist; the full set is judged
    against the framework's top-1 only (it publishes no top-5)."""
    lite = recipebook.load("efficientnet_lite0")
    acc = _acc(top1=75.4, top2=84.0, top3=88.0, top4=90.5, top5=92.0,
               weights_sha256="57934424" + "0" * 56)
    data = run_data(tmp_path, {"accuracy": {"onnxruntime": acc}}, lite)
    v = report.verdict_of(data)
    assert (v.kind, v.recipe, v.figures) == (report.REPRODUCED, (), (("TensorFlow", 75.1, None),))
    html = report.verdict(data)
    assert "within ±1.0 points of TensorFlow (75.1)." in html
    small = run_data(tmp_path, {"accuracy": {"onnxruntime": dict(acc, images=7)}}, lite)
    assert "No published NPU figures to compare with (this recipe has none)" in \
        report.verdict(small)
    rows = report.accuracy_table(data)
    assert "TensorFlow fp32 (published)" in rows and "Ascend" not in rows
    assert "This recipe has no published NPU throughput." in report.recipe_ratio_table(data)
    assert "this recipe has no published NPU figures" in report.npu_section(data)
    assert {report.REPRODUCED, report.NOT_COMPARABLE} <= set(report.VERDICT_KINDS)


def test_verdict_wording_from_the_template(tmp_path):
    html = report.verdict(run_data(tmp_path, {"accuracy": {"onnxruntime": _acc()}}))
    assert html == (
        '<div class="zr-banner"><b>onnxruntime</b> on cpu: X: Acc@1 <b>57.90 %</b>, Acc@5 '
        '<b>80.30 %</b> on 50,000 images (weights: torchvision squeezenet1_1-f364aa15.pth (the '
        'recipe&#x27;s weights)).<br>Verdict: <b>REPRODUCED</b> within ±1.0 points of the recipe '
        '(57.32 / 80.06) or torchvision (58.178 / 80.624).</div>')
    html = report.verdict(run_data(tmp_path, {"accuracy": {"onnxruntime": _acc(
        images=1234, weights_sha256=None)}}))
    assert ("<br>Not comparable with the recipe's 57.32 / 80.06: 1,234 images (the recipe scores "
            "all 50,000).</div>") in html
    assert "No accuracy result" in report.verdict(run_data(tmp_path, {}))


def test_template_environment_escapes_by_default():
    from markupsafe import Markup
    env = report.jinja_env()
    assert env is report.jinja_env() and env.autoescape is True
    assert env.from_string("{{ x }}").render(x=EVIL) == "&lt;script&gt;alert(1)&lt;/script&gt;"
    out = report.render("report/warnings_section.html.j2", items=[EVIL, EVIL_FILE])
    assert out == ("<ul><li>&lt;script&gt;alert(1)&lt;/script&gt;</li>"
                   "<li>&lt;img src=x onerror=alert(1)&gt;</li></ul>")
    assert "<i>" in env.from_string("{{ x }}").render(x=Markup("<i>"))     # the one way in
    import jinja2
    with pytest.raises(jinja2.UndefinedError):                               # StrictUndefined
        report.render("report/warnings_section.html.j2")


def test_no_template_marks_data_safe():
    """Trusted HTML comes only from figure_html (and autoescape's own step); no |safe."""
    import re as _re
    from pathlib import Path
    import zoorepro
    lib = Path(zoorepro.__file__).parent
    for t in lib.rglob("*.j2"):
        if t.parent.name != "zoorepro":                      # nbconvert's template, not ours
            assert "|safe" not in t.read_text().replace(" ", ""), t
    for py in lib.rglob("*.py"):
        n = len(_re.findall(r"\bMarkup\(", py.read_text()))
        assert n == (2 if py.relative_to(lib).as_posix() == "report/core.py" else 0), py


def test_report_inlines_the_one_stylesheet(tmp_path):
    """report.html carries templates/zoorepro.css inline (self-contained), as the compare
    page does."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook, new_output
    nb = new_notebook(cells=[new_code_cell("x", outputs=[new_output(
        "display_data", data={"text/html": report.verdict(run_data(tmp_path, {}))})])])
    nbformat.write(nb, str(tmp_path / "r.ipynb"))
    html = report.render_html(tmp_path / "r.ipynb", tmp_path / "report.html").read_text()
    css = (report.TEMPLATE_DIR / "zoorepro.css").read_text()
    assert css.strip() in html and "No accuracy result" in html
    assert not re.search(r"<link[^>]+stylesheet", html)


MATH = "run $x^$ on a$b$ / $\\frac$"   # mathtext that matplotlib cannot parse


def test_figure_text_is_literal_never_mathtext(tmp_path):
    """A $...$ pair in a device, chip or run name crashed the plot; now it is plain text."""
    rec = bench_row(backend=MATH, device=MATH, precision="fp32", batch_size=4, throughput=10.0,
                    valid=True)
    data = run_data(tmp_path, {"bench": {"definition": "d", "records": [
        rec, dataclasses.replace(rec, batch_size=8, throughput=12.0, valid=False)]}})
    html = report.throughput_plot(data)
    assert html.startswith("<") and "base64," in html
    fig = report.plot_throughput({MATH: [rec]}, MATH)
    assert fig.axes[0].get_legend().get_texts()[0].get_text() == MATH
    assert not fig.axes[0].title.get_parse_math()


def test_squashed_16_bit_conversion_is_a_warning_naming_the_file(tmp_path):
    data = run_data(tmp_path, {"preprocess": {"non_rgb": [["depth.png", "I;16"],
                                                                ["gray.JPEG", "L"]]}})
    html = report.warnings_section(data)
    assert "depth.png: I;16 image converted to RGB as the recipe does, but its 16-bit values " \
           "were squashed into 0..255" in html
    assert "gray.JPEG: L image converted to RGB (as the recipe does)" in html


def test_recipe_ratio_table_compares_like_with_like(tmp_path):
    """The recipe's 310P3/310B1 figures per batch size beside ours, with the ratio, only for
    figures timed as ais_bench times; a GPU figure with its copies is not compared."""
    rows = [dict(backend="torch", device="cuda: H100", precision="fp16", batch_size=8,
                 throughput=42603.0, timing="device", valid=True),
            dict(backend="torch", device="cuda: H100", precision="fp16", batch_size=8,
                 throughput=9000.0, timing="call", valid=True),
            dict(backend="onnxruntime", device="cpu: X", precision="fp32", batch_size=1,
                 throughput=579.71, timing="device", valid=True),
            dict(backend="onnxruntime", device="cpu: X", precision="fp32", batch_size=3,
                 throughput=100.0, timing="device", valid=True)]
    data = run_data(tmp_path, {"bench": {"records": rows, "definition": "d"}})
    got = report.recipe_ratio_rows(data)
    assert len(got) == 3                                  # batch 3 is not one of the recipe's
    assert got[0][4:8] == [8, "42,603.0", "21,301.5", "2.00×"] and got[0][9] == "11.0×"
    assert got[1][7].startswith("not comparable: timed with host-device copies")
    assert got[2][5:8] == ["579.7", "5,797.1", "0.100×"]
    html = report.recipe_ratio_table(data)
    assert "2.00×" in html and "310P3" in html


def test_notebook_links_are_quoted_relative_paths(tmp_path):
    """Links are built from a quoted path segment behind ./, never from a raw name."""
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "javascript:alert(1) #x.ipynb").write_text("{}")
    out = report.notebook_links(run_data(tmp_path))
    assert 'href="./notebooks/javascript%3Aalert%281%29%20%23x.ipynb"' in out
    assert ">javascript:alert(1) #x.ipynb</a>" in out
