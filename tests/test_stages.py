"""Stages on real data: the demo must reproduce 65.00 % / 87.00 % on ONNX Runtime."""
import json

import pytest

from zoorepro import config
from zoorepro.run import records, stages
from zoorepro import recipebook
from zoorepro.run.folder import Run

from conftest import small_params


def test_demo_reproduces_independent_figures_on_onnxruntime(tmp_path):
    cfg = config.from_mapping(small_params(tmp_path, max_images=0, batch_sizes=[1],
                                           bench_iterations=1, accuracy_batch_size=8, workers=2))
    run = Run.create(cfg)
    assert stages.ensure(run, "evaluate") == ["preprocess", "export", "infer", "evaluate"]
    m = run.read(records.AccuracyRecord).entries["onnxruntime"]
    assert m.images == recipebook.load("squeezenet1_1").weights.demo.expected["images"] == 100
    assert m.top1 == pytest.approx(65.0, abs=1e-9) and m.top5 == pytest.approx(87.0, abs=1e-9)
    assert stages.ensure(run, "evaluate") == []                 # done: nothing runs again
    top = json.loads((run.root / "result.json").read_text())
    assert top["value"][2] == {"key": "Top1 accuracy", "value": "65.0%"}
    assert top["value"][6] == {"key": "Top5 accuracy", "value": "87.0%"}
    summary = json.loads((run.results / "onnxruntime" / "result_bs8_summary.json").read_text())
    assert summary["padding"] == 4 and summary["images"] == 100
    assert len(list((run.results / "onnxruntime" / "result_bs8").glob("*_0.txt"))) == 100
    exp = run.read(records.ExportRecord)
    assert exp.parity["top1_agreement"] == 1.0 and exp.parity["max_abs_diff_aipp"] < 1e-3
    assert stages.run_atc(run).status == "not run"


def test_each_run_gets_its_own_folder(tmp_path):
    cfg = config.from_mapping(small_params(tmp_path))
    roots = {Run.create(cfg).root for _ in range(3)}
    assert len(roots) == 3 and all(r.parent == tmp_path / "reports" for r in roots)


def three_images_and_a_stray(tmp_path, demo_images):
    """Three labelled demo images plus ``stray.JPEG``, which has no label."""
    src = tmp_path / "imgs"
    src.mkdir()
    for p in demo_images[:3]:
        (src / p.name).write_bytes(p.read_bytes())
    (src / "stray.JPEG").write_bytes(demo_images[0].read_bytes())
    return src


def test_unlabelled_image_stops_before_inference(tmp_path, demo_images):
    src = three_images_and_a_stray(tmp_path, demo_images)
    cfg = config.from_mapping(small_params(tmp_path, data_dir=str(src), max_images=0))
    run = Run.create(cfg)
    with pytest.raises(Exception) as e:
        stages.run_preprocess(run)
    msg = str(e.value)
    assert "stopped before inference" in msg and "allow_label_mismatch" in msg
    assert "1 of 4 image(s)" in msg and "no label" in msg and "e.g. stray.JPEG" in msg
    assert "97 label(s)" in msg and "n01641577_bullfrog" in msg
    assert not run.has(records.DatasetRecord)


def test_label_mismatch_allowed_evaluates_intersection(tmp_path, demo_images):
    src = three_images_and_a_stray(tmp_path, demo_images)
    cfg = config.from_mapping(small_params(tmp_path, data_dir=str(src), max_images=0,
                                           allow_label_mismatch=True, batch_sizes=[1]))
    run = Run.create(cfg)
    stages.run_preprocess(run)
    d = run.read(records.DatasetRecord)
    assert d.images == 3 and d.unlabelled_images == 1 and d.labels_without_image == 97
    assert stages.run_evaluate(run).entries["onnxruntime"].images == 3
    from zoorepro import report
    banner = report.verdict(report.load(run.root))
    assert "Images and labels differ" in banner and "stray.JPEG" in banner


def test_unwritable_output_root_fails_up_front(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cfg = config.from_mapping(small_params(tmp_path, output_root=str(blocker / "reports")))
    with pytest.raises(Exception, match="cannot create or write the run folder.*set output_root"):
        Run.create(cfg)


def test_disk_space_checked_before_work(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple
    run = Run.create(config.from_mapping(small_params(tmp_path)))
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: Usage(10**9, 10**9, 1000))
    with pytest.raises(Exception, match=r"GiB free, the run needs .* \.bin file.* set bin_dir"):
        stages.run_preprocess(run)
    assert not list((run.root / "bin").glob("*.bin"))


def test_shared_bin_dir_scores_only_this_runs_images(tmp_path):
    """A bin_dir shared with a larger earlier run: inference and accuracy cover this run only."""
    shared = tmp_path / "bins"
    big = config.from_mapping(small_params(tmp_path, bin_dir=str(shared), max_images=6,
                                           batch_sizes=[1]))
    run_big = Run.create(big)
    stages.run_preprocess(run_big)
    small = config.from_mapping(small_params(tmp_path, bin_dir=str(shared), max_images=3,
                                             batch_sizes=[1]))
    run = Run.create(small)
    acc = stages.run_evaluate(run)
    assert acc.entries["onnxruntime"].images == 3
    assert run.read(records.PreprocessRecord).reused == 3
    assert run.read(records.InferRecord).entries["onnxruntime"].other_inputs == 3
    assert len(list((run.results / "onnxruntime" / "result_bs1").iterdir())) == 3


def test_a_failing_close_never_hides_the_error_and_every_backend_closes(tmp_path, monkeypatch):
    from zoorepro import errors

    class Fake:
        def __init__(self, name, fail_close):
            self.name, self.fail_close, self.closed = name, fail_close, False

        def close(self):
            self.closed = True
            if self.fail_close:
                raise errors.AisBenchError("teardown failed")

    made = {"ais_bench": Fake("ais_bench", True), "onnxruntime": Fake("onnxruntime", False)}
    run = Run.create(config.from_mapping(small_params(tmp_path)))
    monkeypatch.setattr(stages, "ensure", lambda *a: [])
    monkeypatch.setattr(stages, "create_backends", lambda r: (made, {}))

    def boom(*a):
        raise RuntimeError("the sweep itself failed")
    monkeypatch.setattr(stages, "sweep_backends", boom)
    with pytest.raises(RuntimeError, match="the sweep itself failed"):
        stages.run_bench(run)
    assert all(b.closed for b in made.values())
    monkeypatch.setattr(stages, "sweep_backends", lambda *a: [])
    with pytest.raises(errors.AisBenchError, match="finished, but releasing.*teardown failed"):
        stages.run_bench(run)


def test_each_stage_writes_its_done_marker_last(tmp_path, monkeypatch):
    """Interrupted after the marker but before a later file, --resume would finish a run
    that lacks it: a failing later write leaves the marker absent (export: atc.json;
    evaluate: accuracy.csv, parity.json)."""
    from zoorepro import errors
    run = Run.create(config.from_mapping(small_params(tmp_path, max_images=4,
                                                      batch_sizes=[1], bench_iterations=1)))
    stages.ensure(run, "preprocess")

    def fail(*a, **k):
        raise errors.WriteError("injected: disk full")
    with monkeypatch.context() as m:
        m.setattr(stages, "run_atc", fail)
        with pytest.raises(errors.WriteError):
            stages.ensure(run, "export")
    assert not run.has(records.ExportRecord)
    stages.ensure(run, "infer")
    assert run.has(records.AtcRecord) and run.has(records.InferRecord)
    real_text, real_write = stages.atomic_write_text, Run.write
    with monkeypatch.context() as m:
        m.setattr(stages, "atomic_write_text", lambda p, t: fail() if str(p).endswith(
            "accuracy.csv") else real_text(p, t))
        with pytest.raises(errors.WriteError):
            stages.ensure(run, "evaluate")
    assert not run.has(records.AccuracyRecord)
    with monkeypatch.context() as m:
        m.setattr(Run, "write", lambda self, r: fail() if isinstance(r, records.ParityRecord)
                  else real_write(self, r))
        with pytest.raises(errors.WriteError):
            stages.ensure(run, "evaluate")
    assert not run.has(records.AccuracyRecord)
    assert stages.ensure(run, "evaluate") == ["evaluate"]
    assert (run / "accuracy.csv").is_file() and run.has(records.ParityRecord)


def test_float16_weights_leave_a_note_in_the_export_record_and_the_report(tmp_path):
    import torch

    from conftest import DEMO_WEIGHTS
    from zoorepro.report import core as report_core, sections as report_sections
    half = tmp_path / "half.pth"
    sd = torch.load(DEMO_WEIGHTS, weights_only=True)
    torch.save({k: v.half() for k, v in sd.items()}, half)
    cfg = config.from_mapping(small_params(tmp_path, max_images=2, weights=str(half)))
    run = Run.create(cfg)
    stages.ensure(run, "export")
    notes = run.read(records.ExportRecord).weights_notes
    assert notes and "half.pth" in notes[0] and "torch.float16" in notes[0]
    html = report_sections.warnings_section(report_core.load(run))
    assert "float16-rounded" in html
    full = Run.create(config.from_mapping(small_params(tmp_path, max_images=2, name="f32")))
    stages.ensure(full, "export")
    assert run.read(records.ExportRecord).weights_notes is not None
    assert full.read(records.ExportRecord).weights_notes is None       # float32: no note
