"""``zoorepro compare``: two real demo runs (onnxruntime, torch) on the same 8 images."""
import json
import re
import shutil
from pathlib import Path

import pytest

from zoorepro import cli, config
from zoorepro.report import compare
from zoorepro.run import stages
from zoorepro.run.folder import Run

from conftest import small_params
from test_report import run_data

pytestmark = pytest.mark.e2e   # every test uses two real runs

EVIL = "<script>alert(1)</script>"
EVIL_DIR = "<img src=x onerror=alert(1)>"     # '/' cannot be in a folder name; same attack


def _run(tmp, name, backend):
    cfg = config.from_mapping(small_params(tmp, name=name, backends=[backend], batch_sizes=[1],
                                           bench_iterations=2, max_images=8))
    run = Run.create(cfg)
    stages.ensure(run, "evaluate")
    return run.root


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compare-runs")
    return _run(tmp, "ort", "onnxruntime"), _run(tmp, "pt", "torch")


@pytest.fixture(scope="module")
def cli_result(runs, tmp_path_factory):
    """Two compares through the CLI, in process: (folders printed last, out dir)."""
    out = tmp_path_factory.mktemp("compare-out")
    folders = []
    for _ in range(2):
        import io
        from contextlib import redirect_stdout
        buf = io.StringIO()
        with redirect_stdout(buf):
            rc = cli.main(["compare", str(runs[0]), str(runs[1]), "--out", str(out)])
        assert rc == 0
        folders.append(Path(buf.getvalue().strip().splitlines()[-1]))
    return folders, out


@pytest.fixture(scope="module")
def html(cli_result):
    return (cli_result[0][0] / "report.html").read_text(encoding="utf-8")


def _table_after(html: str, heading: str) -> str:
    start = html.index(f">{heading}</h2>")
    return html[start:html.index("</table>", start)]


def _rows(table_html: str) -> list[list[str]]:
    rows = [re.findall(r"<td[^>]*>(.*?)</td>", r)
            for r in re.findall(r"<tr[^>]*>(.*?)</tr>", table_html)]
    return [r for r in rows if r]                                    # the header row has <th>


def test_parity_table_shows_agreement_of_the_two_runs(html, runs):
    rows = _rows(_table_after(html, "Parity of predictions"))
    ort, pt = runs[0].name, runs[1].name
    cross = [r for r in rows if r[:4] == [ort, "onnxruntime", pt, "torch"]]
    assert len(cross) == 1, rows
    assert cross[0][4] == "8" and cross[0][5] == "100.00 %" and cross[0][6] == "0 differ"
    assert "Top-1 agreement between runs on common images: <b>100.00 %</b>" in html


def test_accuracy_rows_of_both_runs(html, runs):
    rows = _rows(_table_after(html, "Accuracy"))
    mine = {(r[0], r[1]): r for r in rows if r[1]}
    assert set(mine) == {(runs[0].name, "onnxruntime"), (runs[1].name, "torch")}
    for r in mine.values():
        assert r[2].startswith("cpu") and r[3] == "8"
        assert all(re.fullmatch(r"\d+\.\d\d", v) for v in r[4:9]), r
        assert r[9].startswith("demo: DeepScale Caffe SqueezeNet v1.1")
    assert mine[(runs[0].name, "onnxruntime")][4:9] == mine[(runs[1].name, "torch")][4:9]
    assert "recipe Ascend310P3 (published)" in html


def test_plot_embedded_and_page_self_contained(html):
    assert re.search(r'<img class="zr-plot" alt="[^"]+" '
                     r'src="data:image/png;base64,[A-Za-z0-9+/=]{2000,}"',
                     html)
    assert not re.search(r"<script[^>]+src=", html, re.I)
    assert not re.search(r"https?://", html)
    assert not re.search(r"<link[^>]+href=\"(?!data:)", html)
    assert ".zr-table" in html and "zr-banner" in html            # the report's stylesheet
    for col in ("img/s", "recipe Ascend310P3", "recipe Ascend310B1"):
        assert col in html
    assert len(html) < 2_000_000


def test_throughput_rows_name_their_streams_and_few_iteration_percentiles(html, runs):
    from zoorepro import report
    rows = _rows(_table_after(html, "Throughput by batch size"))
    col = ["run", *report.THROUGHPUT_HEADERS].index
    assert {r[col("run")] for r in rows} == {runs[0].name, runs[1].name}
    for r in rows:
        assert r[col("compute streams")] == "1"
        assert re.fullmatch(r"\d+", r[col("end-to-end streams")])
        assert r[col("p99 ms")].endswith("*") and int(r[col("iterations")]) < 100
    assert re.search(r"\* from [\d, ]+ iterations: too few for that percentile", html)
    assert '<td class="zr-num">' in html


def test_environment_differences_highlighted(html):
    rows = re.findall(r'<tr( class="zr-diff")?><td>(.*?)</td>',
                      _table_after(html, "Environment and inputs"))
    marked = {name: bool(cls) for cls, name in rows}
    assert marked["python"] is False and marked["package torch"] is False
    assert marked["device of onnxruntime"] is True and marked["device of torch"] is True


def test_each_compare_makes_a_new_folder(cli_result):
    folders, out = cli_result
    assert folders[0] != folders[1]
    for f in folders:
        assert f.parent == out and f.name.startswith("compare-")
        assert (f / "report.html").is_file()
        assert not list(f.glob(".*.part"))
    rec = json.loads((folders[1] / "compare.json").read_text())
    assert [r["label"] for r in rec["runs"]] and rec["parity"]


def test_strings_from_files_are_escaped(runs, tmp_path):
    evil_run = tmp_path / EVIL_DIR
    shutil.copytree(runs[0] / "records", evil_run / "records")
    shutil.copytree(runs[0] / "recipe", evil_run / "recipe")
    shutil.copytree(runs[0] / "results", evil_run / "results",
                    ignore=shutil.ignore_patterns("result_bs*"))
    env_file = evil_run / "records" / "environment.json"
    env = json.loads(env_file.read_text())
    env["cpu"] = EVIL
    env_file.write_text(json.dumps(env))
    pred_file = evil_run / "results" / "onnxruntime" / "predictions.json"
    preds = json.loads(pred_file.read_text())
    preds[EVIL] = 1
    pred_file.write_text(json.dumps(preds))
    folder = compare.compare([evil_run, runs[1]], tmp_path / "out")
    html = (folder / "report.html").read_text()
    assert "<script>" not in html and "<img src=x" not in html
    assert ("&lt;script&gt;alert(1)&lt;/script&gt;" in html
            and "&lt;img src=x onerror=alert(1)&gt;" in html)
    env_rows = re.findall(r'<tr( class="zr-diff")?><td>cpu</td>', html)
    assert env_rows == [' class="zr-diff"']


def test_no_common_images_is_said(runs, tmp_path):
    other = tmp_path / "other-run"
    shutil.copytree(runs[1] / "records", other / "records")
    shutil.copytree(runs[1] / "recipe", other / "recipe")
    (other / "results" / "torch").mkdir(parents=True)
    (other / "results" / "torch" / "predictions.json").write_text(json.dumps({"not_an_image": 3}))
    html = (compare.compare([runs[0], other], tmp_path / "out") / "report.html").read_text()
    rows = _rows(_table_after(html, "Parity of predictions"))
    assert rows == [[runs[0].name, "onnxruntime", "other-run", "torch", "0", "no common images",
                     ""]]
    assert "No two runs scored common images" in html


def test_not_a_run_folder_is_a_clear_error(runs, tmp_path, capsys):
    (tmp_path / "plain").mkdir()
    rc = cli.main(["compare", str(runs[0]), str(tmp_path / "plain"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"{tmp_path / 'plain'}: not a zoorepro run folder (no records/ folder inside)" in err
    assert "zoorepro run" in err and "zoorepro ingest" in err
    assert not (tmp_path / "o").exists()                             # nothing written
    with pytest.raises(compare.CompareError, match="folder not found"):
        compare.compare([runs[0], tmp_path / "missing"], tmp_path / "o")
    with pytest.raises(compare.CompareError, match="at least two run folders"):
        compare.compare([runs[0]], tmp_path / "o")


def test_damaged_record_names_the_file(runs, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(runs[0] / "records", bad / "records")
    shutil.copytree(runs[0] / "recipe", bad / "recipe")
    (bad / "records" / "bench.json").write_text("{ truncated")
    with pytest.raises(compare.CompareError) as e:
        compare.compare([runs[1], bad], tmp_path / "o")
    msg = str(e.value)
    assert str(bad / "records" / "bench.json") in msg and "not valid JSON" in msg
    assert "rerun" in msg


def test_hostile_values_render_as_text_in_every_part(tmp_path):
    """Constructed records (no run needed): a <script> / <img onerror> anywhere is text."""
    from zoorepro import report
    for bad in (EVIL, EVIL_DIR):
        bench = {"backend": bad, "device": bad, "precision": bad, "batch_size": 1,
                 "throughput": 9.0, "e2e_throughput": 8.0, "mean_ms": 1.0, "median_ms": 1.0,
                 "p90_ms": 1.0, "p99_ms": 1.0, "iterations": bad, "seconds": 1.0, "valid": True,
                 "validity": bad}
        acc = {"status": "ok", "images": 2, "device": bad, "weights_sha256": bad,
               "image_list_sha256": bad, "batch_size": bad, **{f"top{i}": 1.0 for i in range(1, 6)}}
        records = {"accuracy": {bad: acc, "x": {"status": "failed", "reason": bad}},
                   "bench": {"definition": bad, "records": [bench]},
                   "infer": {bad: {"status": "failed", "reason": bad}},
                   "environment": {"cpu": bad, "gpu": bad, "packages": {bad: bad}},
                   "dataset": {"images": bad, "image_list_sha256": bad},
                   "ingest": {"soc_version": bad, "cann": bad},
                   "failure": {"notebook": bad, "cell": bad, "error": bad}}
        entries = [compare.Entry(bad, run_data(tmp_path, records), {bad: {bad: 1, "a": 2}},
                                 {"x": bad}),
                   compare.Entry(f"{bad} #2", run_data(tmp_path, dict(records, environment={})),
                                 {bad: {bad: 1, "a": 3}})]
        html = compare.render(entries)
        assert "<script>" not in html and "<img src=x" not in html
        assert html.count(report.esc(bad)) > 20
        marked = re.findall(r'<tr( class="zr-diff")?><td>([^<]*)</td>', html)
        assert (' class="zr-diff"', "cpu") in marked and ("", "images") in marked


def test_page_uses_the_one_stylesheet(html):
    from zoorepro import report
    css = (report.TEMPLATE_DIR / "zoorepro.css").read_text(encoding="utf-8")
    assert css.strip() in html
    assert '<body class="jp-Notebook zr-compare">' in html


def test_run_names_with_dollar_signs_render_in_the_plot_as_text(tmp_path):
    """A $...$ pair in a run folder or device name crashed compare's plot (mathtext)."""
    from zoorepro import report
    bad = "npu-$x^$-run"
    bench = {"backend": "ais_bench", "device": "npu: $Ascend$^", "precision": "fp32",
             "batch_size": 1, "throughput": 9.0, "valid": True, "validity": "ok",
             "iterations": 1, "seconds": 1.0,
             **{k: 1.0 for k in ("mean_ms", "median_ms", "p90_ms", "p99_ms")}}
    entries = [compare.Entry(f"{bad} #{i}", run_data(tmp_path, {
        "bench": {"definition": "d", "records": [bench]}})) for i in (1, 2)]
    html = compare.render(entries)
    assert report.esc(f"{bad} #1") in html and "base64," in html


def test_parity_pairs_use_the_recipes_arithmetic():
    """23 of 160 images agreeing is 23 / 160 * 100 (14.37 when rounded), as the recipe
    computes a percentage from hits, not 100 * 23 / 160 (14.38)."""
    keys = [f"img{i}" for i in range(160)]
    a = compare.Entry("a", run_data(Path("a")), {"ort": {k: 1 for k in keys}})
    b = compare.Entry("b", run_data(Path("b")),
                      {"ort": {k: (1 if i < 23 else 2) for i, k in enumerate(keys)}})
    assert compare.parity_pairs([a, b])[0]["top1_agreement_pct"] == 23 / 160 * 100


def test_a_huge_predictions_file_is_refused_before_it_is_read(runs, tmp_path, monkeypatch):
    from zoorepro.recipe import evaluate
    copy = tmp_path / "copy"
    shutil.copytree(runs[0], copy)
    monkeypatch.setattr(evaluate, "PREDICTIONS_MAX_BYTES", 10)
    preds, why = compare._read_predictions(copy, "onnxruntime")
    assert preds is None and "bytes, more than such a file ever holds (10)" in why


def test_a_busy_point_of_any_run_is_said_with_its_run(tmp_path):
    bench = {"backend": "onnxruntime", "device": "cpu: X", "precision": "fp32", "batch_size": 4,
             "throughput": 9.0, "valid": True, "validity": "ok", "iterations": 200,
             "seconds": 1.0, **{k: 1.0 for k in ("mean_ms", "median_ms", "p90_ms", "p99_ms")}}
    busy = dict(bench, busy=True, others_cpu_share=0.5, host_cores=4, load_before=5.0,
                load_after=6.0)
    entries = [compare.Entry("quiet", run_data(tmp_path, {"bench": {
                   "definition": "d", "records": [bench]}})),
               compare.Entry("loaded", run_data(tmp_path, {"bench": {
                   "definition": "d", "records": [busy]}}))]
    html = compare.render(entries)
    assert "<b>Busy host</b>: 1 of 2 sweep point(s)" in html
    assert "loaded: onnxruntime batch 4 (others 50 % of 4 cores; load 5.0 → 6.0)" in html
    assert "quiet: onnxruntime" not in html and "too few for that percentile" not in html
    quiet = compare.render([entries[0], compare.Entry("q2", entries[0].data)])
    assert "Busy host" not in quiet


def test_runs_of_two_recipes_are_compared_on_one_page(tmp_path):
    """Each recipe's published figures, labelled with its title, and both titles on top."""
    from zoorepro import recipebook
    from zoorepro.report import compare as compare_mod
    acc = {"onnxruntime": {"status": "ok", "images": 10, "top1": 50.0, "top2": 60.0,
                           "top3": 70.0, "top4": 75.0, "top5": 80.0, "device": "cpu: X",
                           "weights_sha256": None}}
    sq = run_data(tmp_path / "a", {"accuracy": acc}, recipebook.load("squeezenet1_1"))
    lite = run_data(tmp_path / "b", {"accuracy": acc}, recipebook.load("efficientnet_lite0"))
    entries = [compare_mod.Entry("sq", sq), compare_mod.Entry("lite", lite)]
    labels = [row[0] for row in compare_mod.accuracy_rows(entries)]
    assert "SqueezeNet 1.1: recipe Ascend310P3 (published)" in labels
    assert "EfficientNet-Lite0: TensorFlow fp32 (published)" in labels
    assert not any(label.startswith("EfficientNet-Lite0: recipe") for label in labels)
    page = compare_mod.render(entries, [])
    assert "<h1>SqueezeNet 1.1, EfficientNet-Lite0 — comparison of zoorepro runs</h1>" in page
    assert set(compare_mod.published_series(entries)) == {
        "SqueezeNet 1.1: recipe Ascend310P3", "SqueezeNet 1.1: recipe Ascend310B1"}
