"""Row f of the precision ladder: ``zoorepro ingest ... --ladder-from RUN_DIR`` takes rows a-e
from a local run of the same recipe and adds the NPU's results, compared with that run's row b
image by image (issue #24).  The NPU here is ais_bench's real front end over the stand-in
runtime (tests/standin), run by the kit's own run_on_npu.sh."""
from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest

import ais_real as ar
from ais_real import need_ais
from conftest import small_params
from test_aisbench_real import run_script
from zoorepro import cli, config
from zoorepro.ascend import ingest, kit
from zoorepro.errors import IngestError
from zoorepro.recipe import data, ladder
from zoorepro.run import precision, records, stages
from zoorepro.run.folder import Run

pytestmark = [pytest.mark.npu, need_ais]

# one image set, one label file, the recipe's weights and AIPP config: the kit's and the
# local run's; the ladder at batch size 4, a batch size of the kit's sweep
SHARED = dict(max_images=10, batch_sizes=[1, 4], accuracy_batch_size=4)
LOCAL = dict(precision="fp32", ladder_batch_size=4, calibration_images=4, bench_min_seconds=0)


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    """(the NPU host's npu_results/ after run_on_npu.sh, the label file, the work folder)."""
    d = tmp_path_factory.mktemp("ladderhost")
    labels = ar.designed_labels(d / "val_label.txt")
    cfg = config.from_mapping(small_params(d, label_file=str(labels), **SHARED))
    kit_dir = kit.make_kit(cfg, d / "kit", progress=False).parent
    work, proc = run_script(kit_dir, d, 0o022)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return work / "npu_results", labels, d


def ingest_kwargs(results: Path) -> dict:
    """ingest()'s arguments as the command run_on_npu.sh printed gives them."""
    argv = shlex.split((results / "ingest_command.txt").read_text())
    a = cli.build_parser().parse_args(argv[1:])
    root = results.parent
    return dict(result_dir=root / a.result_dir, labels_path=root / a.labels,
                summaries=[root / s for s in a.summary], npu_smi_file=root / a.npu_smi,
                cann_version=a.cann_version, soc_version=a.soc_version,
                manifest=root / a.manifest)


def local_run(host, name: str, **extra) -> Run:
    _, labels, d = host
    cfg = config.from_mapping(small_params(d / name, name=name, label_file=str(labels),
                                           **SHARED, **{**LOCAL, **extra}))
    return Run.create(cfg)


@pytest.fixture(scope="module")
def evaluated(host):
    """A local run scored (no ladder yet): copies get a ladder written by hand."""
    run = local_run(host, "evaluated")
    stages.ensure(run, "evaluate")
    return run.root


def read(run_dir: Path, name: str) -> dict:
    return json.loads((Path(run_dir) / "records" / f"{name}.json").read_text())


def edit(run_dir: Path, name: str, change) -> None:
    path = Path(run_dir) / "records" / f"{name}.json"
    obj = json.loads(path.read_text())
    change(obj)
    path.write_text(json.dumps(obj))


def hand_ladder(evaluated: Path, dest: Path, batch_size: int = 8) -> Path:
    """A copy of the evaluated run with a ladder written by hand: row b read from its
    accuracy result (as the ladder stage reads it), row c not run."""
    root = Path(shutil.copytree(evaluated, dest / evaluated.name, symlinks=True))
    run = Run.open(root)
    entry = run.read(records.InferRecord).entries["onnxruntime"]
    src = root / "results" / "onnxruntime" / Path(entry.result_dir).name
    keys = run.read(records.DatasetRecord).keys
    by_key = data.read_labels(run.read(records.DatasetRecord).label_file)
    y = np.array([by_key[k] for k in keys])
    logits = precision.result_logits(src, keys)
    rows = [records.LadderRow("b", precision.NAMES["b"], "the run's accuracy result", "ok",
                              engine="onnxruntime (CPU)", source=str(src),
                              **ladder.compare(logits, logits, y, keys)),
            records.LadderRow("c", precision.NAMES["c"], "by hand", "not run", reason="test")]
    rec = records.LadderRecord(status="ok", images=len(keys), batch_size=batch_size,
                               rows=rows, csv=precision.LADDER_CSV, notes=["by hand"])
    run.write(rec)
    (root / precision.LADDER_CSV).write_text(
        ladder.ladder_csv(keys, y, {"b": ladder.top1(logits)}))
    return root


# ------------------------------------------------------------------ the round trip
@pytest.mark.e2e
def test_kit_ingest_round_trip_adds_row_f(host, tmp_path, monkeypatch, capsys):
    """The done-when of issue #24's row f: the squeezenet recipe's kit, run on the stand-in
    NPU, ingested with --ladder-from a local run whose ladder stage ran."""
    results, labels, _ = host
    local = local_run(host, "measured")
    stages.ensure(local, "ladder")
    mine = read(local.root, "ladder")
    assert mine["status"] == "ok" and mine["rows"][1]["step"] == "b"
    argv = shlex.split((results / "ingest_command.txt").read_text())
    monkeypatch.chdir(results.parent)
    capsys.readouterr()
    assert cli.main(argv[1:] + ["--ladder-from", str(local.root), "--out",
                                str(tmp_path / "reports"), "--no-report"]) == 0
    run = Path(capsys.readouterr().out.strip().splitlines()[-1])
    got = read(run, "ladder")
    assert got["status"] == "ok" and got["base"] == "b"
    assert [r["step"] for r in got["rows"]] == [r["step"] for r in mine["rows"]]
    assert got["rows"][:-1] == mine["rows"][:-1]             # rows a-e: the local run's
    assert mine["rows"][-1]["status"] == "not run"          # its f: no NPU ran there
    f = got["rows"][-1]
    npu_images = json.loads((run / "metrics.json").read_text())["images"]
    assert f["status"] == "ok" and f["compared"] == f["images"] == npu_images == 10
    assert f["source"] == str((results / "result" / "result_bs4").resolve())
    assert "Ascend310P3" in f["engine"] and "Ascend310P3" in f["how"]
    assert "force_fp16" in f["how"]          # the kit's ATC command names no precision
    # row f's own figures are the ingested accuracy's, and its img/s the sweep's at bs 4
    acc = read(run, "accuracy")["ais_bench"]
    assert [f[f"top{k}"] for k in range(1, 6)] == [acc[f"top{k}"] for k in range(1, 6)]
    (bs4,) = [b for b in read(run, "bench")["records"] if b["batch_size"] == 4]
    assert f["throughput"] == bs4["throughput"] and f["throughput_batch"] == 4
    assert any(local.root.name in n and "row f" in n for n in got["notes"])
    # the per-image table: the local rows' top-1 and row f's, on the NPU's images
    lines = (run / got["csv"]).read_text().splitlines()
    head = lines[0].split(",")
    assert len(lines) == 11 and "top1_f" in head
    assert head[-1].endswith("_f") and head[-1] != "top1_f"    # row f's changed-vs-b column
    local_csv = (local.root / mine["csv"]).read_text().splitlines()
    b_col = head.index("top1_b")
    assert [ln.split(",")[b_col] for ln in lines[1:]] == \
        [ln.split(",")[local_csv[0].split(",").index("top1_b")] for ln in local_csv[1:]]
    changed = sum(int(ln.split(",")[-1]) for ln in lines[1:])
    assert changed == f["changed"]
    # the report's section shows row f
    from zoorepro.report.core import load
    from zoorepro.report.ladder import ladder_section
    assert "The NPU itself (row f)" in ladder_section(load(Run.open(run)))


def test_without_ladder_from_no_ladder_is_written(host, tmp_path):
    results, _, _ = host
    run = ingest.ingest(out_root=tmp_path / "r", **ingest_kwargs(results))
    assert not run.has(records.LadderRecord)
    assert "ladder_from" not in (run.root / "params.yaml").read_text()
    assert not (run.root / precision.LADDER_CSV).exists()


def test_a_hand_made_ladder_gets_row_f(host, evaluated, tmp_path):
    """The same from a ladder written by hand (fast): row f against row b; the ladder's batch
    size 8 is not in the sweep, so row f has no img/s and a note says why."""
    results, _, _ = host
    local = hand_ladder(evaluated, tmp_path)
    run = ingest.ingest(out_root=tmp_path / "r", ladder_from=local, **ingest_kwargs(results))
    rec = run.read(records.LadderRecord)
    assert [r.step for r in rec.rows] == ["b", "c", "f"]
    assert rec.rows[:2] == Run.open(local).read(records.LadderRecord).rows
    f = rec.row("f")
    assert f.status == "ok" and f.compared == 10 and f.throughput is None
    assert any("no batch size 8" in n for n in rec.notes)
    assert rec.notes[0] == "by hand"
    assert f"ladder_from: {local.resolve()}\n" in (run.root / "params.yaml").read_text()


def test_the_cli_flag_passes_the_local_run(host, evaluated, tmp_path, monkeypatch, capsys):
    results, _, _ = host
    local = hand_ladder(evaluated, tmp_path)
    argv = shlex.split((results / "ingest_command.txt").read_text())[1:]
    monkeypatch.chdir(results.parent)
    capsys.readouterr()
    assert cli.main(argv + ["--ladder-from", str(local), "--out", str(tmp_path / "r"),
                            "--no-report"]) == 0
    run = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert read(run, "ladder")["rows"][-1]["step"] == "f"
    edit(local, "export", lambda r: r.update(weights_sha256="f" * 64))
    assert cli.main(argv + ["--ladder-from", str(local), "--out", str(tmp_path / "r2"),
                            "--no-report"]) == 2
    assert "records/export.json has weights sha256 ffffffffffff" in capsys.readouterr().err
    assert not (tmp_path / "r2").exists()


def test_fewer_npu_images_than_the_ladders_are_said(host, evaluated, tmp_path):
    results, _, _ = host
    local = hand_ladder(evaluated, tmp_path)
    edit(local, "ladder", lambda r: r.update(images=12))     # as if it scored two more
    run = ingest.ingest(out_root=tmp_path / "r", ladder_from=local, **ingest_kwargs(results))
    notes = run.read(records.LadderRecord).notes
    assert any(n.startswith("row f's Acc@1 is on its 10 images, rows a–e's on 12: its Δ Acc@1, "
                            "agreement and changed counts are image by image") for n in notes)
    assert any(f"measured in run {local.name} on 12 images (this run's 10 among them)" in n
               for n in notes)


def test_a_moved_local_run_reads_row_b_from_its_own_results(host, evaluated, tmp_path):
    local = hand_ladder(evaluated, tmp_path / "was")
    moved = shutil.move(local, tmp_path / "moved")
    results, _, _ = host
    run = ingest.ingest(out_root=tmp_path / "r", ladder_from=moved, **ingest_kwargs(results))
    rec = run.read(records.LadderRecord)
    assert rec.row("f").compared == 10
    assert any(n.startswith(f"row b's logits read from {Path(moved).resolve()}/results/")
               and "the run folder was moved" in n for n in rec.notes)
    shutil.rmtree(Path(moved) / "results")
    refused(host, moved, tmp_path, r"row b's result folder .*result_bs4 is gone; copy the "
                                   r"whole run folder")


# ------------------------------------------------------------------ refusals
def refused(host, local, tmp_path, match: str):
    """ingest with --ladder-from ``local`` is an IngestError matching ``match``, and nothing
    is written under --out."""
    results, _, _ = host
    out = tmp_path / "out"
    with pytest.raises(IngestError, match=match):
        ingest.ingest(out_root=out, ladder_from=local, **ingest_kwargs(results))
    assert not out.exists() or not any(out.iterdir())


def test_another_recipe_is_refused(host, evaluated, tmp_path):
    local = hand_ladder(evaluated, tmp_path)
    edit(local, "recipe", lambda r: r.update(name="resnet50"))
    refused(host, local, tmp_path, "followed recipe resnet50, the ingested results recipe "
                                   "squeezenet1_1; give a local run of squeezenet1_1")


def test_a_changed_recipe_file_is_refused(host, evaluated, tmp_path):
    local = hand_ladder(evaluated, tmp_path)
    edit(local, "recipe", lambda r: r.update(sha256="0" * 64))
    refused(host, local, tmp_path, r"recipe.yaml sha256 000000000000\.\.\., the ingested "
                                   r"results' [0-9a-f]{12}\.\.\.; the recipe changed")


@pytest.mark.parametrize("field,what", [("weights_sha256", "weights"),
                                        ("aipp_config_sha256", "AIPP config")])
def test_other_weights_or_aipp_config_are_refused(host, evaluated, tmp_path, field, what):
    local = hand_ladder(evaluated, tmp_path)
    edit(local, "export", lambda r: r.update({field: "f" * 64}))
    refused(host, local, tmp_path, rf"records/export.json has {what} sha256 ffffffffffff\.\.\., "
                                   rf"the kit .*kit.json [0-9a-f]{{12}}\.\.\.; rows a-e and row f "
                                   rf"would be of different models")


def test_npu_images_the_local_run_does_not_have_are_refused(host, evaluated, tmp_path):
    local = hand_ladder(evaluated, tmp_path)
    keys = read(local, "dataset")["keys"]
    edit(local, "dataset", lambda r: r.update(keys=keys[:7], images=7))
    refused(host, local, tmp_path, rf"3 of the NPU's 10 images are not among that run's 7 "
                                   rf"\(e\.g\. {keys[7]}, {keys[8]}, {keys[9]}\)")


def test_a_local_run_without_a_ladder_is_refused(host, evaluated, tmp_path):
    local = Path(shutil.copytree(evaluated, tmp_path / "plain"))
    refused(host, local, tmp_path, r"no records/ladder\.json \(its precision ladder, rows "
                                   r"a-e\)")


def test_a_ladder_not_measured_is_refused(host, evaluated, tmp_path):
    local = hand_ladder(evaluated, tmp_path)
    edit(local, "ladder", lambda r: r.update(status="not run", reason="ladder: false"))
    refused(host, local, tmp_path, r"the ladder was not measured \(not run: ladder: false\)")


def test_a_ladder_whose_row_b_did_not_run_is_refused(host, evaluated, tmp_path):
    local = hand_ladder(evaluated, tmp_path)

    def b_not_run(r):
        r["rows"][0] = {**{k: None for k in r["rows"][0]}, "step": "b", "name": "b",
                        "how": "x", "status": "not run", "reason": "no fp32 backend",
                        "changed_examples": []}
    edit(local, "ladder", b_not_run)
    refused(host, local, tmp_path, r"row b .* is not run \(no fp32 backend\)")


def test_labels_that_differ_from_the_local_runs_are_refused(host, evaluated, tmp_path):
    local = hand_ladder(evaluated, tmp_path)
    csv_path = local / precision.LADDER_CSV
    lines = csv_path.read_text().splitlines()
    key, label, *rest = lines[1].split(",")
    lines[1] = ",".join([key, str((int(label) + 1) % 1000), *rest])
    csv_path.write_text("\n".join(lines) + "\n")
    refused(host, local, tmp_path, rf"1 image\(s\) have another label there than in .* "
                                   rf"\(e\.g\. {key}: ")


def test_a_row_b_folder_changed_after_the_ladder_is_refused(host, evaluated, tmp_path):
    local = hand_ladder(evaluated, tmp_path)
    csv_path = local / precision.LADDER_CSV
    lines = csv_path.read_text().splitlines()
    key, label, b = lines[1].split(",")
    lines[1] = ",".join([key, label, str((int(b) + 1) % 1000)])
    csv_path.write_text("\n".join(lines) + "\n")
    refused(host, local, tmp_path, r"1 of the 10 images have another top-1 there than in "
                                   r".*top1_b: row b's result folder changed")


def test_an_ingested_run_is_not_a_local_run(host, tmp_path):
    results, _, _ = host
    other = ingest.ingest(out_root=tmp_path / "r", **ingest_kwargs(results))
    refused(host, other.root, tmp_path, "results ingested there, not a local run")


def test_results_without_a_recipe_are_refused(host, evaluated, tmp_path):
    results, _, _ = host
    local = hand_ladder(evaluated, tmp_path)
    kw = ingest_kwargs(results)
    kw.pop("manifest")
    with pytest.raises(IngestError, match="the ingested results name no recipe .*give "
                                          "--manifest kit.json or --recipe NAME"):
        ingest.ingest(out_root=tmp_path / "out", ladder_from=local, **kw)
