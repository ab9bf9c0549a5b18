"""reports/index.html: every run with its status, figures and a link; names are text; one
damaged run folder is listed as damaged and never stops the index."""
import json

import pytest

from zoorepro import config
from zoorepro.report import index
from zoorepro.run import records
from zoorepro.run.folder import Run

from conftest import small_params
from test_run import no_blocking  # noqa: F401  (a fixture)

ENTRY = {"status": "ok", "backend": "onnxruntime", "device": "cpu", "images": 12,
         "top1": 50.0, "top5": 75.0, "correct_top1": 6, "correct_top5": 9}


def test_index_lists_runs_with_their_status(tmp_path):
    out = tmp_path / "reports"
    done = Run.create(config.from_mapping(small_params(tmp_path, name="done")))
    (done / "report.html").write_text("x")
    failed = Run.create(config.from_mapping(small_params(tmp_path, name="failed")))
    failed.write(records.FailureRecord(notebook="03_infer.ipynb", cell="2",
                                       error="<img src=x onerror=1>"))
    Run.create(config.from_mapping(small_params(tmp_path, name="half")))
    html = index.refresh(out).read_text()
    assert f'<a href="./{done.root.name}/report.html">{done.root.name}</a>' in html
    assert "failed in 03_infer.ipynb" in html and "unfinished" in html and "finished" in html
    assert "<script" not in html and "http" not in html.split("<body", 1)[1]
    from zoorepro import recipebook
    sha = recipebook.load("squeezenet1_1").sha256
    assert "<th>recipe</th>" in html and f"<td>squeezenet1_1 ({sha[:8]})</td>" in html


def _folder(root, name, report=True):
    run = root / name
    (run / "records").mkdir(parents=True)
    if report:
        (run / "report.html").write_text("x")
    return run


def test_a_link_is_a_quoted_relative_path_never_a_scheme(tmp_path):
    """A run folder named javascript:alert(1) became a link that ran script when clicked."""
    root = tmp_path / "reports"
    _folder(root, "javascript:alert(1)")
    _folder(root, 'a"b <c> #d?e')
    html = index.refresh(root).read_text()
    hrefs = [h.split('"', 1)[0] for h in html.split('href="')[2:]]   # [0]: the icon
    assert './javascript%3Aalert%281%29/report.html' in hrefs
    assert './a%22b%20%3Cc%3E%20%23d%3Fe/report.html' in hrefs
    assert all(h.startswith("./") for h in hrefs)
    assert 'href="javascript' not in html and "<c>" not in html


@pytest.mark.parametrize("damage,reason", [
    ({"accuracy.json": {"onnxruntime": {**ENTRY, "top1": "<script>alert(1)</script>"}}},
     "top1 = &#x27;&lt;script&gt;alert(1)&lt;/script&gt;&#x27; is str"),
    ({"accuracy.json": {"onnxruntime": {**ENTRY, "images": 10**30}}}, "images = 1000000"),
    ({"bench.json": "[" * 100_000}, "records/bench.json: not valid JSON"),
    ({"../params.yaml": "[1, 2]"}, "params.yaml: expected a mapping"),
    ({"failure.json": b"\xff\xfe"}, "records/failure.json: not valid JSON"),
    ({"accuracy.json": {"schema_version": 99, "onnxruntime": ENTRY}}, "schema_version 99"),
])
def test_a_damaged_run_is_listed_as_damaged_and_the_others_still_are(tmp_path, damage, reason):
    """A string where a number belongs, or a huge record, in one run folder made every later
    run/ingest/render/index exit 1 with a traceback."""
    root = tmp_path / "reports"
    good = Run.create(config.from_mapping(small_params(tmp_path, name="good")))
    good.write(records.AccuracyRecord({"onnxruntime": ENTRY}))
    bad = Run.create(config.from_mapping(small_params(tmp_path, name="bad")))
    for name, content in damage.items():
        path = bad.records_dir / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content if isinstance(content, str) else json.dumps(content))
    html = index.refresh(root).read_text()
    row = next(r for r in html.split("<tr>") if bad.root.name in r)
    assert "<td>damaged: " in row and reason in row and bad.root.name in row
    good_row = next(r for r in html.split("<tr>") if good.root.name in r)
    assert "50.00" in good_row and "75.00" in good_row and "damaged" not in good_row


def test_a_huge_record_is_not_read_by_the_index(tmp_path, monkeypatch):
    from zoorepro.run import folder as run_mod
    root = tmp_path / "reports"
    bad = Run.create(config.from_mapping(small_params(tmp_path, name="bad")))
    (bad.records_dir / "accuracy.json").write_text(" " * 5000 + "{}")
    monkeypatch.setattr(run_mod, "RECORD_MAX_BYTES", 4096)
    html = index.refresh(root).read_text()
    assert "<td>damaged: " in html and "more than a record ever holds" in html


def test_an_unexpected_error_in_one_run_never_stops_the_index(tmp_path, monkeypatch):
    root = tmp_path / "reports"
    good = Run.create(config.from_mapping(small_params(tmp_path, name="good")))
    bad = Run.create(config.from_mapping(small_params(tmp_path, name="bad")))
    real = index._status

    def status(run):
        if run.root == bad.root:
            raise KeyError("something nobody foresaw")
        return real(run)
    monkeypatch.setattr(index, "_status", status)
    html = index.refresh(root).read_text()
    assert "<td>damaged: KeyError: &#x27;something nobody foresaw&#x27;" in html
    assert good.root.name in html and "unfinished" in html


def test_an_absurd_throughput_is_damage_not_the_best_figure(tmp_path):
    """A bench throughput of 1e300 was listed as the best, a 300-digit img/s figure."""
    root = tmp_path / "reports"
    bad = Run.create(config.from_mapping(small_params(tmp_path, name="bad")))
    row = dict(backend="onnxruntime", device="cpu", batch_size=1, iterations=2,
               throughput=1e300, throughput_definition="d", valid=True, validity="ok")
    (bad.records_dir / "bench.json").write_text(json.dumps({"definition": "d",
                                                            "records": [row]}))
    html = index.refresh(root).read_text()
    row_html = next(r for r in html.split("<tr>") if bad.root.name in r)
    assert "<td>damaged: " in row_html and "throughput = 1e+300" in row_html
    assert "img/s (" not in row_html


@pytest.mark.usefixtures("no_blocking")
@pytest.mark.parametrize("name", ["accuracy", "ingest", "failure"])
@pytest.mark.parametrize("what", ["folder", "fifo"])
def test_a_record_that_is_a_folder_or_fifo_lists_the_run_as_damaged(tmp_path, what, name):
    """An accuracy.json that was a folder or a FIFO left the run 'finished' with blank
    figures (an ingest.json one: 'ingested')."""
    from test_run import _not_a_file
    root = tmp_path / "reports"
    bad = Run.create(config.from_mapping(small_params(tmp_path, name="bad")))
    (bad / "report.html").write_text("x")
    _not_a_file(bad.records_dir / f"{name}.json", what)
    html = index.refresh(root).read_text()
    row = next(r for r in html.split("<tr>") if bad.root.name in r)
    assert "<td>damaged: " in row and f"{name}.json: a " in row
    assert "not a regular file" in row and "finished" not in row and "ingested" not in row


@pytest.mark.parametrize("what,reason", [("self", r"records: a link (to .), not a folder"),
                                         ("loop", "records: a link that loops (to records)")])
def test_a_folder_whose_records_is_a_link_is_listed_as_damaged(tmp_path, what, reason):
    """records -> . made the folder its own records/: it was listed from the wrong files."""
    from test_run import _records_as
    root = tmp_path / "reports"
    _records_as(root / "linked", what)
    (root / "linked" / "report.html").write_text("x")
    html = index.refresh(root).read_text()
    row = next(r for r in html.split("<tr>") if ">linked<" in r)
    assert "<td>damaged: " in row and reason in row
