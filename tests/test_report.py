"""Report sections: escaping, verdict wording, rendering to self-contained HTML."""
import re


from zoorepro import config, pipeline, references, report, runner

from conftest import small_params

EVIL = "<script>alert(1)</script>"
EVIL_FILE = "<img src=x onerror=alert(1)>"   # '/' cannot be in a file name; same attack


def test_table_escapes_every_cell():
    html = report.table(["a", EVIL], [[EVIL, 1], [report.Raw("<b>x</b>"), None]])
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>x</b>" in html


def test_sections_escape_strings_from_files(tmp_path):
    data = report.RunData(tmp_path, {
        "preprocess": {"failed": [[f"{EVIL}.JPEG", f"reason {EVIL}"]], "non_rgb": [[f"{EVIL}.JPEG", "L"]],
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
    data = report.RunData(tmp_path, {"accuracy": {"onnxruntime": m}})
    assert "Not comparable" in report.verdict(data)
    full = dict(m, images=references.FULL_VAL_IMAGES, top1=57.9, top5=80.3, weights_sha256="f364aa15" + "0" * 56)
    v = report.verdict(report.RunData(tmp_path, {"accuracy": {"onnxruntime": full},
                                                 "params_text": "reference_tolerance_pct: 1.0\n"}))
    assert "REPRODUCED" in v and "NOT" not in v and "recipe&#x27;s weights" in v
    off = dict(full, top1=50.0)
    assert "NOT reproduced" in report.verdict(report.RunData(tmp_path, {"accuracy": {"onnxruntime": off}}))


def test_file_names_from_disk_render_as_text(tmp_path, demo_images):
    """A real image named like a script tag flows through a run into report.html as text."""
    src = tmp_path / "imgs"
    src.mkdir()
    for p in demo_images[:2]:
        (src / p.name).write_bytes(p.read_bytes())
    (src / f"{EVIL_FILE}.JPEG").write_bytes(demo_images[2].read_bytes())
    cfg = config.from_mapping(small_params(tmp_path, data_dir=str(src), max_images=0,
                                           allow_label_mismatch=True, batch_sizes=[1]))
    cfg, run = pipeline.open_run(cfg)
    pipeline.run_evaluate(cfg, run)
    runner.execute(runner.REPORT_NOTEBOOK, cfg, run)
    html = report.render_html(run.notebooks / runner.REPORT_NOTEBOOK, run.root / "report.html").read_text()
    assert "&lt;img src=x onerror=alert(1)&gt;" in html   # the name is shown ...
    assert EVIL_FILE not in html                          # ... as text, never as markup
    assert not re.search(r'<script[^>]+src=', html)


def test_throughput_table_headers_match_rows(tmp_path):
    from zoorepro import bench
    rec = {k: 1.0 for k in bench.BENCH_FIELDS}
    rec.update(backend="onnxruntime", device="cpu: X", batch_size=8, iterations=50, valid=True,
               validity="ok", precision="fp32")
    data = report.RunData(tmp_path, {"bench": {"records": [rec], "definition": "d"}})
    rows = report.throughput_rows(data)
    assert len(rows[0]) == len(report.THROUGHPUT_HEADERS)
    assert rows[0][report.THROUGHPUT_HEADERS.index("batch")] == 8


def test_streams_are_named_where_figures_depend_on_them(tmp_path):
    from zoorepro import bench
    rec = {k: 1.0 for k in bench.BENCH_FIELDS}
    rec.update(backend="onnxruntime", device="cpu: X", batch_size=8, iterations=50, valid=True,
               validity="ok", precision="fp32", e2e_streams=2)
    data = report.RunData(tmp_path, {
        "bench": {"records": [rec], "definition": "d"},
        "infer": {"onnxruntime": {"status": "ok", "device": "cpu: X", "accuracy_batch_size": 1,
                                  "compute_throughput": 170.0, "e2e_throughput": 150.0,
                                  "streams": 2, "stream_threads": [2, 1]}}})
    table = report.throughput_table(data)
    assert "in the accuracy run&#x27;s N concurrent streams" in table and "1.0 (2 streams)" in table
    e2e = report.e2e_table(data)
    assert "2 concurrent streams (2+1 threads)" in e2e and "summed over streams" in e2e
    one = report.RunData(tmp_path, {"infer": {"onnxruntime": {
        "status": "ok", "device": "cpu: X", "accuracy_batch_size": 1, "streams": 1}}})
    assert "concurrent" not in report.e2e_table(one)
