"""Stages on real data: the demo must reproduce 65.00 % / 87.00 % on ONNX Runtime."""
import json

import pytest

from zoorepro import config, pipeline, references

from conftest import small_params


def test_demo_reproduces_independent_figures_on_onnxruntime(tmp_path):
    cfg = config.from_mapping(small_params(tmp_path, max_images=0, batch_sizes=[1],
                                           bench_iterations=1, accuracy_batch_size=8, workers=2))
    cfg, run = pipeline.open_run(cfg)
    acc = pipeline.run_evaluate(cfg, run)        # runs preprocess, export, infer on the way
    m = acc["onnxruntime"]
    assert m["images"] == references.DEMO_EXPECTED["images"] == 100
    assert m["top1"] == pytest.approx(65.0, abs=1e-9) and m["top5"] == pytest.approx(87.0, abs=1e-9)
    top = json.loads((run.root / "result.json").read_text())
    assert top["value"][2] == {"key": "Top1 accuracy", "value": "65.0%"}
    assert top["value"][6] == {"key": "Top5 accuracy", "value": "87.0%"}
    summary = json.loads((run.results / "onnxruntime" / "result_bs8_summary.json").read_text())
    assert summary["padding"] == 4 and summary["images"] == 100
    assert len(list((run.results / "onnxruntime" / "result_bs8").glob("*_0.txt"))) == 100
    exp = run.read("export")
    assert exp["parity"]["top1_agreement"] == 1.0 and exp["parity"]["max_abs_diff_aipp"] < 1e-3
    assert pipeline.run_atc(cfg, run)["status"] == "not run"


def test_each_run_gets_its_own_folder(tmp_path):
    cfg = config.from_mapping(small_params(tmp_path))
    roots = {pipeline.open_run(cfg)[1].root for _ in range(3)}
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
    cfg, run = pipeline.open_run(cfg)
    with pytest.raises(Exception) as e:
        pipeline.run_preprocess(cfg, run)
    msg = str(e.value)
    assert "stopped before inference" in msg and "allow_label_mismatch" in msg
    assert "1 of 4 image(s)" in msg and "no label" in msg and "e.g. stray.JPEG" in msg
    assert "97 label(s)" in msg and "n01641577_bullfrog" in msg
    assert not run.has("dataset")


def test_label_mismatch_allowed_evaluates_intersection(tmp_path, demo_images):
    src = three_images_and_a_stray(tmp_path, demo_images)
    cfg = config.from_mapping(small_params(tmp_path, data_dir=str(src), max_images=0,
                                           allow_label_mismatch=True, batch_sizes=[1]))
    cfg, run = pipeline.open_run(cfg)
    pipeline.run_preprocess(cfg, run)
    d = run.read("dataset")
    assert d["images"] == 3 and d["unlabelled_images"] == 1 and d["labels_without_image"] == 97
    assert pipeline.run_evaluate(cfg, run)["onnxruntime"]["images"] == 3
    from zoorepro import report
    banner = report.verdict(report.load(run.root))
    assert "Images and labels differ" in banner and "stray.JPEG" in banner


def test_unwritable_output_root_fails_up_front(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cfg = config.from_mapping(small_params(tmp_path, output_root=str(blocker / "reports")))
    with pytest.raises(Exception, match="cannot create or write the run folder.*set output_root"):
        pipeline.open_run(cfg)


def test_disk_space_checked_before_work(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple
    cfg, run = pipeline.open_run(config.from_mapping(small_params(tmp_path)))
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: Usage(10**9, 10**9, 1000))
    with pytest.raises(Exception, match=r"GiB free, the run needs .* \.bin file.* set bin_dir"):
        pipeline.run_preprocess(cfg, run)
    assert not list((run.root / "bin").glob("*.bin"))


def test_shared_bin_dir_scores_only_this_runs_images(tmp_path):
    """A bin_dir shared with a larger earlier run: inference and accuracy cover this run only."""
    shared = tmp_path / "bins"
    big = config.from_mapping(small_params(tmp_path, bin_dir=str(shared), max_images=6, batch_sizes=[1]))
    big, run_big = pipeline.open_run(big)
    pipeline.run_preprocess(big, run_big)
    small = config.from_mapping(small_params(tmp_path, bin_dir=str(shared), max_images=3, batch_sizes=[1]))
    small, run = pipeline.open_run(small)
    acc = pipeline.run_evaluate(small, run)
    assert acc["onnxruntime"]["images"] == 3
    assert run.read("preprocess")["reused"] == 3
    assert run.read("infer")["onnxruntime"]["other_inputs"] == 3
    assert len(list((run.results / "onnxruntime" / "result_bs1").iterdir())) == 3


def test_disk_space_credits_finished_bins_and_counts_outputs(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple
    from zoorepro import preprocess
    imgs = [tmp_path / f"img{i}.JPEG" for i in range(10)]
    bins = tmp_path / "bins"
    bins.mkdir()
    for p in imgs[:6]:   # six finished .bin files, one truncated
        (bins / f"{p.stem}.bin").write_bytes(b"\0" * preprocess.BIN_BYTES)
    (bins / "img6.bin").write_bytes(b"\0" * 10)
    Usage = namedtuple("Usage", "total used free")
    need_bins = 4 * preprocess.BIN_BYTES
    need_txt = 2 * 10 * pipeline.OUTPUT_BYTES["TXT"]
    monkeypatch.setattr(shutil, "disk_usage", lambda p: Usage(0, 0, int((need_bins + need_txt) * 1.06)))
    pipeline.check_free_space(bins, imgs, tmp_path / "results", 2, "TXT")     # just enough
    monkeypatch.setattr(shutil, "disk_usage", lambda p: Usage(0, 0, int(need_bins * 1.06)))
    pipeline.check_free_space(bins, imgs)                                     # bins only: fits
    with pytest.raises(Exception, match=r"4 .bin file\(s\) x 150528 bytes \(6 already there\) \+ "
                                        r"2 backend\(s\) x 10 TXT output\(s\)"):
        pipeline.check_free_space(bins, imgs, tmp_path / "results", 2, "TXT")
