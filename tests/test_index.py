"""reports/index.html: every run with its status, figures and a link; names are text."""
from zoorepro import config, index, records
from zoorepro.run import Run

from conftest import small_params


def test_index_lists_runs_with_their_status(tmp_path):
    out = tmp_path / "reports"
    done = Run.create(config.from_mapping(small_params(tmp_path, name="done")))
    (done / "report.html").write_text("x")
    failed = Run.create(config.from_mapping(small_params(tmp_path, name="<img src=x onerror=1>")))
    failed.write(records.FailureRecord(notebook="03_infer.ipynb", cell="2", error="boom"))
    Run.create(config.from_mapping(small_params(tmp_path, name="half")))
    html = index.refresh(out).read_text()
    assert f'<a href="{done.root.name}/report.html">{done.root.name}</a>' in html
    assert "failed in 03_infer.ipynb" in html and "unfinished" in html and "finished" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=1&gt;" in html
    assert "<script" not in html and "http" not in html.split("<body", 1)[1]
