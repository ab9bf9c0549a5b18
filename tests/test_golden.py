"""Golden safety net for refactoring: a small demo run's records and the report's visible text
must stay as they were when the golden files were written (commit 2e5b89a, before the
architecture change).

Normalised before comparing: run-folder and project paths, times and dates, every timing
figure (throughput, milliseconds, seconds, iteration counts, validity), versions and the git
commit.  Accuracy, predictions, hashes, counts, record keys and all words are compared
exactly.  Set ZOOREPRO_REGEN_GOLDEN=1 to rewrite the golden files (only on purpose).
"""
from __future__ import annotations

import html
import json
import os
import re
from pathlib import Path

import pytest

from conftest import ROOT, small_params

GOLDEN = ROOT / "tests" / "golden"
pytestmark = pytest.mark.e2e

# keys whose values depend on the machine, the clock or timing noise
VOLATILE = re.compile(
    r"throughput|compute_throughput|e2e_throughput|throughput_reported|min_ms|max_ms|mean_ms|"
    r"median_ms|p90_ms|p99_ms|seconds|iterations|valid|validity|created|pid|threads|"
    r"stream_threads|streams|e2e_streams|e2e_images|e2e_seconds|readers|workers|version|"
    r"versions|packages|python|os|platform|cpu|logical_cores|physical_cores|memory_gib|"
    r"zoorepro_git_commit|git_commit|onnx_sha256|aipp_onnx_sha256|max_abs_logit_diff|"
    r"max_abs_diff_onnx|max_abs_diff_aipp|h2d_mean_ms|d2h_mean_ms|elapsed_s|wall_s")
NUM = re.compile(r"[-+]?\d[\d,]*(\.\d+)?(e[-+]?\d+)?")


def _norm_str(s: str, root: Path) -> str:
    s = s.replace(str(root), "<RUN>").replace(str(ROOT), "<ROOT>")
    s = re.sub(r"/tmp/pytest-of-[^/]+/pytest-\d+/[^/\s\"']+", "<TMP>", s)
    s = re.sub(r"t-\d{8}-\d{6}(-\d+)?", "t-<STAMP>", s)
    return s


def normalise(obj, root: Path, key: str = ""):
    if isinstance(obj, dict):
        return {k: ("<VOLATILE>" if VOLATILE.fullmatch(k) else normalise(v, root, k))
                for k, v in sorted(obj.items())}
    if isinstance(obj, list):
        return [normalise(v, root, key) for v in obj]
    if isinstance(obj, str):
        return _norm_str(obj, root)
    return obj


def report_text(path: Path, root: Path) -> list[str]:
    """The report's visible text, one line per block, numbers replaced by '#'."""
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"(?is)<(script|style|head)\b.*?</\1>", " ", text)
    text = re.sub(r"(?i)<(br|/p|/div|/tr|/h[1-6]|/li|/pre|/table)\b[^>]*>", "\n", text)
    text = re.sub(r"(?i)<(td|th)\b[^>]*>", " | ", text)
    text = re.sub(r"<[^>]+>", " ", text)
    text = html.unescape(text)
    lines = []
    for line in text.splitlines():
        line = _norm_str(" ".join(line.split()), root)
        line = re.sub(r"\b(?:Python|python) [\d.]+\S*", "Python #", line)
        line = NUM.sub("#", line)
        # timing noise: which backend was fastest, and whether a point's spread was small
        line = re.sub(r"^Best throughput: # img/s \(\w+,", "Best throughput: # img/s (<BACKEND>,", line)
        line = re.sub(r"\| (valid|invalid[^|]*|INVALID[^|]*)$", "| <VALIDITY>", line)
        line = re.sub(r"^(\| zoorepro[ _]git[ _]commit \|).*", r"\1 <COMMIT>", line)
        line = re.sub(r"^(\| package [\w.-]+ \|).*", r"\1 <VERSION>", line)   # installed or not
        if line.strip(" |"):
            lines.append(line)
    return lines


@pytest.fixture(scope="module")
def golden_run(tmp_path_factory):
    from zoorepro import config, runner
    tmp = tmp_path_factory.mktemp("golden")
    cfg = config.from_mapping(small_params(tmp, backends=["onnxruntime", "torch"], max_images=12,
                                           batch_sizes=[1, 4], accuracy_batch_size=4))
    out = runner.run_all(cfg)
    assert out.ok, out.failure
    return out.run_dir


def _records(root: Path) -> dict:
    """Every record, normalised; ``schema_version`` (added by the architecture change) is
    checked here and then left out of the comparison."""
    out = {}
    for p in sorted((root / "records").glob("*.json")):
        obj = json.loads(p.read_text())
        if isinstance(obj, dict):
            assert obj.pop("schema_version", None) == 1, p.name
        out[p.stem] = normalise(obj, root)
    return out


def test_records_match_the_golden_run(golden_run):
    got = _records(golden_run)
    path = GOLDEN / "demo_records.json"
    if os.environ.get("ZOOREPRO_REGEN_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    want = json.loads(path.read_text())
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name] == want[name], name


def test_report_text_matches_the_golden_run(golden_run):
    got = report_text(golden_run / "report.html", golden_run)
    path = GOLDEN / "demo_report_text.txt"
    if os.environ.get("ZOOREPRO_REGEN_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        path.write_text("\n".join(got) + "\n")
    want = path.read_text().splitlines()
    assert got == want
