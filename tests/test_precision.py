"""run/precision.py: the run's int8 model (built once, kept while its calibration hash holds)
and the precision ladder on a small run: row b is the run's own result, exactly; every other
row is measured and compared with it; ``precision: int8`` runs the int8 model end to end."""
from __future__ import annotations

import shutil

import pytest

from conftest import DEMO_IMAGES, small_params
from zoorepro import config
from zoorepro.run import precision, records, stages
from zoorepro.run.folder import Run


def new_run(tmp_path, **extra) -> Run:
    return Run.create(config.from_mapping(small_params(tmp_path, **extra)))


def test_calibration_is_named_and_evenly_spaced_over_the_runs_images(tmp_path):
    run = new_run(tmp_path, calibration_images=3)
    files = stages.run_inputs(run)
    inputs, said, scored, keys = precision.calibration_inputs(run, files)
    assert [f.name for f in inputs] == [f"{k}.bin" for k in keys] and len(keys) == 3
    assert keys[0] == files[0].stem and scored == 3
    assert said == ("3 of the run's 8 images, evenly spaced in name order; they are also "
                    "scored (no calibration_dir was given)")


def test_a_calibration_dir_is_preprocessed_into_the_run_and_its_overlap_counted(tmp_path):
    cal = tmp_path / "cal"
    cal.mkdir()
    demo = sorted(DEMO_IMAGES.iterdir())
    for p in (demo[0], demo[50], demo[60]):      # one of the run's 8 images, two others
        shutil.copy(p, cal)
    run = new_run(tmp_path, calibration_dir=str(cal), calibration_images=10)
    inputs, said, scored, keys = precision.calibration_inputs(run, stages.run_inputs(run))
    assert len(inputs) == 3 and all(p.is_file() and p.parent == run.root / "calibration"
                                    for p in inputs)
    assert scored == 1 and said.startswith(f"3 images of {cal}, evenly spaced")
    assert said.endswith("1 of them share a name with a scored image")


def test_ladder_false_writes_a_record_that_says_so(tmp_path):
    run = new_run(tmp_path, ladder=False)
    rec = stages.ensure_record(run, "ladder")
    assert rec.status == "not run" and rec.reason == "ladder: false in the params"
    assert not (run.root / precision.LADDER_CSV).exists()


@pytest.fixture(scope="module")
def laddered(tmp_path_factory):
    """A small run taken through the ladder stage (8 images, onnxruntime)."""
    tmp = tmp_path_factory.mktemp("ladder")
    run = Run.create(config.from_mapping(small_params(tmp, calibration_images=4,
                                                      bench_min_seconds=0.05)))
    stages.ensure(run, "ladder")
    return run


def test_row_b_is_the_runs_accuracy_result_exactly(laddered):
    rec = laddered.read(records.LadderRecord)
    acc = laddered.read(records.AccuracyRecord).entries["onnxruntime"]
    b = rec.row("b")
    assert b.status == "ok" and b.images == acc.images == 8
    assert [getattr(b, f"top{k}") for k in range(1, 6)] == \
        [getattr(acc, f"top{k}") for k in range(1, 6)]
    assert b.agreement_pct == 100.0 and b.changed == 0 and b.max_abs_logit_delta == 0.0
    assert b.source.endswith("results/onnxruntime/result_bs1") and b.throughput > 0


def test_every_row_is_measured_and_compared_with_row_b(laddered):
    rec = laddered.read(records.LadderRecord)
    assert [r.step for r in rec.rows] == ["a", "b", "c", "d", "e", "f"]
    f = rec.row("f")        # no NPU here: said, with how to add it
    assert f.status == "not run" and "--ladder-from" in f.reason
    for r in rec.rows[:-1]:
        assert r.status == "ok", (r.step, r.reason)
        assert r.compared == 8 and r.changed == round(8 * (100 - r.agreement_pct) / 100)
        assert r.fixed + r.broken <= r.changed
    assert rec.row("c").max_abs_logit_delta < rec.row("e").max_abs_logit_delta
    lines = (laddered.root / rec.csv).read_text().splitlines()
    assert len(lines) == 9                          # a header and one line per image
    assert rec.accuracy_seconds and rec.batch_size == 8


def test_the_int8_model_is_built_once_and_kept_while_its_hash_holds(laddered):
    q = laddered.read(records.QuantizeRecord)
    assert q.calibration_images == 4 and q.calibration_scored == 4
    assert "4 of the run's 8 images" in q.calibration_set
    before = (q.model, q.model_sha256)
    again = stages.int8_model(laddered)
    assert (again.model, again.model_sha256) == before


def test_precision_int8_runs_the_int8_model_and_the_ladder_computes_row_b(tmp_path):
    run = new_run(tmp_path, precision="int8", calibration_images=4, bench_min_seconds=0.05)
    stages.ensure(run, "ladder")
    entry = run.read(records.InferRecord).entries["onnxruntime"]
    assert entry.status == "ok" and entry.precision == "int8"
    assert {r.precision for r in run.read(records.BenchRecord).records} == {"int8"}
    rec = run.read(records.LadderRecord)
    b = rec.row("b")
    assert b.status == "ok" and "computed here" in b.how and b.source is None
    e = rec.row("e")   # the same int8 model as the run's accuracy result: the same top-k
    acc = run.read(records.AccuracyRecord).entries["onnxruntime"]
    assert (e.top1, e.top5) == (acc.top1, acc.top5)


def test_row_b_from_another_engine_says_how_far_rows_c_to_e_s_engine_is(tmp_path):
    run = new_run(tmp_path, backends=["torch"], calibration_images=4, bench_min_seconds=0.05)
    rec = stages.ensure_record(run, "ladder")
    assert rec.row("b").engine.startswith("torch ") and rec.row("b").source.endswith(
        "results/torch/result_bs1")
    note = next(n for n in rec.notes if n.startswith("row b is torch's result"))
    assert "rows c-e run ONNX Runtime on the CPU" in note and "of 8 images" in note


def test_a_result_changed_after_scoring_stops_the_ladder(tmp_path):
    from zoorepro.errors import ZooreproError
    run = new_run(tmp_path)
    stages.ensure(run, "evaluate")
    folder = run.results / "onnxruntime" / "result_bs1"
    first = sorted(folder.glob("*_0.txt"))[0]
    values = first.read_text().split()
    best = max(range(len(values)), key=lambda i: float(values[i]))
    values[(best + 1) % len(values)] = "1000.0"          # another class wins this image
    first.write_text(" ".join(values) + "\n")
    with pytest.raises(ZooreproError, match="differs from the accuracy record's onnxruntime"):
        stages.ensure(run, "ladder")
    assert not run.has(records.LadderRecord)


def test_the_int8_model_of_an_int8_run_is_never_swapped_under_its_results(tmp_path):
    from zoorepro.errors import ZooreproError
    run = new_run(tmp_path, precision="int8", calibration_images=4)
    stages.ensure(run, "infer")
    q = run.read(records.QuantizeRecord)
    with open(q.model, "ab") as fh:                      # the model file changes
        fh.write(b"\0")
    with pytest.raises(ZooreproError, match="this run's int8 results came from"):
        stages.int8_model(run)
    assert run.read(records.QuantizeRecord) == q
