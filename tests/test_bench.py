"""ais_bench-layout inference: batching, padding, file formats, summary, statistics."""
import json

import numpy as np
import pytest

from zoorepro.backends import bench

SHAPE = (224, 224, 3)     # the test inputs: what the demo recipe's .bin holds
BIN = 150528


def run_folder(*args, **kwargs):
    """bench.run_folder over this file's inputs (``SHAPE``)."""
    return bench.run_folder(*args, shape=SHAPE, **kwargs)


class Recorder:
    """A tiny backend: logits encode which input (first pixel value) each slot saw."""
    name = "recorder"

    def __init__(self):
        self.calls = []

    def infer(self, batch):
        self.calls.append(batch[:, 0, 0, 0].tolist())
        out = np.zeros((batch.shape[0], 1000), np.float32)
        out[np.arange(batch.shape[0]), batch[:, 0, 0, 0].astype(int)] = 1.5
        return out

    def info(self):
        return {"backend": "recorder", "device": "cpu: test", "threads": 1}


def make_bins(folder, n, names=None):
    folder.mkdir(parents=True, exist_ok=True)
    names = names or [f"img{i}" for i in range(1, n + 1)]
    for i, name in enumerate(names, 1):
        (folder / f"{name}.bin").write_bytes(bytes([i]) * BIN)
    return names


def test_batches_padding_and_natural_order(tmp_path):
    make_bins(tmp_path / "in", 7, [f"img{i}" for i in (1, 2, 3, 4, 5, 6, 10)])
    (tmp_path / "in" / "notes.txt").write_text("stray")
    be = Recorder()
    s = run_folder(be, tmp_path / "in", tmp_path / "out", "result_bs4", 4, "TXT", warmup=0,
                         progress=False)
    # natural sort keeps img10 last; the last batch is padded with its own first file
    assert be.calls == [[1, 2, 3, 4], [5, 6, 7, 5]]
    outs = sorted(p.name for p in (tmp_path / "out" / "result_bs4").iterdir())
    assert len(outs) == 7 and "img10_0.txt" in outs          # padding outputs dropped
    assert s["padding"] == 1 and s["images"] == 7 and s["foreign_files"] == ["notes.txt"]
    summary = json.loads((tmp_path / "out" / "result_bs4_summary.json").read_text())
    for key in ("filesinfo", "args", "NPU_compute_time", "H2D_latency", "D2H_latency", "throughput",
                "npu_compute_time_list", "pid", "backend", "device"):
        assert key in summary
    st = summary["NPU_compute_time"]
    assert set(st) >= {"min", "max", "mean", "median", "percentile(99%)", "count"}
    assert st["count"] == 2
    assert summary["throughput"] == pytest.approx(1000 * 4 / st["mean"])
    assert summary["filesinfo"]["1"]["outfiles"][-1].endswith("img10_0.txt")


def test_txt_format_is_ais_bench(tmp_path):
    make_bins(tmp_path / "in", 1)
    run_folder(Recorder(), tmp_path / "in", tmp_path / "out", "r", 1, "TXT", 0, False)
    text = (tmp_path / "out" / "r" / "img1_0.txt").read_text()
    assert text.endswith(" \n") and text.count("\n") == 1
    vals = text.split()
    assert len(vals) == 1000 and vals[0] == "0.000000" and vals[1] == "1.500000"


@pytest.mark.parametrize("fmt", ["NPY", "BIN"])
def test_npy_and_bin_outputs(tmp_path, fmt):
    make_bins(tmp_path / "in", 3)
    run_folder(Recorder(), tmp_path / "in", tmp_path / "out", "r", 2, fmt, 0, False)
    p = tmp_path / "out" / "r" / f"img2_0.{fmt.lower()}"
    arr = np.load(p) if fmt == "NPY" else np.fromfile(p, np.float32)
    assert arr.reshape(-1).argmax() == 2


def test_wrong_size_bin_is_named(tmp_path):
    make_bins(tmp_path / "in", 2)
    (tmp_path / "in" / "img2.bin").write_bytes(b"\0" * 100)
    with pytest.raises(Exception, match="img2.bin: 100 bytes, expected 150528"):
        run_folder(Recorder(), tmp_path / "in", tmp_path / "out", "r", 1, "TXT", 0, False)


def test_time_stats_on_known_list():
    st = bench.time_stats([1.0, 2.0, 3.0, 4.0, 10.0])
    assert st["min"] == 1 and st["max"] == 10 and st["mean"] == 4 and st["median"] == 3
    assert st["percentile(99%)"] == pytest.approx(9.76)   # numpy linear interpolation
    assert st["p90"] == pytest.approx(7.6) and st["count"] == 5
    assert bench.time_stats([])["count"] == 0


def test_throughput_formula():
    assert bench.throughput(8, 0.376) == pytest.approx(21276.6, rel=1e-4)
    assert bench.throughput(1, None) is None


def test_measure_validity_rules():
    class Steady(Recorder):
        def infer(self, batch):
            return np.zeros((batch.shape[0], 1000), np.float32)
    samples = (np.arange(3, dtype=np.uint8)[:, None, None, None]
               * np.ones((3, 224, 224, 3), np.uint8))
    s = bench.SweepSettings((1, 4), iterations=5, min_seconds=0.0, warmup=1)
    recs = bench.sweep(Steady(), samples, s)
    assert [r["batch_size"] for r in recs] == [1, 4]
    assert all(r["iterations"] >= 5 for r in recs)
    assert recs[0]["throughput"] == pytest.approx(1000 / recs[0]["mean_ms"])
    # cycling real images: batch of 4 from 3 samples wraps around
    assert bench.cycled_batch(samples, 4)[:, 0, 0, 0].tolist() == [0, 1, 2, 0]


def test_noisy_timings_are_marked_invalid():
    steady = bench.time_stats([10.0] * 20)
    noisy = bench.time_stats([10.0] * 15 + [30.0] * 5)     # p90 = 30, median = 10
    assert bench.validity_problems(steady) == []
    assert bench.validity_problems(noisy) == ["p90/median 3.00 > 1.5"]

    class Jittery(Recorder):
        def __init__(self):
            super().__init__()
            self.n = 0

        def infer(self, batch):
            self.n += 1
            import time
            time.sleep(0.02 if self.n % 4 == 0 else 0.001)
            return np.zeros((batch.shape[0], 1000), np.float32)
    samples = np.zeros((2, 224, 224, 3), np.uint8)
    rec = bench.measure(Jittery(), samples, 1, bench.SweepSettings((1,), iterations=20, warmup=0))
    assert rec["valid"] is False and rec["validity"].startswith("p90/median")


def test_subset_of_a_shared_input_folder(tmp_path):
    make_bins(tmp_path / "in", 5)
    be = Recorder()
    files = [tmp_path / "in" / "img2.bin", tmp_path / "in" / "img4.bin"]
    s = run_folder(be, tmp_path / "in", tmp_path / "out", "r", 2, "TXT", 0, False,
                         files=files)
    assert be.calls == [[2, 4]]
    assert (sorted(p.name for p in (tmp_path / "out" / "r").iterdir())
            == ["img2_0.txt", "img4_0.txt"])
    assert s["other_inputs"] == 3


class Replicated(Recorder):
    """Replicas writing into one shared call log, each slowed a little so all run; the batch
    holding image 1 is slowed much more, so later batches finish before the first."""
    def __init__(self, log=None, delay=0.0):
        super().__init__()
        self.log = log if log is not None else []
        self.delay = delay

    def auto_streams(self):
        return 2

    def replicas(self, n):
        return [Replicated(self.log, 0.002) for _ in range(n)]

    def infer(self, batch):
        import threading
        import time
        time.sleep(0.2 if self.delay and 1 in batch[:, 0, 0, 0] else self.delay)
        self.log.append((threading.current_thread().name, int(batch[0, 0, 0, 0])))
        return super().infer(batch)


def test_streams_write_the_same_outputs_in_order(tmp_path):
    make_bins(tmp_path / "in", 11)
    one = run_folder(Recorder(), tmp_path / "in", tmp_path / "o1", "r", 2, "TXT", 0, False)
    be = Replicated()
    two = run_folder(be, tmp_path / "in", tmp_path / "o2", "r", 2, "TXT", 0, False,
                           streams=0)                   # 0: the backend's own choice (2)
    assert two["streams"] == 2 and len({t for t, _ in be.log}) == 2   # both streams did work
    assert be.log[0][1] != 1        # the slow first batch finished after others ...
    for p in (tmp_path / "o1" / "r").iterdir():
        assert (tmp_path / "o2" / "r" / p.name).read_bytes() == p.read_bytes()
    assert len(list((tmp_path / "o2" / "r").iterdir())) == 11
    # ... yet filesinfo keeps batch order whatever stream finished first
    assert [v["infiles"] for v in two["filesinfo"].values()] == \
        [v["infiles"] for v in one["filesinfo"].values()]
    assert list(two["filesinfo"]) == list(range(6))
    assert two["NPU_compute_time"]["count"] == 6
    # summary throughput: ais_bench's formula per stream, summed (as over devices)
    assert two["throughput"] == pytest.approx(sum(two["stream_throughputs"]))
    assert "2 concurrent streams" in two["throughput_definition"]
    assert one["streams"] == 1 and "concurrent" not in one["throughput_definition"]


def test_stream_throughput_sums_streams():
    assert bench.stream_throughput(4, [[2.0, 2.0], [4.0]]) == pytest.approx(2000 + 1000)
    assert bench.stream_throughput(4, [[], []]) is None


def test_a_failing_stream_stops_the_run(tmp_path):
    make_bins(tmp_path / "in", 20)

    class Failing(Replicated):
        def replicas(self, n):
            reps = super().replicas(n)
            reps[1].infer = lambda batch: (_ for _ in ()).throw(RuntimeError("boom"))
            return reps
    with pytest.raises(RuntimeError, match="boom"):
        run_folder(Failing(), tmp_path / "in", tmp_path / "o", "r", 1, "TXT", 0, False,
                         streams=2)
    # the healthy stream stops after the batch it was on (it takes 0.2 s on image 1 and
    # 2 ms on the others): without the stop it would write all 19 other images
    assert len(list((tmp_path / "o" / "r").iterdir())) <= 2


def test_onnxruntime_streams_give_byte_identical_outputs(tmp_path, onnx_models, demo_batch):
    from zoorepro import backends
    for i, img in enumerate(demo_batch):
        (tmp_path / "in").mkdir(exist_ok=True)
        img.tofile(tmp_path / "in" / f"img{i}.bin")
    be = backends.create("onnxruntime", backends.Artifacts(aipp_onnx=str(onnx_models[1])),
                         device="cpu", threads=2)
    for streams in (1, 2):
        run_folder(be, tmp_path / "in", tmp_path / f"s{streams}", "r", 1, "TXT", 1, False,
                         streams=streams)
    one = sorted((tmp_path / "s1" / "r").iterdir())
    assert len(one) == 8
    for p in one:
        assert (tmp_path / "s2" / "r" / p.name).read_bytes() == p.read_bytes()


# ------------------------------------------------------------- timing definitions
class DeviceTimed:
    """A fake backend that separates compute from copies, as torch on CUDA does."""
    name = "fake"

    def infer(self, batch):
        return np.zeros((batch.shape[0], 1000), np.float32)

    def info(self):
        return {"backend": "fake", "device": "cuda: Fake GPU", "precision": "fp16"}

    def measure_device(self, batch, iterations, min_seconds, warmup):
        return {"times": [2.0] * iterations, "seconds": 0.1, "h2d_ms": [0.5, 0.5],
                "d2h_ms": [0.25, 0.25]}


def test_device_timing_keeps_copies_apart_and_says_so():
    samples = np.zeros((2, 224, 224, 3), np.uint8)
    rec = bench.measure(DeviceTimed(), samples, 8, bench.SweepSettings((8,), 5, 0.0, 1, "device"))
    assert rec["timing"] == "device" and rec["mean_ms"] == 2.0 and rec["throughput"] == 4000.0
    assert rec["h2d_mean_ms"] == 0.5 and rec["d2h_mean_ms"] == 0.25
    assert "device events" in rec["throughput_definition"]
    call = bench.measure(DeviceTimed(), samples, 8, bench.SweepSettings((8,), 3, 0.0, 1, "call"))
    assert call["timing"] == "call" and call["h2d_mean_ms"] is None
    assert "with the host-device copies" in call["throughput_definition"]


def test_on_the_cpu_the_call_is_the_compute():
    class Cpu(DeviceTimed):
        def info(self):
            return {"backend": "fake", "device": "cpu: X"}

        def measure_device(self, *a):
            return None
    samples = np.zeros((1, 224, 224, 3), np.uint8)
    rec = bench.measure(Cpu(), samples, 1, bench.SweepSettings((1,), 3, 0.0, 0, "device"))
    assert rec["timing"] == "device" and rec["iterations"] == 3 and rec["h2d_mean_ms"] is None


def test_a_batch_that_cannot_fit_in_memory_stops_before_running(tmp_path, monkeypatch):
    """batch_sizes [.., 4096] on a machine with 1 GiB free: a clear error before the sweep's
    first batch (and before the accuracy run), not a process dying while it allocates."""
    from zoorepro.errors import ResourceError
    from zoorepro import host
    monkeypatch.setattr(host, "available_memory", lambda: 1 << 30)
    b = Recorder()
    samples = np.zeros((2, 224, 224, 3), np.uint8)
    with pytest.raises(ResourceError, match=r"batch size 4096 x 1 stream\(s\) needs about 20.1 GiB "
                                            r"of memory, 1.0 GiB is available; set smaller"):
        bench.sweep(b, samples, bench.SweepSettings((1, 4096), iterations=1))
    assert b.calls == []                              # nothing ran, not even batch 1
    bench.sweep(b, samples, bench.SweepSettings((1, 8), iterations=1))     # what fits runs
    make_bins(tmp_path / "in", 3)
    with pytest.raises(ResourceError, match="batch size 1000"):
        run_folder(b, tmp_path / "in", tmp_path / "out", "result_bs1000", 1000,
                         progress=False)


# ------------------------------------------------------------- how busy the host was
def _sample(wall, busy, own, load=1.0, cores=4):
    from zoorepro import hostload
    return hostload.Sample(wall=wall, load=load, system_busy=busy, own=own, cores=cores)


def test_others_cpu_share_arithmetic():
    """2 s on 4 cores is 8 core-seconds; the system was busy 5 s, this process 2 s of them:
    others took 3 / 8 of the machine."""
    from zoorepro import hostload
    before, after = _sample(10.0, 100.0, 20.0), _sample(12.0, 105.0, 22.0)
    assert hostload.others_share(before, after) == 0.375
    assert hostload.others_share(_sample(0, 10, 5), _sample(2, 11, 7)) == 0.0   # never < 0
    assert hostload.others_share(_sample(0, 0, 0), _sample(1, 9, 0)) == 1.0     # never > 1
    assert hostload.others_share(before, _sample(10.1, 101, 20)) is None        # too short
    assert hostload.others_share(_sample(0, None, None), _sample(2, None, None)) is None
    assert hostload.is_busy(0.375, 1.0, 1.0, 4) is True                  # above 25 %
    assert hostload.is_busy(0.25, 1.0, 1.0, 4) is False
    assert hostload.is_busy(0.1, 5.0, 6.0, 4) is True                    # load above cores
    assert hostload.is_busy(0.1, 3.0, 6.0, 4) is False                   # ... before and after
    assert hostload.is_busy(None, 11.0, 11.0, 8) is True
    assert hostload.is_busy(None, None, None, 8) is None


def test_host_load_from_fake_psutil_numbers(monkeypatch):
    """The Window reads psutil's system-wide and per-process times and the load average."""
    from collections import namedtuple
    from zoorepro import hostload
    Cpu = namedtuple("Cpu", "user nice system idle iowait irq softirq steal guest")
    Own = namedtuple("Own", "user system children_user children_system")
    cpus = iter([Cpu(50, 0, 10, 900, 5, 0, 0, 0, 7), Cpu(55, 1, 12, 903, 5, 0.5, 0.5, 1, 9)])
    owns = iter([Own(3, 1, 0, 0), Own(5, 1.5, 0.5, 0)])
    loads = iter([11.2, 10.8])

    class FakePsutil:
        def cpu_times(self):
            return next(cpus)

        def Process(self):
            return type("P", (), {"cpu_times": lambda _: next(owns)})()

        def getloadavg(self):
            return (next(loads), 0.0, 0.0)

        def cpu_count(self, logical=True):
            return 8
    clock = iter([100.0, 101.0])
    monkeypatch.setattr(hostload, "_now", lambda: next(clock))
    with hostload.Window(FakePsutil()) as w:
        pass
    # busy: 5 + 1 + 2 + 0.5 + 0.5 + 1 (steal; guest is inside user) = 10 s; this process:
    # 2 + 0.5 + 0.5 = 3 s; others 7 s of 1 s x 8 cores
    assert w.fields() == {"load_before": 11.2, "load_after": 10.8, "others_cpu_share": 0.875,
                          "host_cores": 8, "busy": True}


def test_a_real_point_records_the_host_load():
    import psutil
    from zoorepro.run import records

    class Steady(Recorder):
        def infer(self, batch):
            return np.zeros((batch.shape[0], 1000), np.float32)
    samples = np.zeros((1, 224, 224, 3), np.uint8)
    rec = bench.measure(Steady(), samples, 1, bench.SweepSettings((1,), 3, 0.3, 0))
    assert rec["host_cores"] == psutil.cpu_count(logical=True)     # the source it names
    assert rec["load_before"] >= 0
    assert 0 <= rec["others_cpu_share"] <= 1 and isinstance(rec["busy"], bool)
    row = records.BenchRecord(definition="d", records=[{**rec, "throughput_definition": "d"}])
    assert row.records[0].busy == rec["busy"]


class _Bar:
    """A stand-in for tqdm that records what the sweep showed."""

    def __init__(self, total, desc, unit="img"):
        self.total, self.desc, self.unit, self.n = total, desc, unit, 0
        self.postfix, self.refreshed, self.closed = [], 0, False

    def set_postfix_str(self, s):
        self.postfix.append(s)

    def update(self, k):
        self.n += k

    def refresh(self):
        self.refreshed += 1

    def close(self):
        self.closed = True


def test_the_sweep_shows_one_step_per_batch_size(monkeypatch):
    bars = []
    monkeypatch.setattr(bench, "progress_bar", lambda *a, **k: bars.append(_Bar(*a, **k))
                        or bars[-1])
    monkeypatch.setattr(bench, "measure", lambda backend, samples, bs, s: {"batch_size": bs})
    monkeypatch.setattr(bench, "check_memory", lambda *a: None)
    s = bench.SweepSettings((1, 4, 8), 1, 0.0, 0, "call")
    out = bench.sweep(object(), np.zeros((1, 224, 224, 3), np.uint8), s)
    assert [r["batch_size"] for r in out] == [1, 4, 8]
    (bar,) = bars
    assert (bar.total, bar.n, bar.unit, bar.closed) == (3, 3, "batch size", True)
    assert bar.postfix == ["batch size 1", "batch size 4", "batch size 8"]


def test_the_heartbeat_redraws_a_bar_during_one_long_step():
    import time

    from zoorepro import host
    bar = _Bar(1, "x")
    with host.heartbeat(bar, every=0.05):
        time.sleep(0.4)
    seen = bar.refreshed
    assert seen >= 3
    time.sleep(0.2)
    assert bar.refreshed == seen            # stopped with the step
    with host.heartbeat(None):              # no bar (-q): nothing to do
        pass
