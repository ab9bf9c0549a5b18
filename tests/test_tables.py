"""Every tabular file of a run loads into pandas, and runs stack."""
import pandas as pd
import pytest

import zoorepro
from zoorepro import config
from zoorepro.recipe import evaluate
from zoorepro.run import records, stages
from zoorepro.run.folder import Run

from conftest import small_params


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tables")
    r = Run.create(config.from_mapping(small_params(tmp, max_images=5, batch_sizes=[1, 2],
                                                    backends=["onnxruntime"])))
    stages.ensure(r, "evaluate")
    return r


def test_every_table_loads(run):
    t = zoorepro.load_run(run.root)
    acc = t.accuracy
    assert list(acc.columns) == list(records.ACCURACY_COLUMNS) and len(acc) == 1
    assert acc.loc[0, "run"] == run.root.name and acc.loc[0, "images"] == 5
    preds = t.predictions
    assert list(preds.columns) == ["run", *evaluate.PREDICTION_COLUMNS] and len(preds) == 5
    assert preds["correct@1"].mean() * 100 == pytest.approx(acc.loc[0, "top1"])
    assert set(preds["correct@5"]) <= {0, 1} and (preds["correct@5"] >= preds["correct@1"]).all()
    bench = t.bench
    assert list(bench["batch_size"]) == [1, 2] and (bench["run"] == run.root.name).all()
    assert bench["weights_sha256"].notna().all() and bench["image_list_sha256"].notna().all()
    assert list(t.images["bin_bytes"]) == [150528] * 5


def test_bench_csv_states_each_definition_once(run):
    """bench.csv has a short key per row; the full text is in bench.json, once per key."""
    t = zoorepro.load_run(run.root)
    bench, defs = t.bench, t.bench_definitions
    assert "throughput_definition" not in bench and bench["definition_key"].str.len().eq(8).all()
    assert list(defs.columns) == ["definition_key", "definition"] and len(defs) == 1
    text = run.read(records.BenchRecord).records[0].throughput_definition
    assert defs.loc[0, "definition"] == text
    merged = bench.merge(defs, on="definition_key", how="left")
    assert (merged["definition"] == text).all() and len(merged) == len(bench)
    assert text[:40] not in (run.records_dir / "bench.csv").read_text()


def test_an_older_bench_csv_with_the_text_still_loads(run, tmp_path):
    import shutil
    from zoorepro.run.folder import Run as _Run
    copy = tmp_path / run.root.name
    shutil.copytree(run.root, copy)
    old = pd.read_csv(copy / "records" / "bench.csv", dtype={"definition_key": str})
    text = zoorepro.load_run(run).bench_definitions.loc[0, "definition"]
    old.insert(12, "throughput_definition", text)
    old.drop(columns="definition_key").to_csv(copy / "records" / "bench.csv", index=False)
    bench = zoorepro.load_run(_Run.open(copy)).bench
    assert list(bench["definition_key"]) == [records.definition_key(text)] * len(bench)
    assert "throughput_definition" not in bench


def test_runs_stack(run):
    both = pd.concat([zoorepro.load_run(run.root).bench, zoorepro.load_run(run).bench])
    assert len(both) == 4 and both["run"].nunique() == 1


def test_figures_are_matplotlib_figures(run):
    from matplotlib.figure import Figure
    from zoorepro.report import tables
    assert isinstance(tables.throughput_figure(run), Figure)
    fig = tables.bin_beside_jpeg(run, 0)
    assert isinstance(fig, Figure) and "224x224x3" in fig.axes[1].get_title()
