"""The ais_bench contract: summaries and outputs as ais_bench writes them, and what is refused.
(Runs of ais_bench's real front end: test_aisbench_real.py.)"""
import json

import numpy as np
import pytest

from zoorepro.ascend import aisformat
from zoorepro.recipe import evaluate
from zoorepro.errors import EvaluationError, IngestError

from npu_fixtures import perf_args, summary, write_summary


def with_stats(**npu):
    s = summary(perf_args(8), [], 8)
    s["NPU_compute_time"] = npu
    return s


@pytest.mark.parametrize("mean", [-2.0, 0.0, float("nan"), 1e308, 1e-300])
def test_an_impossible_mean_is_an_error_not_a_figure(mean):
    """Refused with the file named, or (nan) no mean at all: never a throughput."""
    try:
        _, m, _ = aisformat.compute_times(with_stats(mean=mean, count=5), "s.json")
    except IngestError as exc:
        assert "s.json: NPU_compute_time.mean" in str(exc)
    else:
        assert m is None
        from zoorepro.backends.bench import bench_record
        rec = bench_record(with_stats(mean=mean, count=5), "s.json", "npu: x")
        assert rec["throughput"] is None and not rec["valid"]


@pytest.mark.parametrize("times,match", [
    ([0.4, -1.0], "<= 0 ms"), ([0.4, float("inf")], "non-finite"), ([0.4, "x"], "'x'"),
    ([0.4, 1e9], "outside"), ([[1.0, 0.5]], "ends before it starts"), ([[1.0]], "pairs"),
])
def test_damaged_time_lists_are_refused(times, match):
    s = summary(perf_args(8), [1.0], 8)
    s["npu_compute_time_list"] = times
    with pytest.raises(IngestError, match=match):
        aisformat.compute_times(s, "s.json")


def test_zero_length_pipeline_intervals_are_accepted_as_ais_bench_does():
    s = summary(perf_args(1), [1.0], 1)
    s["npu_compute_time_list"] = [[10.0, 10.0], [10.0, 12.0]]
    durations, mean, how = aisformat.compute_times(s, "s.json")
    assert durations == [0.0, 2.0] and mean == 1.0 and how == aisformat.PIPELINE_MEAN


@pytest.mark.parametrize("bad", [[1, 2], 3.5, "x"])
def test_statistics_that_are_not_objects_are_refused(tmp_path, bad):
    s = summary(perf_args(8), [0.4], 8)
    s["NPU_compute_time"] = bad
    p = write_summary(tmp_path / "s_summary.json", s)
    with pytest.raises(IngestError, match="NPU_compute_time is .* damaged"):
        aisformat.read_summary(p)


def test_other_outputs_without_a_first_one_are_listed_not_dropped(tmp_path):
    folder = tmp_path / "result_bs1"
    folder.mkdir()
    row = "".join(f"{v:f} " for v in np.linspace(0, 1, 1000)) + "\n"
    (folder / "a_0.txt").write_text(row)
    (folder / "a_1.txt").write_text(row)           # a's second output: not foreign
    (folder / "b_1.txt").write_text(row)           # b has no _0: nothing to score
    found, foreign = evaluate.list_result_folder(folder)
    assert list(found) == ["a"] and foreign == ["b_1.txt"]


def test_write_summary_needs_ais_bench_keys(tmp_path):
    with pytest.raises(ValueError, match="missing NPU_compute_time"):
        aisformat.write_summary(tmp_path, "x", {"throughput": 1})
    s = aisformat.make_summary(["--model", "m"], [1.0, 3.0], 4, 2000.0)
    path = aisformat.write_summary(tmp_path, "result_bs4", s)
    assert path.name == "result_bs4_summary.json"
    back = json.loads(path.read_text())
    assert back["NPU_compute_time"]["mean"] == 2.0 and back["npu_compute_time_list"] == [1.0, 3.0]


@pytest.mark.parametrize("change,match", [
    (lambda s: s["NPU_compute_time"].update(min=-400.0),
     r"NPU_compute_time.min is '-400.0', not a time"),
    (lambda s: s["NPU_compute_time"].update(median="fast"), "NPU_compute_time.median is 'fast'"),
    (lambda s: s["H2D_latency"].update(count=-1), "H2D_latency.count is '-1', not a count"),
    (lambda s: s["D2H_latency"].update(mean=float("nan")), "D2H_latency.mean is 'nan'"),
    (lambda s: s.update(throughput=-400000.0), "throughput is '-400000.0', not what ais_bench"),
    (lambda s: s.update(throughput="fast"), "throughput is 'fast'"),
    (lambda s: s.update(args=5), "args is a int, not what ais_bench writes"),
], ids=["negative-min", "string-median", "negative-count", "nan-mean", "negative-throughput",
        "string-throughput", "args"])
def test_every_figure_of_a_summary_is_checked(tmp_path, change, match):
    """Statistics shown beside the list (min, median, p99, H2D/D2H) and the throughput were
    taken as given: a negative or NaN one became a figure, a string a numpy traceback."""
    s = summary(perf_args(8), [0.4, 0.5], 8, [0.1], [0.1])
    change(s)
    p = write_summary(tmp_path / "perf_bs8_summary.json", s)
    with pytest.raises(IngestError, match=match) as e:
        aisformat.read_summary(p)
    assert str(p) in str(e.value)


def test_an_impossible_batch_size_is_refused():
    s = summary(["--batchsize", "0", "--model", "m_bs8.om"], [0.4], 8)
    with pytest.raises(IngestError, match="batch size 0 is impossible"):
        aisformat.summary_batch_size(s, "s.json")
    s["args"] = ["--batchsize", "\u00b2", "--model", "m_bs8.om"]    # not a number: refused,
    with pytest.raises(IngestError, match="is not a batch size"):      # never dropped
        aisformat.summary_batch_size(s, "s.json")


def test_a_huge_output_file_is_refused_before_it_is_read(tmp_path, monkeypatch):
    """A 1 GB TXT was read whole (85 s, 2.1 GB) before being refused."""
    from pathlib import Path
    big = tmp_path / "a_0.txt"
    with open(big, "wb") as fh:
        fh.truncate(1 << 30)                             # sparse: takes no disk
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail(f"read {self}"))
    with pytest.raises(EvaluationError, match="1,073,741,824 bytes is no ais_bench TXT"):
        aisformat.read_prediction(big)
    big.rename(tmp_path / "a_0.npy")
    with pytest.raises(EvaluationError, match="not an ais_bench NPY output"):
        aisformat.read_prediction(tmp_path / "a_0.npy")


@pytest.mark.parametrize("raw", [b"", b"\x93NUMPY garbage", b"\xff" * 100],
                         ids=["empty", "bad-header", "bytes"])
def test_a_damaged_npy_output_is_an_error_naming_it(tmp_path, raw):
    p = tmp_path / "a_0.npy"
    p.write_bytes(raw)
    with pytest.raises(EvaluationError, match="not an ais_bench NPY output") as e:
        aisformat.read_prediction(p)
    assert str(p) in str(e.value)


def test_a_summary_whose_batch_size_clues_disagree_is_refused():
    """--batchsize 64 over an _bs1.om whose throughput says 1 was taken as 64 (64x img/s)."""
    s = summary(["--model", "m_bs1.om", "--batchsize", "64"], [0.4, 0.5], 1)
    with pytest.raises(IngestError, match=r"s.json: batch size disagrees between the summary's "
                                          r"clues: its --batchsize: 64; the OM name m_bs1.om: 1; "
                                          r"ais_bench's throughput 2222.22 x mean 0.45 ms"):
        aisformat.summary_batch_size(s, "s.json")
    s["args"][3] = "1"
    assert aisformat.summary_batch_size(s, "s.json") == 1
    s["throughput"] *= 64                                  # ais_bench's own figure denies it
    with pytest.raises(IngestError, match=r"throughput 142222 x mean 0.45 ms / 1000: 64"):
        aisformat.summary_batch_size(s, "perf_bs1_summary.json")


@pytest.mark.parametrize("change,clue", [
    (lambda s: s["args"].__setitem__(3, " 8"), "its --batchsize: 8"),
    (lambda s: s.update(batchsize=8.0), "its batchsize field: 8"),
], ids=["spaced-arg", "float-field"])
def test_a_spaced_or_float_batch_size_is_a_clue_not_dropped(change, clue):
    """--batchsize=' 8' and batchsize: 8.0 were dropped, leaving m_bs4.om's 4."""
    s = summary(["--model", "m_bs4.om", "--batchsize", "4"], [0.4, 0.5], 4)
    s["throughput"] = 0
    change(s)
    with pytest.raises(IngestError, match="batch size disagrees") as e:
        aisformat.summary_batch_size(s, "s.json")
    assert clue in str(e.value)
    s = summary(["--model", "m.om", "--batchsize", " 8"], [0.4, 0.5], 8)
    s["batchsize"] = 8.0
    assert aisformat.summary_batch_size(s, "s.json") == 8


@pytest.mark.parametrize("value", ["8.0", "eight", "", 8.5, True, [8]])
def test_a_batch_size_clue_that_is_no_integer_is_refused(value):
    s = summary(["--model", "m_bs8.om"], [0.4, 0.5], 8)
    if isinstance(value, str):
        s["args"] += ["--batchsize", value]
    else:
        s["batchsize"] = value
    with pytest.raises(IngestError, match="is not a batch size") as e:
        aisformat.summary_batch_size(s, "s.json")
    assert "s.json" in str(e.value)


def test_the_last_bs_of_a_name_is_its_batch_size():
    s = summary(["--model", "resnet_bs16_v2_bs4.om", "--batchsize", "4"], [0.4, 0.5], 4)
    assert aisformat.summary_batch_size(s, "resnet_bs8_result_bs4_summary.json") == 4
