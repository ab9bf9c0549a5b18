"""Sharded runs on Dask: preprocessing and the accuracy run split into contiguous shards give
files byte-identical to the unsharded run's, on an in-process LocalCluster, on the default
LocalCluster, through the notebooks, and on a `dask scheduler` + `dask worker` cluster whose
workers are killed in the middle of a shard (the shards are retried)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from zoorepro import config
from zoorepro.run import records, stages
from zoorepro.scale import shards
from zoorepro.recipe.data import image_key
from zoorepro.errors import ConfigError
from zoorepro.run.folder import Run

import dask_processes
from conftest import small_params

distributed = pytest.importorskip("distributed")

# 7 images at accuracy batch 2: 4 batches, the last padded; 3 shards of 1, 1 and 2 batches
PARAMS = dict(max_images=7, batch_sizes=[1], backends=["onnxruntime"], bench_iterations=1,
              bench_min_seconds=0, accuracy_batch_size=2)
RESULT = Path("results/onnxruntime/result_bs2")


def test_split_is_contiguous_in_order_and_batch_aligned():
    assert shards.split(7, 3) == [(0, 2), (2, 4), (4, 7)]
    assert shards.split(7, 3, align=2) == [(0, 2), (2, 4), (4, 7)]
    assert shards.split(8, 3, align=4) == [(0, 4), (4, 8)]          # at most one per batch
    assert shards.split(3, 10) == [(0, 1), (1, 2), (2, 3)]
    assert shards.split(0, 4) == []
    for n, parts, align in [(100, 7, 8), (50_000, 16, 1), (5, 2, 64)]:
        ranges = shards.split(n, parts, align)
        assert ranges[0][0] == 0 and ranges[-1][1] == n
        assert all(a < b and a % align == 0 for a, b in ranges)
        assert all(x[1] == y[0] for x, y in zip(ranges, ranges[1:]))


def test_config_takes_shards_and_a_scheduler_address():
    cfg = config.from_mapping({"shards": 4, "scheduler": "tcp://10.0.0.5:8786"},
                              check_paths=False)
    assert (cfg.shards, cfg.scheduler) == (4, "tcp://10.0.0.5:8786")
    assert config.RunConfig().shards == 1 and config.RunConfig().scheduler == ""
    with pytest.raises(ConfigError) as e:
        config.from_mapping({"shards": 0, "scheduler": "not an address"}, check_paths=False)
    assert "shards: must be >= 1" in str(e.value) and "scheduler: 'not an address'" in str(e.value)


def test_missing_dask_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    from zoorepro.scale import cluster
    with pytest.raises(ConfigError, match=r'pip install "dask\[distributed\]"'):
        cluster.require("shards: 2")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The unsharded run."""
    run = Run.create(config.from_mapping(small_params(tmp_path_factory.mktemp("ref"), **PARAMS)))
    stages.ensure(run, "evaluate")
    return run


def same_files(a: Run, b: Run) -> None:
    """Result files, result.json, metrics.json, predictions and .bin files byte-identical;
    nothing half-written (no temporary .part file) anywhere."""
    for rel in ["result.json", "metrics.json", "results/onnxruntime/predictions.json",
                "results/onnxruntime/predictions.csv"]:
        assert (a.root / rel).read_bytes() == (b.root / rel).read_bytes(), rel
    for folder in [RESULT, Path("bin")]:
        names = sorted(p.name for p in (a.root / folder).iterdir() if not p.name.startswith("."))
        assert names == sorted(p.name for p in (b.root / folder).iterdir()
                               if not p.name.startswith("."))
        assert len(names) == 7
        for n in names:
            assert (a.root / folder / n).read_bytes() == (b.root / folder / n).read_bytes(), n
    assert not list(b.root.rglob("*.part"))
    pa, pb = a.read(records.PreprocessRecord), b.read(records.PreprocessRecord)
    assert {**pa.to_json(), "out_dir": ""} == {**pb.to_json(), "out_dir": ""}
    assert a.read(records.DatasetRecord).keys == b.read(records.DatasetRecord).keys
    summary = json.loads((b.root / "results/onnxruntime/result_bs2_summary.json").read_text())
    assert summary["images"] == 7 and summary["padding"] == 1
    assert [len(v["infiles"]) for v in summary["filesinfo"].values()] == [2, 2, 2, 1]


def sharded_run(tmp_path, **extra) -> Run:
    run = Run.create(config.from_mapping(small_params(tmp_path, **PARAMS, **extra)))
    stages.ensure(run, "evaluate", shards.executor(run))
    return run


@pytest.mark.e2e
def test_in_process_cluster_gives_the_unsharded_bytes(reference, tmp_path):
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as lc:
        run = sharded_run(tmp_path, shards=3, scheduler=lc.scheduler_address)
    same_files(reference, run)
    rec = run.read(records.ShardsRecord)
    assert rec.shards == 3 and rec.scheduler == lc.scheduler_address and rec.workers == 2
    pre, inf = rec.stages["preprocess"], rec.stages["infer/onnxruntime"]
    assert [(t["first"], t["last"]) for t in pre["tasks"]] == [(0, 1), (2, 3), (4, 6)]
    assert [(t["first"], t["last"]) for t in inf["tasks"]] == [(0, 1), (2, 3), (4, 6)]
    assert all(t["peak_rss_mib"] > 0 and t["attempts"] == 1 for t in pre["tasks"] + inf["tasks"])
    note = run.read(records.InferRecord).entries["onnxruntime"].notes[0]
    assert "shards 3" in note and lc.scheduler_address in note and "2 worker" in note


@pytest.mark.e2e
def test_default_local_cluster_gives_the_unsharded_bytes(reference, tmp_path):
    run = sharded_run(tmp_path, shards=2)
    same_files(reference, run)
    rec = run.read(records.ShardsRecord)
    assert rec.cluster.startswith("LocalCluster") and rec.workers >= 1
    assert len(rec.stages["preprocess"]["tasks"]) == 2


@pytest.mark.e2e
def test_notebooks_run_sharded_and_name_the_cluster(reference, tmp_path):
    from zoorepro import runner
    cfg = config.from_mapping(small_params(tmp_path, **PARAMS, shards=2))
    out = runner.run_all(cfg)
    assert out.ok, out.failure
    run = Run.open(out.run_dir)
    same_files(reference, run)
    assert "shards: 2" in run.params_text()
    assert "sharded run: shards 2 on LocalCluster" in \
        run.read(records.InferRecord).entries["onnxruntime"].notes[0]


@pytest.fixture
def dask_cluster(tmp_path):
    """`dask scheduler` + `dask worker` whose workers kill themselves once in preprocessing
    shard 1 and once in inference shard 0 (after one image / one inference call)."""
    marks = tmp_path / "killed-preprocess", tmp_path / "killed-infer"
    env = {shards.FAULT_ENV: f"preprocess:1:1:{marks[0]};infer:0:1:{marks[1]}"}
    with dask_processes.dask_cluster(tmp_path, env) as address:
        yield address, marks


@pytest.mark.e2e
def test_killed_workers_shards_are_retried_with_identical_output(reference, tmp_path,
                                                                  dask_cluster, demo_images):
    address, marks = dask_cluster
    run = Run.create(config.from_mapping(small_params(tmp_path, **PARAMS, shards=3,
                                                      scheduler=address)))
    key = image_key(demo_images[0].name)           # what a writer killed mid-write leaves
    for part in [run.root / "bin" / f".{key}.bin.99999.0.part",
                 run.root / RESULT / f".{key}_0.txt.99999.0.part"]:
        part.parent.mkdir(parents=True, exist_ok=True)
        part.write_bytes(b"half")
    stages.ensure(run, "evaluate", shards.executor(run))
    assert all(m.is_file() for m in marks)          # a worker died in each stage, mid-shard
    same_files(reference, run)
    rec = run.read(records.ShardsRecord)
    assert rec.scheduler == address and rec.cluster.startswith("external cluster")
    assert rec.stages["preprocess"]["tasks"][1]["attempts"] == 2
    assert rec.stages["infer/onnxruntime"]["tasks"][0]["attempts"] == 2
    assert "retried after a lost worker" in \
        run.read(records.InferRecord).entries["onnxruntime"].notes[0]


def test_shards_without_their_executor_are_refused_never_run_unsharded(tmp_path):
    """The stages never import scale: a sharded run's executor is passed in, and a sharded
    run given none is an error naming the way, not an unsharded run in silence."""
    run = Run.create(config.from_mapping(small_params(tmp_path, **PARAMS, shards=2)))
    with pytest.raises(ConfigError, match="shards: 2 needs the shards' executor"):
        stages.ensure(run, "preprocess")
    assert not run.has(records.PreprocessRecord)
    assert isinstance(shards.executor(run), shards.Shards)
