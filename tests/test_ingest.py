"""``zoorepro ingest`` on result folders built from ais_bench's documented formats, each
with a known top-1..top-5; and on the ais_bench-layout output of a real zoorepro run."""
import json
import re
from pathlib import Path

import numpy as np
import pytest

from zoorepro import cli, config, report
from zoorepro.ascend import ingest
from zoorepro.run import records, stages
from zoorepro.run.folder import Run
from zoorepro.recipe.data import DataError
from zoorepro.errors import IngestError

from conftest import small_params
from npu_fixtures import (NPU_SMI_SAMPLE, accuracy_args, perf_args, ranked_scores, summary,
                         write_output, write_summary)

# img_1..img_10 with the rank of the true class: top-k = 40, 50, 60, 70, 80 %.
RANKS = [0, 0, 0, 1, 2, 4, 5, 7, 0, 3]
KNOWN = {"top1": 40.0, "top2": 50.0, "top3": 60.0, "top4": 70.0, "top5": 80.0}
LABELS = {f"img_{i + 1}": (37 * i + 11) % 1000 for i in range(10)}
EXTRA_LABELS = {**LABELS, "img_11": 418, "img_12": 455}      # two labels with no output


def write_labels(path: Path, labels=LABELS) -> Path:
    path.write_text("".join(f"{k}.JPEG {v}\n" for k, v in labels.items()))
    return path


def make_result(tmp_path: Path, fmt="TXT", classes=1000, bs=4, with_summary=True,
                shape=None) -> Path:
    """``result/result_bs<bs>/`` as ais_bench writes it for 10 images at batch ``bs``: the
    last batch is padded (its padding outputs are not saved) + the sibling summary."""
    out = tmp_path / "result"
    folder = out / f"result_bs{bs}"
    offset = 1 if classes == 1001 else 0
    for i, rank in enumerate(RANKS):
        stem = f"img_{i + 1}"
        write_output(folder, stem, ranked_scores(LABELS[stem], rank, classes, offset), fmt, shape)
    if with_summary:
        # ais_bench's filesinfo: one entry per real image (sample id), padding left out
        filesinfo = {str(i): {"infiles": [f"prep_dataset/img_{i + 1}.bin"],
                              "outfiles": [str(folder / f"img_{i + 1}_0.{fmt.lower()}")]}
                     for i in range(10)}
        calls = [0.40, 0.42, 0.41, 0.40, 0.42, 0.41, 0.40, 0.42, 0.41, 0.40][:-(-10 // bs)]
        write_summary(out / f"result_bs{bs}_summary.json",
                      summary(accuracy_args(bs), calls, bs, [0.9], [0.2], filesinfo))
    return folder


def check_known(run_dir: Path, classes=1000):
    m = json.loads((run_dir / "metrics.json").read_text())
    for k, v in KNOWN.items():
        assert m[k] == pytest.approx(v), k
    assert m["images"] == 10 and m["classes"] == classes
    r = json.loads((run_dir / "result.json").read_text())
    assert r["value"][2] == {"key": "Top1 accuracy", "value": "40.0%"}
    assert r["value"][6] == {"key": "Top5 accuracy", "value": "80.0%"}
    return m


@pytest.mark.parametrize("fmt", ["TXT", "NPY", "BIN"])
def test_formats_padding_natural_order_known_topk(tmp_path, fmt):
    folder = make_result(tmp_path, fmt)
    if fmt == "TXT":
        line = (folder / "img_1_0.txt").read_text()
        assert line.endswith(" \n") and line.count("\n") == 1     # trailing space, one row
        assert line.split()[0].count(".") == 1 and len(line.split()[0].split(".")[1]) == 6  # %f
    run = ingest.ingest(folder, write_labels(tmp_path / "val_label.txt"), tmp_path / "reports",
                        npu_smi_text=NPU_SMI_SAMPLE, cann_version="6.0.RC1")
    check_known(run)
    recs = run / "records"
    acc = json.loads((recs / "accuracy.json").read_text())["ais_bench"]
    assert acc["status"] == "ok" and acc["device"] == "npu: Ascend310P3 (CANN 6.0.RC1)"
    assert acc["batch_size"] == 4 and acc["images"] == 10
    infer = json.loads((recs / "infer.json").read_text())["ais_bench"]
    assert infer["status"] == "ok" and infer["accuracy_batch_size"] == 4
    assert infer["compute_throughput"] == pytest.approx(1000 * 4 / 0.41)
    env = json.loads((recs / "environment.json").read_text())
    assert env["npu"] == "Ascend310P3" and env["cann"] == "6.0.RC1"
    assert env["npu_device_id"] == 1 and "0: 310P3 (OK), 1: 310P3 (OK)" == env["npu_chips"]
    preds = json.loads((run / "results" / "ais_bench" / "predictions.json").read_text())
    assert list(preds) == [f"img_{i}" for i in range(1, 11)]          # natural order
    assert (run / "params.yaml").is_file() and not (run / "report.html").exists()


def test_1001_class_outputs_shift_labels(tmp_path):
    folder = make_result(tmp_path, classes=1001)
    run = ingest.ingest(folder, write_labels(tmp_path / "l.txt"), tmp_path / "r")
    m = check_known(run, classes=1001)
    assert m["label_offset"] == 1


def test_output_spread_over_rows_is_joined(tmp_path):
    # an output of shape [1, 1000, 1, 1] is saved as 1000 rows of one value
    folder = make_result(tmp_path, shape=(1, 1000, 1, 1))
    assert (folder / "img_3_0.txt").read_text().count("\n") == 1000
    run = ingest.ingest(folder, write_labels(tmp_path / "l.txt"), tmp_path / "r")
    check_known(run)


def test_appended_txt_is_refused(tmp_path):
    folder = make_result(tmp_path)
    p = folder / "img_5_0.txt"
    p.write_text(p.read_text() + p.read_text())      # older ais_infer: "ab" on rerun
    with pytest.raises(DataError, match="appended") as e:
        ingest.ingest(folder, write_labels(tmp_path / "l.txt"), tmp_path / "r")
    assert "img_5_0.txt" in str(e.value) and "run inference again" in str(e.value)
    assert not (tmp_path / "r").exists()              # no run folder for refused input


def test_appended_multirow_txt_is_refused(tmp_path):
    folder = make_result(tmp_path, shape=(1, 1000, 1, 1))
    p = folder / "img_5_0.txt"
    p.write_text(p.read_text() * 2)
    with pytest.raises(DataError, match="appended"):
        ingest.ingest(folder, write_labels(tmp_path / "l.txt"), tmp_path / "r")


def test_missing_summary_proceeds_without_throughput(tmp_path):
    folder = make_result(tmp_path, with_summary=False)
    run = ingest.ingest(folder, write_labels(tmp_path / "l.txt"), tmp_path / "r")
    check_known(run)
    rec = json.loads((run / "records" / "ingest.json").read_text())
    assert rec["accuracy_summary"] is None and rec["throughput_from_accuracy_run"] == "no"
    assert any("result_bs4_summary.json" in n and "no throughput" in n for n in rec["notes"])
    infer = json.loads((run / "records" / "infer.json").read_text())["ais_bench"]
    assert infer["compute_throughput"] is None and "no throughput" in infer["throughput_note"]
    assert infer["accuracy_batch_size"] == 4                       # from result_bs4
    acc = json.loads((run / "records" / "accuracy.json").read_text())["ais_bench"]
    assert acc["device"] == "npu: Ascend (chip not recorded) (CANN version not recorded)"
    with pytest.raises(DataError, match="summary not found"):
        ingest.ingest(folder, tmp_path / "l.txt", tmp_path / "r",
                      accuracy_summary=tmp_path / "nope.json")


def test_sweep_summaries_become_bench_records(tmp_path):
    folder = make_result(tmp_path)
    perf = tmp_path / "perf"
    times = {1: [0.17, 0.18, 0.175, 0.172], 8: [0.37, 0.38, 0.376, 0.375]}
    paths = [write_summary(perf / f"perf_bs{bs}_summary.json",
                           summary(perf_args(bs), t, bs, [0.05], [0.02]))
             for bs, t in sorted(times.items(), reverse=True)]
    run = ingest.ingest(folder, write_labels(tmp_path / "l.txt"), tmp_path / "r",
                        summaries=paths, npu_smi_text=NPU_SMI_SAMPLE, cann_version="6.0.RC1")
    b = json.loads((run / "records" / "bench.json").read_text())
    assert "device compute only" in b["definition"] and "zero-filled input" in b["definition"]
    assert "H2D/D2H copies excluded" in b["definition"]
    recs = b["records"]
    assert [r["batch_size"] for r in recs] == [1, 8]
    for r in recs:
        t = times[r["batch_size"]]
        assert r["throughput"] == pytest.approx(1000 * r["batch_size"] / np.mean(t))
        assert r["throughput"] == pytest.approx(r["throughput_reported"])
        assert r["iterations"] == 4 and r["mean_ms"] == pytest.approx(np.mean(t))
        assert r["backend"] == "ais_bench" and r["device"] == "npu: Ascend310P3 (CANN 6.0.RC1)"
        assert r["input"].startswith("zero bytes") and r["h2d_mean_ms"] == pytest.approx(0.05)
        assert r["valid"]
    assert (run / "records" / "bench.csv").read_text().count("\n") == 3


def test_bad_summary_is_an_error(tmp_path):
    folder = make_result(tmp_path)
    bad = write_summary(tmp_path / "x_summary.json", {"throughput": 1})
    with pytest.raises(DataError, match="missing NPU_compute_time"):
        ingest.ingest(folder, write_labels(tmp_path / "l.txt"), tmp_path / "r", summaries=[bad])


def test_manifest_keys_require_every_image(tmp_path):
    folder = make_result(tmp_path)
    man = tmp_path / "kit.json"
    man.write_text(json.dumps({"keys": [f"img_{i}" for i in range(1, 12)],
                               "soc_version": "Ascend310B1"}))
    with pytest.raises(DataError, match="1 of 11 image"):
        ingest.ingest(folder, write_labels(tmp_path / "l.txt"), tmp_path / "r", manifest=man)
    export = {"weights_sha256": "f364aa15" + "0" * 56, "opset": 11}
    man.write_text(json.dumps({"keys": [f"img_{i}" for i in range(1, 11)],
                               "soc_version": "Ascend310B1", "export": export}))
    with pytest.raises(DataError, match=r"kit.json \(export\): missing key\(s\) onnx, onnx_sha256"):
        ingest.ingest(folder, tmp_path / "l.txt", tmp_path / "r", manifest=man)
    export.update(onnx="model/squeezenet1_1.onnx", onnx_sha256="ab" * 32, aipp={},
                  aipp_config_sha256="cd" * 32)
    man.write_text(json.dumps({"keys": [f"img_{i}" for i in range(1, 11)],
                               "soc_version": "Ascend310B1", "export": export}))
    run = ingest.ingest(folder, tmp_path / "l.txt", tmp_path / "r", manifest=man)
    acc = json.loads((run / "records" / "accuracy.json").read_text())["ais_bench"]
    assert acc["device"].startswith("npu: Ascend310B1 ")
    assert acc["weights_sha256"].startswith("f364aa15")


@pytest.mark.e2e
def test_cli_ingest_renders_report_and_prints_run_folder_last(tmp_path, capsys):
    folder = make_result(tmp_path)
    smi = tmp_path / "npu-smi.txt"
    smi.write_text(NPU_SMI_SAMPLE)
    perf = write_summary(tmp_path / "perf" / "perf_bs8_summary.json",
                         summary(perf_args(8), [0.37, 0.38], 8))
    rc = cli.main(["ingest", str(folder), "--labels", str(write_labels(tmp_path / "l.txt")),
                   "--summary", str(perf), "--npu-smi", str(smi), "--cann-version", "6.0.RC1",
                   "--out", str(tmp_path / "reports")])
    out = capsys.readouterr().out.strip().splitlines()
    assert rc == 0
    run = Path(out[-1])
    assert run.parent == tmp_path / "reports" and run.name.startswith("npu-")
    html = (run / "report.html").read_text()
    assert "npu: Ascend310P3 (CANN 6.0.RC1)" in html
    assert "40.00" in html and "80.00" in html
    assert "not run here" not in html                 # the NPU path did run (on the NPU host)
    assert not (run / "records" / "failure.json").exists()


def test_cli_ingest_error_is_clear(tmp_path, capsys):
    rc = cli.main(["ingest", str(tmp_path / "missing"), "--labels",
                   str(write_labels(tmp_path / "l.txt")), "--no-report"])
    assert rc == 2 and "result folder not found" in capsys.readouterr().err


# ------------------------------------------- against a real zoorepro run (portable backend)
@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, onnx_models):
    """Pipeline stages on 8 demo images, onnxruntime at bs 1; ais_bench listed too (absent)."""
    tmp = tmp_path_factory.mktemp("demo_run")
    cfg = config.from_mapping(small_params(tmp, backends=["onnxruntime", "ais_bench"],
                                           batch_sizes=[1], bench_iterations=1,
                                           onnx_model=str(onnx_models[0])))
    run = Run.create(cfg)
    stages.run_preprocess(run, progress=False)
    stages.run_export(run)
    stages.run_atc(run)
    stages.run_infer(run, progress=False)
    stages.run_evaluate(run)
    return run.config, run


def test_ingest_reads_a_zoorepro_run_folder_as_the_run_scored_it(demo_run):
    """The reader ingest uses gives a local run's top-k (ingest itself refuses the folder:
    its figures are the CPU's, see the next test)."""
    from zoorepro.recipe import data, evaluate
    cfg, run = demo_run
    acc = run.read(records.AccuracyRecord).entries["onnxruntime"]
    assert acc.status == "ok" and acc.images == 8
    pred, _ = ingest.read_predictions(run.results / "onnxruntime" / "result_bs1")
    m = evaluate.score(pred, data.read_labels(cfg.label_file))
    for k in ("top1", "top2", "top3", "top4", "top5", "images", "classes"):
        assert m[k] == getattr(acc, k), k


def test_a_zoorepro_cpu_results_folder_is_not_ingested_as_npu_results(demo_run, tmp_path):
    """It was recorded as 'produced on Ascend NPU host' with the CPU's img/s as NPU
    throughput (its summary says backend: onnxruntime)."""
    import shutil
    cfg, run = demo_run
    folder = run.results / "onnxruntime" / "result_bs1"
    with pytest.raises(IngestError, match=r"inside a zoorepro run folder .* zoorepro's "
                                          r"onnxruntime backend .* not of ais_bench on an NPU"):
        ingest.ingest(folder, cfg.label_file, tmp_path / "r")
    assert not (tmp_path / "r").exists()
    # copied out of the run folder with its summary: the summary says who wrote it
    loose = tmp_path / "loose" / "result_bs1"
    shutil.copytree(folder, loose)
    shutil.copy(folder.parent / "result_bs1_summary.json", loose.parent)
    with pytest.raises(IngestError, match=r"written by zoorepro's onnxruntime backend, not by "
                                          r"ais_bench on an NPU") as e:
        ingest.ingest(loose, cfg.label_file, tmp_path / "r")
    assert "result_bs1_summary.json" in str(e.value)
    # without its summary the folder still says where it lies: a zoorepro run folder
    alone = tmp_path / "copy" / "results" / "onnxruntime" / "result_bs1"
    shutil.copytree(folder, alone)
    (tmp_path / "copy" / "records").mkdir()
    with pytest.raises(IngestError, match="inside a zoorepro run folder"):
        ingest.ingest(alone, cfg.label_file, tmp_path / "r")


def test_without_atc_or_ais_bench_the_report_says_the_npu_path_did_not_run(demo_run):
    from zoorepro.ascend import atc
    from zoorepro.backends import ascend
    if atc.available() or ascend.available():
        pytest.skip("atc or ais_bench is installed here")
    cfg, run = demo_run
    infer = run.read(records.InferRecord).entries
    assert infer["ais_bench"].status == "not run"
    assert "ais_bench is not installed" in infer["ais_bench"].reason
    assert run.read(records.AtcRecord).status == "not run"
    data = report.load(run.root)
    text = report.npu_section(data)
    assert "Ascend NPU (ATC + ais_bench): not run here." in text
    assert "ais_bench is not installed" in text and "atc is not on PATH" in text
    assert "No figure in this report comes from an NPU" in text
    rows = report.throughput_rows(data)
    assert rows and all(r[0] != "ais_bench" and not str(r[1]).startswith("npu") for r in rows)
    acc_html = report.accuracy_table(data)
    assert "zoorepro ais_bench" in acc_html and "not run" in acc_html


PIP_SHOW = """Name: ais_bench
Version: 0.0.2
Summary: ais_bench tool
Requires:
---
Name: aclruntime
Version: 0.0.2
Location: /usr/local/lib/python3.9/site-packages
WARNING: Package(s) not found: nothing
"""


def test_kit_tool_versions_reach_the_records(tmp_path):
    assert ingest.parse_pip_show(PIP_SHOW) == "ais_bench 0.0.2, aclruntime 0.0.2"
    assert ingest.parse_pip_show("WARNING: Package(s) not found: ais_bench\n") == ""
    folder = make_result(tmp_path)
    (tmp_path / ingest.TOOL_VERSIONS).write_text(PIP_SHOW)   # the kit's OUT folder
    run = ingest.ingest(folder, write_labels(tmp_path / "l.txt"), tmp_path / "r",
                        npu_smi_text=NPU_SMI_SAMPLE, cann_version="6.0.RC1")
    infer = json.loads((run / "records" / "infer.json").read_text())["ais_bench"]
    assert infer["version"] == "ais_bench 0.0.2, aclruntime 0.0.2 (on the NPU host)"
    (tmp_path / ingest.TOOL_VERSIONS).unlink()
    run = ingest.ingest(folder, write_labels(tmp_path / "l.txt"), tmp_path / "r",
                        npu_smi_text=NPU_SMI_SAMPLE, cann_version="6.0.RC1")
    infer = json.loads((run / "records" / "infer.json").read_text())["ais_bench"]
    assert infer["version"] == "ais_bench (on the NPU host)"


# ------------------------------------------------------------ damaged or odd inputs
@pytest.mark.parametrize("text,needle", [
    ('["a", "b"]', "holds a JSON list, not the object 'zoorepro kit' writes"),
    ('{"keys": "img_1"}', "keys is 'img_1', not a list of strings"),
    ('{"soc_version": 310}', "soc_version is '310', not str"),
    ('{"params": {"reference_tolerance_pct": "1"}}',
     "reference_tolerance_pct is '1', not a number"),
    ('{"params": {"reference_tolerance_pct": 100}}',
     "reference_tolerance_pct is 100, outside 0 to 5 points"),
], ids=["list", "keys", "soc", "tolerance", "tolerance-bound"])
def test_a_manifest_of_the_wrong_shape_is_a_clear_error(tmp_path, text, needle):
    folder = make_result(tmp_path)
    man = tmp_path / "kit.json"
    man.write_text(text)
    with pytest.raises(IngestError, match=re.escape(needle)) as e:
        ingest.ingest(folder, write_labels(tmp_path / "val_label.txt"), tmp_path / "reports",
                      manifest=man)
    assert str(man) in str(e.value)
    assert not (tmp_path / "reports").exists() or not list((tmp_path / "reports").iterdir())


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf"])
def test_non_finite_scores_in_txt_are_refused(tmp_path, bad):
    folder = make_result(tmp_path)
    line = (folder / "img_3_0.txt").read_text().split()
    line[10] = bad
    (folder / "img_3_0.txt").write_text(" ".join(line) + " \n")
    with pytest.raises(DataError, match=r"the outputs of ais_bench \(NPU\) are non-finite: 1 "
                                          r"of 10 image\(s\) .* e\.g\. img_3_0\.txt"):
        ingest.ingest(folder, write_labels(tmp_path / "val_label.txt"), tmp_path / "reports")


def test_a_symlink_pointing_outside_the_result_folder_is_noted(tmp_path):
    folder = make_result(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (folder / "img_2_0.txt").rename(elsewhere / "img_2_0.txt")
    (folder / "img_2_0.txt").symlink_to(elsewhere / "img_2_0.txt")
    run = ingest.ingest(folder, write_labels(tmp_path / "val_label.txt"), tmp_path / "reports")
    check_known(run.root)
    notes = run.read(records.IngestRecord).notes
    assert any(n.startswith(f"1 ingested file(s) are symlinks pointing outside the result folder "
                            f"{folder}, e.g. img_2_0.txt -> {elsewhere / 'img_2_0.txt'}")
               for n in notes)
    assert any("symlinks pointing outside" in w
               for w in run.read(records.AccuracyRecord).entries["ais_bench"].warnings)


# ------------------------------------------------- every figure against every other clue
def cut(folder: Path, keep: int) -> None:
    """A half-copied result folder: only the first ``keep`` outputs arrived."""
    for i in range(keep, 10):
        next(folder.glob(f"img_{i + 1}_0.*")).unlink()


def kit_manifest(tmp_path: Path, **fields) -> Path:
    man = tmp_path / "kit.json"
    man.write_text(json.dumps({"keys": None, "images": None, "accuracy_batch_size": 4,
                               "batch_sizes": [1, 4, 8], **fields}))
    return man


@pytest.mark.parametrize("with_summary", [True, False])
def test_a_half_copied_result_folder_is_refused(tmp_path, with_summary):
    """50 of 100 outputs were scored as a complete run, with no word."""
    folder = make_result(tmp_path, with_summary=with_summary)
    cut(folder, 5)
    labels = write_labels(tmp_path / "l.txt")
    for man in (None, kit_manifest(tmp_path)):          # no manifest; a --no-bins kit's
        with pytest.raises(IngestError, match="copy the whole result folder") as e:
            ingest.ingest(folder, labels, tmp_path / "r", manifest=man)
        msg = str(e.value)
        assert "5 output(s)" in msg and ("10 label" in msg or "10 image" in msg)
    assert not (tmp_path / "r").exists()


def test_the_summary_counts_the_images_it_inferred(tmp_path):
    """Labels cut to the outputs that arrived: the summary still knows 10 images ran."""
    folder = make_result(tmp_path)
    cut(folder, 5)
    labels = write_labels(tmp_path / "l.txt", {k: LABELS[k] for k in list(LABELS)[:5]})
    with pytest.raises(IngestError, match=r"3 inference\(s\) at batch size 4 \(9\.\.12 "
                                          r"images\).*5 output\(s\)"):
        ingest.ingest(folder, labels, tmp_path / "r")
    s = json.loads((folder.parent / "result_bs4_summary.json").read_text())
    s["npu_compute_time_list"] = s["npu_compute_time_list"][:1]   # 1 call: 1..4 images
    s["NPU_compute_time"]["count"] = 1
    s["filesinfo"] = {}                                            # as with --pipeline
    write_summary(folder.parent / "result_bs4_summary.json", s)
    with pytest.raises(IngestError, match=r"1 inference\(s\) at batch size 4 \(1\.\.4 images\)"):
        ingest.ingest(folder, labels, tmp_path / "r")


def test_labels_without_output_need_the_kits_opt_in(tmp_path):
    folder = make_result(tmp_path)
    labels = write_labels(tmp_path / "l.txt", EXTRA_LABELS)
    with pytest.raises(IngestError, match=r"2 of 12 label\(s\) have no output, e.g. img_11, "
                                          r"img_12"):
        ingest.ingest(folder, labels, tmp_path / "r")
    man = kit_manifest(tmp_path, params={"allow_label_mismatch": True})
    run = ingest.ingest(folder, labels, tmp_path / "r", manifest=man)
    check_known(run.root)
    assert any("2 of 12 label(s) have no output" in n
               for n in run.read(records.IngestRecord).notes)


def test_the_kits_image_count_is_checked(tmp_path):
    folder = make_result(tmp_path)
    man = kit_manifest(tmp_path, images=11, keys=[f"img_{i}" for i in range(1, 11)])
    with pytest.raises(IngestError, match="images is 11 but it lists 10 keys"):
        ingest.ingest(folder, write_labels(tmp_path / "l.txt"), tmp_path / "r", manifest=man)


def edit_summary(folder: Path, change) -> Path:
    path = next(folder.parent.glob(f"{folder.name}_summary.json"))
    s = json.loads(path.read_text())
    change(s)
    return write_summary(path, s)


@pytest.mark.parametrize("change,clue", [
    (lambda s: s["args"].__setitem__(2, "--batchsize=64"), "its --batchsize: 64"),
    (lambda s: s.update(throughput=s["throughput"] * 16), "ais_bench's throughput"),
    (lambda s: s["args"].__setitem__(1, "--model=squeezenet1_1_bs8.om"),
     "the OM name squeezenet1_1_bs8.om: 8"),
], ids=["batchsize", "throughput", "om"])
def test_a_batch_size_the_other_clues_deny_is_refused(tmp_path, change, clue):
    """--batchsize 64 in the summary gave 64x the throughput over result_bs1, _bs1.om."""
    folder = make_result(tmp_path)
    edit_summary(folder, change)
    with pytest.raises(IngestError, match="batch size disagrees") as e:
        ingest.ingest(folder, write_labels(tmp_path / "l.txt"), tmp_path / "r")
    assert clue in str(e.value) and "the file name result_bs4_summary.json: 4" in str(e.value)
    assert not (tmp_path / "r").exists()


def test_the_batch_size_agrees_with_folder_manifest_and_calls(tmp_path):
    folder = make_result(tmp_path)
    labels = write_labels(tmp_path / "l.txt")
    man = kit_manifest(tmp_path, accuracy_batch_size=8)
    with pytest.raises(IngestError, match=r"the kit's accuracy_batch_size: 8"):
        ingest.ingest(folder, labels, tmp_path / "r", manifest=man)
    moved = folder.parent / "result_bs1"                 # the folder name says 1
    folder.rename(moved)
    with pytest.raises(IngestError, match=r"the folder name result_bs1: 1"):
        ingest.ingest(moved, labels, tmp_path / "r",
                      accuracy_summary=folder.parent / "result_bs4_summary.json")
    # every clue in the summary says 2, the folder has no bs<N>: 3 calls for 10 images deny it
    stamp = folder.parent / "2023_01_01-10_00_00"
    moved.rename(stamp)
    s = summary(accuracy_args(2), [0.40, 0.42, 0.41], 2)
    write_summary(folder.parent / f"{stamp.name}_summary.json", s)
    with pytest.raises(IngestError, match=r"3 inference\(s\) at batch size 2 \(5\.\.6 images\)"
                                          r".*10 output\(s\)"):
        ingest.ingest(stamp, labels, tmp_path / "r")


def test_without_a_summary_folder_name_and_manifest_must_agree(tmp_path):
    folder = make_result(tmp_path, with_summary=False)
    man = kit_manifest(tmp_path, accuracy_batch_size=8)
    with pytest.raises(IngestError, match=r"folder name result_bs4: 4.*accuracy_batch_size: 8"):
        ingest.ingest(folder, write_labels(tmp_path / "l.txt"), tmp_path / "r", manifest=man)


@pytest.mark.parametrize("change,needle", [
    (lambda s: s.update(backend="onnxruntime"), "zoorepro's onnxruntime backend"),
    (lambda s: s["args"].__setitem__(1, "--model=squeezenet1_1_bs4.onnx"),
     "squeezenet1_1_bs4.onnx is not an .om"),
    (lambda s: s.update(args=[]), "its args name no --model"),
], ids=["backend", "onnx", "no-model"])
def test_results_not_from_ais_bench_on_an_npu_are_refused(tmp_path, change, needle):
    folder = make_result(tmp_path)
    edit_summary(folder, change)
    with pytest.raises(IngestError, match=re.escape(needle)):
        ingest.ingest(folder, write_labels(tmp_path / "l.txt"), tmp_path / "r")


def test_a_sweep_summary_not_from_ais_bench_is_refused(tmp_path):
    folder = make_result(tmp_path)
    s = summary(perf_args(8), [0.37, 0.38], 8)
    s["backend"] = "pytorch"
    p = write_summary(tmp_path / "perf" / "perf_bs8_summary.json", s)
    with pytest.raises(IngestError, match="zoorepro's pytorch backend"):
        ingest.ingest(folder, write_labels(tmp_path / "l.txt"), tmp_path / "r", summaries=[p])


@pytest.mark.parametrize("name", ["../X", "a/b", "", ".hidden", "x" * 101])
def test_a_name_that_is_not_a_folder_name_is_refused_before_anything_is_written(tmp_path, name):
    folder = make_result(tmp_path)
    out = tmp_path / "reports" / "inner"
    with pytest.raises(IngestError, match="--name"):
        ingest.ingest(folder, write_labels(tmp_path / "l.txt"), out, name=name)
    assert not (tmp_path / "reports").exists() and not list(tmp_path.glob("X*"))


def test_npu_smi_and_version_files_are_read_only_if_small_regular_files(tmp_path):
    folder = make_result(tmp_path)
    labels = write_labels(tmp_path / "l.txt")
    big = tmp_path / "big.txt"
    big.write_text("x" * (ingest.MAX_TEXT_BYTES + 1))
    for bad, needle in ((tmp_path, "not a regular file"), (Path("/dev/zero"), "not a regular"),
                        (big, "bytes")):
        with pytest.raises(IngestError, match=needle) as e:
            ingest.ingest(folder, labels, tmp_path / "r", npu_smi_file=bad)
        assert str(bad) in str(e.value) and "npu-smi" in str(e.value)
    with pytest.raises(IngestError, match="npu-smi info text"):
        ingest.ingest(folder, labels, tmp_path / "r", npu_smi_text="x" * (1 << 20))
    smi = tmp_path / "npu-smi.txt"
    smi.write_text(NPU_SMI_SAMPLE)
    run = ingest.ingest(folder, labels, tmp_path / "r", npu_smi_file=smi)
    assert run.read(records.EnvironmentRecord).npu == "Ascend310P3"
    versions = tmp_path / ingest.TOOL_VERSIONS
    for make in (lambda: versions.mkdir(), lambda: versions.symlink_to("/dev/zero"),
                 lambda: versions.write_text("Name: x\n" * 20000)):
        make()
        with pytest.raises(IngestError, match=ingest.TOOL_VERSIONS):
            ingest.ingest(folder, labels, tmp_path / "r")
        versions.rmdir() if versions.is_dir() and not versions.is_symlink() else versions.unlink()


def test_mixed_output_formats_are_refused(tmp_path):
    folder = make_result(tmp_path)
    for i in range(6, 11):
        p = folder / f"img_{i}_0.txt"
        write_output(folder, f"img_{i}", np.loadtxt(p, dtype=np.float32), "NPY")
        p.unlink()
    with pytest.raises(IngestError, match=r"mixes output formats: 5 TXT, 5 NPY"):
        ingest.ingest(folder, write_labels(tmp_path / "l.txt"), tmp_path / "r")


def test_a_summary_given_twice_or_an_accuracy_summary_as_a_sweep_is_refused(tmp_path):
    folder = make_result(tmp_path)
    labels = write_labels(tmp_path / "l.txt")
    p = write_summary(tmp_path / "perf" / "perf_bs8_summary.json",
                      summary(perf_args(8), [0.37, 0.38], 8))
    (tmp_path / "perf" / "again.json").symlink_to(p)
    for twice in ([p, p], [p, tmp_path / "perf" / "again.json"]):
        with pytest.raises(IngestError, match="given twice"):
            ingest.ingest(folder, labels, tmp_path / "r", summaries=twice)
    acc = folder.parent / "result_bs4_summary.json"
    with pytest.raises(IngestError, match="accuracy run's summary, not a pure-inference"):
        ingest.ingest(folder, labels, tmp_path / "r", summaries=[acc])
    other = write_summary(tmp_path / "perf2" / "perf_bs8_summary.json",
                          summary(perf_args(8), [0.30, 0.31], 8))
    with pytest.raises(IngestError, match="two sweep summaries for batch size 8"):
        ingest.ingest(folder, labels, tmp_path / "r", summaries=[p, other])
    with pytest.raises(IngestError, match="batch size 8 is not one the kit ran"):
        ingest.ingest(folder, labels, tmp_path / "r", summaries=[p],
                      manifest=kit_manifest(tmp_path, batch_sizes=[1, 4]))
    with pytest.raises(IngestError, match="pure-inference .* not the accuracy run"):
        ingest.ingest(folder, labels, tmp_path / "r", accuracy_summary=p)


def test_a_symlinked_file_is_never_quoted(tmp_path):
    """A TXT output linked to /etc/passwd had its first line quoted in the error."""
    folder = make_result(tmp_path)
    secret = tmp_path / "elsewhere" / "secret"
    secret.parent.mkdir()
    secret.write_text("SECRET-TOKEN:x:0:0:root:/root:/bin/bash\n")
    (folder / "img_2_0.txt").unlink()
    (folder / "img_2_0.txt").symlink_to(secret)
    with pytest.raises(IngestError, match=r"img_2_0.txt is a symlink to .*secret") as e:
        ingest.ingest(folder, write_labels(tmp_path / "l.txt"), tmp_path / "r")
    assert "SECRET" not in str(e.value).replace(str(secret), "")
    link = tmp_path / "labels-link.txt"
    link.symlink_to(secret)
    (folder / "img_2_0.txt").unlink()
    make_result(tmp_path)
    with pytest.raises(IngestError, match="is a symlink to") as e:
        ingest.ingest(folder, link, tmp_path / "r")
    assert "SECRET" not in str(e.value).replace(str(secret), "")


@pytest.mark.parametrize("which", ["folder", "device"])
def test_the_cli_passes_npu_smi_as_a_file_checked_before_reading(tmp_path, capsys, which):
    from zoorepro import cli
    folder = make_result(tmp_path)
    labels = write_labels(tmp_path / "val_label.txt")
    npu_smi = str(tmp_path) if which == "folder" else "/dev/zero"
    rc = cli.main(["ingest", str(folder), "--labels", str(labels), "--out",
                   str(tmp_path / "reports"), "--npu-smi", npu_smi, "--no-report"])
    err = capsys.readouterr().err
    assert rc == 2 and npu_smi in err and "Traceback" not in err, err


# ------------------------------------------------- review: clues that were not cross-checked
def zoorepro_run_layout(tmp_path: Path, folder: Path) -> Path:
    """``folder`` moved into ``<run>/results/onnxruntime/`` of a zoorepro run, with the
    summary zoorepro's onnxruntime backend writes beside it; its ais_bench summary stays."""
    run = tmp_path / "run"
    (run / "records").mkdir(parents=True)
    dest = run / "results" / "onnxruntime" / folder.name
    dest.parent.mkdir(parents=True)
    folder.rename(dest)
    s = json.loads((folder.parent / f"{folder.name}_summary.json").read_text())
    s.update(backend="onnxruntime", backend_info={"device": "cpu"})
    write_summary(dest.parent / f"{folder.name}_summary.json", s)
    return dest


def test_cpu_results_with_an_ais_bench_accuracy_summary_are_refused(tmp_path):
    """<run>/results/onnxruntime/result_bs1 + --accuracy-summary of an ais_bench run listing
    the same images was recorded as produced on an Ascend NPU host."""
    folder = make_result(tmp_path)
    ais_summary = folder.parent / "result_bs4_summary.json"
    dest = zoorepro_run_layout(tmp_path, folder)
    labels = write_labels(tmp_path / "l.txt")
    with pytest.raises(IngestError, match="inside a zoorepro run folder") as e:
        ingest.ingest(dest, labels, tmp_path / "r", accuracy_summary=ais_summary)
    assert str(dest) in str(e.value)
    # not inside a run folder, but zoorepro's own summary lies beside it
    shutil_move = tmp_path / "loose" / dest.name
    shutil_move.parent.mkdir()
    dest.rename(shutil_move)
    (dest.parent / f"{dest.name}_summary.json").rename(
        shutil_move.parent / f"{dest.name}_summary.json")
    with pytest.raises(IngestError, match="written by zoorepro's onnxruntime backend") as e:
        ingest.ingest(shutil_move, labels, tmp_path / "r", accuracy_summary=ais_summary)
    assert f"{dest.name}_summary.json" in str(e.value)
    assert not (tmp_path / "r").exists()


def test_an_accuracy_summary_other_than_the_one_beside_the_folder_is_refused(tmp_path):
    folder = make_result(tmp_path)
    labels = write_labels(tmp_path / "l.txt")
    beside = folder.parent / "result_bs4_summary.json"
    same = write_summary(tmp_path / "copy" / "s.json", json.loads(beside.read_text()))
    ingest.ingest(folder, labels, tmp_path / "r", accuracy_summary=same)   # a copy: fine
    s = json.loads(beside.read_text())
    s["npu_compute_time_list"] = [0.2, 0.2, 0.2]
    s["NPU_compute_time"]["mean"] = 0.2
    s["throughput"] = 1000 * 4 / 0.2
    other = write_summary(tmp_path / "copy" / "other.json", s)
    with pytest.raises(IngestError, match="two summaries") as e:
        ingest.ingest(folder, labels, tmp_path / "r", accuracy_summary=other)
    assert str(beside) in str(e.value) and str(other) in str(e.value)


def test_bin_outputs_of_different_sizes_are_refused(tmp_path):
    """img_5_0.bin cut to half its size was read as float16 beside float32 outputs."""
    folder = make_result(tmp_path, fmt="BIN")
    p = folder / "img_5_0.bin"
    p.write_bytes(p.read_bytes()[:2000])
    with pytest.raises(IngestError, match=r"BIN outputs of different sizes") as e:
        ingest.ingest(folder, write_labels(tmp_path / "l.txt"), tmp_path / "r")
    msg = str(e.value)
    assert "img_5_0.bin" in msg and "2,000 bytes" in msg and "4,000 bytes" in msg
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("fmt", ["BIN", "TXT"])
def test_an_output_of_constant_scores_is_refused(tmp_path, fmt):
    """An all-zero output was scored as class 0 (ties go to the lowest class)."""
    folder = make_result(tmp_path, fmt=fmt)
    write_output(folder, "img_5", np.zeros(1000, np.float32), fmt)
    write_output(folder, "img_7", np.full(1000, 0.5, np.float32), fmt)
    with pytest.raises(IngestError, match=r"2 output\(s\) hold the same score for every "
                                          r"class") as e:
        ingest.ingest(folder, write_labels(tmp_path / "l.txt"), tmp_path / "r")
    assert f"img_5_0.{fmt.lower()}" in str(e.value) and f"img_7_0.{fmt.lower()}" in str(e.value)


def test_a_soc_version_npu_smi_denies_is_refused(tmp_path):
    folder = make_result(tmp_path)
    labels = write_labels(tmp_path / "l.txt")
    with pytest.raises(IngestError, match=r"--soc-version Ascend910B.*npu-smi info.*"
                                          r"Ascend310P3"):
        ingest.ingest(folder, labels, tmp_path / "r", npu_smi_text=NPU_SMI_SAMPLE,
                      soc_version="Ascend910B")
    for same in ("Ascend310P3", "310P3"):
        run = ingest.ingest(folder, labels, tmp_path / "r", npu_smi_text=NPU_SMI_SAMPLE,
                            soc_version=same)
        assert run.read(records.EnvironmentRecord).npu == "Ascend310P3"


@pytest.mark.parametrize("soc", ["<script>x", "Ascend 310", "x" * 40, "a"])
def test_a_soc_version_that_is_no_chip_name_is_refused(tmp_path, soc):
    folder = make_result(tmp_path)
    with pytest.raises(IngestError, match="--soc-version: .* is not a chip name"):
        ingest.ingest(folder, write_labels(tmp_path / "l.txt"), tmp_path / "r", soc_version=soc)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("raw,needle", [
    (b"garbage\x00\xff", "not text"),
    (b"hello world\n", "no chip table"),
    (b"", "no chip table"),
], ids=["binary", "text", "empty"])
def test_npu_smi_text_that_is_not_npu_smi_info_is_refused(tmp_path, raw, needle):
    folder = make_result(tmp_path)
    labels = write_labels(tmp_path / "l.txt")
    smi = tmp_path / "npu-smi.txt"
    smi.write_bytes(raw)
    with pytest.raises(IngestError, match=needle) as e:
        ingest.ingest(folder, labels, tmp_path / "r", npu_smi_file=smi)
    assert str(smi) in str(e.value) and "\x00" not in str(e.value)
    with pytest.raises(IngestError, match=needle):
        ingest.ingest(folder, labels, tmp_path / "r", npu_smi_text=raw.decode("latin-1"))
    assert not (tmp_path / "r").exists()


def test_the_kits_npu_smi_not_found_line_is_a_note(tmp_path):
    """run_on_npu.sh writes this line when npu-smi is not on the NPU host's PATH."""
    folder = make_result(tmp_path)
    smi = tmp_path / "npu-smi.txt"
    smi.write_text("npu-smi not found on PATH\n")
    run = ingest.ingest(folder, write_labels(tmp_path / "l.txt"), tmp_path / "r",
                        npu_smi_file=smi, soc_version="Ascend310P3")
    assert run.read(records.EnvironmentRecord).npu == "Ascend310P3"
    assert any("npu-smi was not on the NPU host's PATH" in n
               for n in run.read(records.IngestRecord).notes)


def test_a_batch_size_resting_on_the_argument_alone_is_refused(tmp_path):
    """No count, no time list, throughput 0, --batchsize=8 for a 10-image bs4 folder named
    'result': the throughput doubled."""
    folder = make_result(tmp_path)
    plain = folder.parent / "out" / "result"
    plain.parent.mkdir()
    folder.rename(plain)
    s = json.loads((folder.parent / "result_bs4_summary.json").read_text())
    s["args"] = [a.replace("squeezenet1_1_bs4.om", "resnet.om").replace("=4", "=8")
                 for a in s["args"]]
    s.update(throughput=0, npu_compute_time_list=[])
    del s["NPU_compute_time"]["count"]
    write_summary(plain.parent / "result_summary.json", s)
    labels = write_labels(tmp_path / "l.txt")
    with pytest.raises(IngestError, match=r"batch size 8 rests on its --batchsize alone") as e:
        ingest.ingest(plain, labels, tmp_path / "r")
    assert "result_summary.json" in str(e.value)
    with pytest.raises(IngestError, match=r"the kit's accuracy_batch_size: 4"):
        ingest.ingest(plain, labels, tmp_path / "r", manifest=kit_manifest(tmp_path))


def test_the_last_bs_in_model_and_folder_names_is_the_batch_size(tmp_path):
    """resnet_bs16_v2_bs4.om in resnet_bs8_result_bs4 was refused: the first bs<N> was taken."""
    folder = make_result(tmp_path)
    named = folder.parent / "resnet_bs8_result_bs4"
    folder.rename(named)
    s = json.loads((folder.parent / "result_bs4_summary.json").read_text())
    s["args"][1] = "--model=resnet_bs16_v2_bs4.om"
    write_summary(folder.parent / "resnet_bs8_result_bs4_summary.json", s)
    (folder.parent / "result_bs4_summary.json").unlink()
    run = ingest.ingest(named, write_labels(tmp_path / "l.txt"), tmp_path / "r")
    assert run.read(records.AccuracyRecord).entries["ais_bench"].batch_size == 4


# ------------------------------------------------------------ the kit's recipe
def kit_recipe_copy(tmp_path: Path, name: str = "resnet50") -> str:
    """``recipe/<name>/`` beside a kit.json, as run_on_npu.sh copies it; its sha256."""
    import shutil
    from zoorepro import recipebook
    shipped = recipebook.load(name)
    dest = tmp_path / "recipe" / name
    shutil.copytree(shipped.folder, dest)
    return shipped.sha256


def test_the_kits_recipe_is_read_and_recorded(tmp_path):
    folder = make_result(tmp_path)
    sha = kit_recipe_copy(tmp_path)
    man = kit_manifest(tmp_path, recipe="resnet50", recipe_sha256=sha)
    run = ingest.ingest(folder, write_labels(tmp_path / "l.txt"), tmp_path / "r", manifest=man)
    params = (run.root / "params.yaml").read_text()
    assert "recipe: resnet50\n" in params and f"recipe_sha256: {sha}\n" in params
    assert run.read(records.RecipeRecord).sha256 == sha      # kept as a run keeps its recipe
    assert run.recipe.name == "resnet50" and run.recipe.sha256 == sha


def test_a_kit_recipe_that_is_missing_or_changed_is_refused(tmp_path):
    folder = make_result(tmp_path)
    labels = write_labels(tmp_path / "l.txt")
    yaml_path = tmp_path / "recipe" / "resnet50" / "recipe.yaml"
    man = kit_manifest(tmp_path, recipe="resnet50", recipe_sha256="ab" * 32)
    with pytest.raises(IngestError, match=re.escape(f"{yaml_path}: the kit's recipe is missing "
                                                    f"(kit.json names recipe resnet50); copy "
                                                    f"the recipe/ folder")):
        ingest.ingest(folder, labels, tmp_path / "r", manifest=man)
    sha = kit_recipe_copy(tmp_path)
    yaml_path.write_text(yaml_path.read_text().replace("loop: 1000", "loop: 999"))
    man = kit_manifest(tmp_path, recipe="resnet50", recipe_sha256=sha)
    with pytest.raises(IngestError, match=re.escape(f"{yaml_path}: not the recipe the kit was "
                                                    f"made with (its sha256")) as e:
        ingest.ingest(folder, labels, tmp_path / "r", manifest=man)
    assert "copy the recipe/ folder run_on_npu.sh wrote beside kit.json again" in str(e.value)
    man = kit_manifest(tmp_path, recipe="resnet50")
    with pytest.raises(IngestError, match=r"kit.json: names its recipe only in part"):
        ingest.ingest(folder, labels, tmp_path / "r", manifest=man)
    assert not (tmp_path / "r").exists()


def test_results_without_a_kit_take_the_recipe_named_with_recipe(tmp_path):
    """Plain ais_bench results (no kit.json): --recipe names what they followed; without it
    the run keeps no recipe and nothing is compared with a published figure."""
    folder = make_result(tmp_path)
    labels = write_labels(tmp_path / "l.txt")
    run = ingest.ingest(folder, labels, tmp_path / "r", recipe="mobilenet_v2")
    assert run.recipe.name == "mobilenet_v2"
    assert run.read(records.RecipeRecord).copy == "recipe/mobilenet_v2"
    bare = ingest.ingest(folder, labels, tmp_path / "r2")
    assert bare.recipe is None
    with pytest.raises(IngestError, match="--recipe nosuch: recipe 'nosuch': not a shipped"):
        ingest.ingest(folder, labels, tmp_path / "r3", recipe="nosuch")


def test_a_recipe_named_against_the_kits_is_refused(tmp_path):
    folder = make_result(tmp_path)
    sha = kit_recipe_copy(tmp_path)
    man = kit_manifest(tmp_path, recipe="resnet50", recipe_sha256=sha)
    with pytest.raises(IngestError, match=r"--recipe squeezenet1_1: the kit .*kit.json was made "
                                          r"with recipe resnet50"):
        ingest.ingest(folder, write_labels(tmp_path / "l.txt"), tmp_path / "r", manifest=man,
                      recipe="squeezenet1_1")
    run = ingest.ingest(folder, write_labels(tmp_path / "l.txt"), tmp_path / "r", manifest=man,
                        recipe="resnet50")                      # the same recipe: fine
    assert run.recipe.name == "resnet50"
