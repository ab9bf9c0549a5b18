"""Scoring on constructed outputs with known answers."""
import json
import re

import numpy as np
import pytest

from zoorepro.recipe import evaluate


def write_txt(folder, key, scores):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{key}_0.txt").write_text(" ".join(f"{v:f}" for v in scores) + " \n")


def scores_with_rank(label, rank, n=1000):
    """Scores where ``label`` sits at 0-based ``rank``."""
    s = np.linspace(1.0, 0.0, n).astype(np.float32)
    order = [c for c in range(n) if c != label]
    order.insert(rank, label)
    out = np.empty(n, np.float32)
    out[order] = s
    return out


def build(tmp_path, ranks, n=1000):
    folder = tmp_path / "result_bs1"
    labels = {}
    for i, r in enumerate(ranks):
        key = f"ILSVRC2012_val_{i + 1:08d}"
        labels[key] = 7 * i
        sc = scores_with_rank(7 * i + (1 if n == 1001 else 0), r, n)
        write_txt(folder, key, sc)
    return folder, labels


def test_known_topk(tmp_path):
    # ranks 0,0,1,2,4,7,9,0,3,5 -> top1 3/10, top2 4/10, top3 5/10, top4 6/10, top5 7/10
    folder, labels = build(tmp_path, [0, 0, 1, 2, 4, 7, 9, 0, 3, 5])
    m = evaluate.score(evaluate.read_result_folder(folder), labels, expected=labels)
    assert [m[f"top{k}"] for k in range(1, 6)] == [30.0, 40.0, 50.0, 60.0, 70.0]
    assert m["images"] == 10 and m["classes"] == 1000
    r = evaluate.result_json(m)
    assert r["title"] == "Overall statistical evaluation"
    assert r["value"][0] == {"key": "Number of images", "value": "10"}
    assert r["value"][2] == {"key": "Top1 accuracy", "value": "30.0%"}


def test_1001_class_outputs_use_label_plus_one(tmp_path):
    folder, labels = build(tmp_path, [0, 1, 5], n=1001)
    m = evaluate.score(evaluate.read_result_folder(folder), labels)
    assert m["classes"] == 1001 and m["top1"] == pytest.approx(100 / 3)
    assert m["top5"] == pytest.approx(200 / 3)


def test_ties_break_to_lower_class(tmp_path):
    scores = np.zeros(1000, np.float32)
    scores[[5, 3, 9]] = 1.0
    assert evaluate.top5(scores).tolist() == [3, 5, 9, 0, 1]
    folder = tmp_path / "r"
    write_txt(folder, "a", scores)
    write_txt(folder, "b", scores)
    m = evaluate.score(evaluate.read_result_folder(folder), {"a": 3, "b": 9})
    assert [m[f"top{k}"] for k in range(1, 4)] == [50.0, 50.0, 100.0]


def test_outputs_of_another_run_are_refused(tmp_path):
    folder, labels = build(tmp_path, [0, 0, 0])
    expected = list(labels)[:2]
    with pytest.raises(evaluate.EvaluationError,
                       match="1 output\\(s\\) are for images that are not part of this run"):
        evaluate.score(evaluate.read_result_folder(folder), labels, expected=expected)


def test_result_json_rounding_matches_recipe():
    m = {"images": 50000, "classes": 1000, **{f"top{i}": 58.1949 for i in range(1, 6)}}
    assert evaluate.result_json(m)["value"][2]["value"] == "58.19%"


def test_foreign_file_warns_not_crashes(tmp_path):
    folder, labels = build(tmp_path, [0, 0])
    (folder / "sumary.json").write_text("{}")
    (folder / "x_1.txt").write_text("1 2 \n")
    # x_1.txt would be a second model output, but there is no x_0.txt to score: listed too
    pred = evaluate.read_result_folder(folder)          # notes, as data: no warning
    assert len(pred.notes) == 1
    assert re.search(r"2 file\(s\) are not ais_bench outputs.*sumary.json, x_1.txt", pred.notes[0])
    assert evaluate.score(pred, labels)["top1"] == 100.0


def test_missing_prediction_says_how_many(tmp_path):
    folder, labels = build(tmp_path, [0, 0, 0])
    expected = list(labels) + ["ILSVRC2012_val_00000099"]
    with pytest.raises(evaluate.EvaluationError,
                       match="1 of 4 image\\(s\\) have no prediction, "
                             "e.g. ILSVRC2012_val_00000099"):
        evaluate.score(evaluate.read_result_folder(folder), labels, expected=expected)


def test_prediction_without_label(tmp_path):
    folder, labels = build(tmp_path, [0, 0])
    labels.pop("ILSVRC2012_val_00000001")
    with pytest.raises(evaluate.EvaluationError, match="no label"):
        evaluate.score(evaluate.read_result_folder(folder), labels)


def test_appended_txt_is_refused(tmp_path):
    folder, labels = build(tmp_path, [0])
    f = folder / "ILSVRC2012_val_00000001_0.txt"
    f.write_text(f.read_text() * 2)
    with pytest.raises(evaluate.EvaluationError, match="appended"):
        evaluate.read_result_folder(folder)


def test_npy_and_bin_predictions(tmp_path):
    folder = tmp_path / "r"
    folder.mkdir()
    np.save(folder / "a_0.npy", scores_with_rank(3, 0)[None])
    scores_with_rank(4, 1).tofile(folder / "b_0.bin")
    m = evaluate.score(evaluate.read_result_folder(folder), {"a": 3, "b": 4})
    assert m["top1"] == 50.0 and m["top2"] == 100.0


def test_write_results(tmp_path):
    folder, labels = build(tmp_path, [0, 3])
    m = evaluate.score(evaluate.read_result_folder(folder), labels)
    r, p = evaluate.write_results(m, tmp_path)
    assert r.name == "result.json" and p.name == "metrics.json"
    assert json.loads(p.read_text())["top4"] == 100.0
    assert "per_image_top1" not in json.loads(p.read_text())
    assert json.loads(r.read_text())["value"][5]["value"] == "100.0%"
    # byte for byte what the recipes' scoring scripts write: json.dump, one line, no newline
    assert r.read_text() == json.dumps(evaluate.result_json(m))
    assert r.read_text().startswith('{"title": "Overall statistical evaluation", "value": [')


def test_write_results_uses_the_recipes_result_file_name(tmp_path):
    folder, labels = build(tmp_path, [0])
    m = evaluate.score(evaluate.read_result_folder(folder), labels)
    r, _ = evaluate.write_results(m, tmp_path / "out", "acc_result.json")
    assert r == tmp_path / "out" / "acc_result.json" and r.is_file()
    for bad in ("", "sub/result.json", "metrics.json"):
        with pytest.raises(evaluate.EvaluationError, match="scoring.result_file.*recipe.yaml"):
            evaluate.write_results(m, tmp_path / "out", bad)


def test_reading_pool_gives_the_same_answer_in_order(tmp_path, monkeypatch):
    ranks = [0, 0, 1, 2, 4, 7, 9, 0, 3, 5] * 3
    folder, labels = build(tmp_path, ranks)
    serial = evaluate.read_result_folder(folder)
    monkeypatch.setattr(evaluate, "_CHUNK", 4)           # 8 chunks over 2 processes
    monkeypatch.setattr(evaluate, "_PARALLEL_FROM", 1)
    pooled = evaluate.read_result_folder(folder, workers=2)
    assert serial.readers == 1 and pooled.readers == 2
    assert pooled.keys == serial.keys and (pooled.top5 == serial.top5).all()
    m = evaluate.score(pooled, labels, expected=labels)
    assert [m[f"top{k}"] for k in range(1, 6)] == [30.0, 40.0, 50.0, 60.0, 70.0]
    # an error inside a worker reaches the caller with the file named
    (folder / "ILSVRC2012_val_00000029_0.txt").write_text("0.5 oops 0.1\n")
    (folder / "ILSVRC2012_val_00000030_0.txt").write_text("0.5 later 0.1\n")
    for _ in range(3):   # always the first bad file in folder order, whichever process is first
        with pytest.raises(evaluate.EvaluationError, match=r"val_00000029_0.txt: 'oops' is not"):
            evaluate.read_result_folder(folder, workers=2)


def test_a_pool_that_cannot_start_falls_back_to_reading_here(tmp_path, monkeypatch):
    folder, labels = build(tmp_path, [0, 1, 2, 3])
    monkeypatch.setattr(evaluate, "_PARALLEL_FROM", 1)
    monkeypatch.setattr(evaluate, "_CHUNK", 1)
    from concurrent.futures.process import BrokenProcessPool

    class Broken:
        def __init__(self, *a, **k):
            raise BrokenProcessPool("a worker died while starting")
    import concurrent.futures
    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", Broken)
    pred = evaluate.read_result_folder(folder, workers=2)
    assert pred.readers == 1 and len(pred.keys) == 4
    assert any("read them in this process" in n for n in pred.notes)


def test_mixed_class_counts_across_chunks(tmp_path, monkeypatch):
    folder, _ = build(tmp_path, [0, 1, 2, 3])
    write_txt(folder, "ILSVRC2012_val_00000009", scores_with_rank(3, 0, 1001))
    monkeypatch.setattr(evaluate, "_CHUNK", 2)
    with pytest.raises(evaluate.EvaluationError, match="different lengths"):
        evaluate.read_result_folder(folder)


@pytest.mark.parametrize("workers", [1, 2])
def test_non_finite_outputs_stop_naming_images_and_backend(tmp_path, workers, monkeypatch):
    """A NaN classifier made every prediction class 0 and Acc@1 10 % was shown; now the
    outputs are refused as non-finite, naming the images and the backend."""
    monkeypatch.setattr(evaluate, "_PARALLEL_FROM", 1)
    monkeypatch.setattr(evaluate, "_CHUNK", 2)
    folder = tmp_path / "results" / "onnxruntime" / "result_bs1"
    for i in range(6):
        v = scores_with_rank(i, 0)
        if i == 1:
            v[:] = np.nan                              # a NaN classifier
        if i == 4:
            v[3] = np.inf                              # fp16 overflow
        write_txt(folder, f"img{i}", v)
    with pytest.raises(evaluate.EvaluationError) as e:
        evaluate.read_result_folder(folder, workers=workers)
    msg = str(e.value)
    assert msg.startswith(f"{folder}: the outputs of onnxruntime are non-finite: 2 of 6 image(s)")
    assert "e.g. img1_0.txt, img4_0.txt" in msg and "nothing was scored" in msg


def test_parity_counts_nan_as_disagreement(tmp_path):
    """Two backends both all-NaN agreed "100 %" next to a max difference of nan."""
    a, b = tmp_path / "a", tmp_path / "b"
    for i in range(4):
        v = scores_with_rank(i, 0)
        write_txt(a, f"img{i}", v)
        write_txt(b, f"img{i}", v + 0.25)
    pa, pb = evaluate.read_result_folder(a), evaluate.read_result_folder(b)
    write_txt(a, "img3", np.full(1000, np.nan))        # img3 turns NaN after it was read
    write_txt(b, "img3", np.full(1000, np.nan))
    p = evaluate.parity(pa, pb)
    assert p["top1_agreement_pct"] == 75.0 and p["non_finite_images"] == 1
    assert p["max_abs_logit_diff"] == pytest.approx(0.25, abs=1e-6)


def _hits(n: int, hits: int):
    """``n`` images of which the first ``hits`` have class 1 first (their label)."""
    keys = [f"img{i:04d}" for i in range(n)]
    top = np.tile(np.arange(1, 6, dtype=np.int32), (n, 1))
    labels = {k: (1 if i < hits else 999) for i, k in enumerate(keys)}
    return evaluate.Predictions(keys, top, 1000, paths={k: k for k in keys}), labels


def test_percentages_use_the_recipes_arithmetic(monkeypatch):
    """Upstream scores round(hits / n * 100, 2): 23 of 160 is 14.37 there, 14.38 with
    100 * hits / n (the two differ for 31 image counts in 1..5000)."""
    pred, labels = _hits(160, 23)
    m = evaluate.score(pred, labels)
    assert round(m["top1"], 2) == 14.37 and f"{m['top1']:.2f}" == "14.37"
    assert m["top1"] == 23 / 160 * 100
    assert evaluate.result_json(m)["value"][2]["value"] == "14.37%"
    other = evaluate.Predictions(pred.keys, np.where(np.arange(160)[:, None] < 23, pred.top5,
                                                     pred.top5 + 1), 1000, paths=pred.paths)
    monkeypatch.setattr(evaluate, "read_prediction", lambda p: np.zeros(1000, np.float32))
    assert evaluate.parity(pred, other)["top1_agreement_pct"] == 23 / 160 * 100


def test_result_file_rounds_as_numpy_does_like_upstream():
    """Upstream rounds a numpy float64 (``np.cumsum(count_hit) / count``): numpy's round,
    not Python's. 1 of 4,000 images is 0.025 %: "0.02%" upstream, Python's round says 0.03."""
    pred, labels = _hits(4000, 1)
    m = evaluate.score(pred, labels)
    upstream = np.cumsum(np.array([1.0, 0, 0, 0, 0])) / 4000
    want = str(round(upstream[0] * 100, 2)) + "%"
    assert want == "0.02%" and str(round(m["top1"], 2)) == "0.03"    # the two differ here
    assert evaluate.result_json(m)["value"][2]["value"] == want
    assert [evaluate.rounded(x) for x in (30.0, 58.1949, 100.0)] == ["30.0", "58.19", "100.0"]
