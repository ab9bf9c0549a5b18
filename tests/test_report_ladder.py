"""The report's "Where accuracy goes" section (report/ladder.py): its sign test, its table and
the sentences, each from the row's own counts, on hand-made ladder records."""
from __future__ import annotations

import pytest

from zoorepro.report import ladder
from zoorepro.report.core import RunData
from zoorepro.run import records


@pytest.mark.parametrize("fixed, broken, p", [
    (0, 0, 1.0), (1, 0, 1.0), (5, 0, 0.0625), (6, 0, 0.03125), (3, 3, 1.0),
    (1, 9, 22 / 1024),           # 2 * (C(10,0) + C(10,1)) / 2**10
])
def test_sign_test_known_answers(fixed, broken, p):
    assert ladder.sign_test(fixed, broken) == pytest.approx(p)
    assert ladder.sign_test(broken, fixed) == pytest.approx(p)    # two-sided: symmetric


def row(step, top1, top5, **kw):
    base = dict(step=step, name=f"row {step}", how=f"how {step}", status="ok", engine="e",
                images=100, top1=top1, top2=top1, top3=top5, top4=top5, top5=top5)
    return records.LadderRow(**{**base, **kw})


def make(rows, **kw):
    return records.LadderRecord(status="ok", images=100, batch_size=8, rows=rows,
                                csv="ladder.csv", **kw)


def test_sentences_say_only_what_the_counts_support():
    rec = make([
        row("b", 65.0, 87.0, agreement_pct=100.0, compared=100, changed=0, fixed=0, broken=0,
            max_abs_logit_delta=0.0, throughput=200.0, throughput_batch=8),
        row("c", 65.0, 87.0, agreement_pct=100.0, compared=100, changed=0, fixed=0, broken=0,
            max_abs_logit_delta=0.004),
        row("d", 64.0, 87.0, agreement_pct=97.0, compared=100, changed=3, fixed=1, broken=2,
            max_abs_logit_delta=0.05),
        row("e", 58.0, 85.0, agreement_pct=90.0, compared=100, changed=10, fixed=1, broken=8,
            max_abs_logit_delta=1.5, throughput=400.0, throughput_batch=8),
        records.LadderRow("a", "row a", "how a", "not run", reason="no weights file"),
    ])
    says = ladder.sentences(rec)
    assert says[0].startswith("Row b, the recipe's fp32 path, scores Acc@1 65.00 % on 100 "
                              "images") and "one image is 1 pt here" in says[0]
    by = {s.split("(row ")[1][0]: s for s in says[1:]}
    assert "was not measured: no weights file" in by["a"]
    assert "moves Acc@1 by +0.00 pt: no image changes its top-1 class" in by["c"]
    assert "a net -1 image(s), within what 100 images can tell (1 fixed, 2 broken" in by["d"]
    # 1 fixed vs 8 broken: p = 2 * (1 + 9) / 512 = 0.039 -> a real loss
    assert "moves Acc@1 by -7.00 pt: a real loss of 7 image(s)" in by["e"]
    assert "sign test p = 0.039" in by["e"] and "2.00× row b's img/s at batch 8" in by["e"]


def test_the_section_shows_the_table_the_hows_and_the_calibration(tmp_path):
    rec = make([row("b", 65.0, 87.0, compared=100, changed=0, fixed=0, broken=0,
                    agreement_pct=100.0, max_abs_logit_delta=0.0),
                row("e", 64.0, 87.0, compared=100, changed=2, fixed=0, broken=1,
                    agreement_pct=98.0, max_abs_logit_delta=0.7,
                    changed_examples=["ILSVRC2012_val_00000001: 65 -> 66 (label 65)"])],
               accuracy_seconds=2.0)
    q = records.QuantizeRecord(model="m.onnx", model_sha256="a" * 64, source_model="s.onnx",
                               source_model_sha256="b" * 64, method="QDQ <int8>.",
                               calibration_set="32 of the run's 100 images",
                               calibration_images=32, calibration_scored=32,
                               calibration_sha256="c" * 64, version="onnxruntime x")
    html = ladder.ladder_section(RunData(tmp_path, {"ladder": rec, "quantize": q}))
    assert "<th>top-1 agreement with b</th>" in html and "-1.00 pt" in html
    assert "<li><b>e</b>: how e</li>" in html
    assert "row e: ILSVRC2012_val_00000001: 65 -&gt; 66 (label 65)" in html
    assert 'href="ladder.csv"' in html
    assert "QDQ &lt;int8&gt;. Calibrated on 32 of the run&#x27;s 100 images" in html


def test_without_a_ladder_the_section_says_why(tmp_path):
    assert "not measured: the run has no ladder record" in ladder.ladder_section(RunData(tmp_path))
    off = records.LadderRecord(status="not run", reason="ladder: false in the params")
    html = ladder.ladder_section(RunData(tmp_path, {"ladder": off}))
    assert "not measured: ladder: false in the params." in html
