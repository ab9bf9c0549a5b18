"""End to end with papermill: notebooks -> run folder -> report.html (a few images)."""
import json
import re

import pytest

from zoorepro import config, runner

from conftest import small_params

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    cfg = config.from_mapping(small_params(tmp, backends=["onnxruntime", "torch"]))
    return runner.run_all(cfg)


def test_run_folder_layout(outcome):
    root = outcome.run_dir
    assert outcome.ok, outcome.failure
    for name in ("report.html", "result.json", "metrics.json", "params.yaml"):
        assert (root / name).is_file(), name
    for nb in ("01_preprocess", "02_export", "03_infer", "04_evaluate", "05_report"):
        assert (root / "notebooks" / f"{nb}.ipynb").is_file()
    assert json.loads((root / "metrics.json").read_text())["backend"] == "onnxruntime"
    assert (root / "results" / "torch" / "metrics.json").is_file()
    bench = json.loads((root / "records" / "bench.json").read_text())["records"]
    assert {(r["backend"], r["batch_size"]) for r in bench} == {
        ("onnxruntime", 1), ("onnxruntime", 4), ("torch", 1), ("torch", 4)}


def test_report_is_self_contained_and_complete(outcome):
    html = (outcome.run_dir / "report.html").read_text()
    assert not re.search(r'<script[^>]+src=', html)
    assert not re.search(r'(src|href)="https?://', html)
    assert re.search(r'<img alt="Throughput by batch size" class="zr-plot" src="data:image/png;base64,', html)
    for text in ("Acc@1", "57.32", "58.18", "recipe Ascend310P3", "Throughput by batch size",
                 "not run here", "Provenance", "sha256", "Environment", "onnxruntime", "torch",
                 "0 tench", "Cross-backend parity", "100.00 %"):
        assert text in html, text
    assert "stages.ensure_for_report" not in html                # code hidden
    assert len(html) < 3_000_000


def test_failing_notebook_keeps_partial_report(tmp_path):
    """An aipp.config with an unknown field stops 02_export: the executed notebook is kept
    with its failing cell, the CLI exits 1 naming notebook and cell, a partial report says so."""
    import subprocess
    import sys
    from pathlib import Path
    import yaml
    from conftest import AIPP_CONFIG
    bad = tmp_path / "aipp.config"
    bad.write_text(AIPP_CONFIG.read_text().replace("crop: false", "crop: false\n    colour_boost : 1"))
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(small_params(tmp_path, aipp_config=str(bad), max_images=3,
                                             batch_sizes=[1])))
    r = subprocess.run([sys.executable, "-m", "zoorepro", "run", str(p)], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 1
    assert "notebook 02_export.ipynb failed at cell" in r.stderr
    assert "aipp.config:9: unknown AIPP field 'colour_boost'" in r.stderr
    run_dir = Path(r.stdout.strip().splitlines()[-1])
    nb = json.loads((run_dir / "notebooks" / "02_export.ipynb").read_text())
    assert any(o.get("output_type") == "error" for c in nb["cells"] for o in c.get("outputs", []))
    assert not (run_dir / "notebooks" / "03_infer.ipynb").exists()       # stopped there
    html = (run_dir / "report.html").read_text()
    assert "This run failed" in html and "02_export.ipynb" in html and "colour_boost" in html
    assert (run_dir / "records" / "preprocess.json").is_file()   # what did run is shown
