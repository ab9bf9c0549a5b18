"""The ais_bench backend: the recipe's command lines (golden), lazy import, and the
calls it makes -- exercised against a FAKE ais_bench package (no NPU here)."""
import json
import sys

import numpy as np
import pytest

from zoorepro import aisbench, backends

from npu_fixtures import write_fake_ais_bench

# The recipe's README commands with ${bs}=8 and ${save_dir}=prep_dataset.
RECIPE_ACCURACY = ("python3 -m ais_bench --model=squeezenet1_1_bs8.om  --batchsize=8 "
                   "--input prep_dataset --output result --output_dirname result_bs8 --outfmt TXT")
RECIPE_PERF = "python3 -m ais_bench --model=squeezenet1_1_bs8.om --loop=50 --batchsize=8"


def squash(s: str) -> str:
    return " ".join(s.split())


def test_accuracy_argv_golden():
    argv = aisbench.accuracy_argv("squeezenet1_1_bs8.om", 8, "prep_dataset", "result",
                                  device_id=0)
    assert aisbench.shell_line(argv) == (
        "python3 -m ais_bench --model=squeezenet1_1_bs8.om --batchsize=8 --input prep_dataset "
        "--output result --output_dirname result_bs8 --outfmt TXT --device 0")
    assert aisbench.shell_line(argv).startswith(squash(RECIPE_ACCURACY) + " ")


@pytest.mark.parametrize("bs", [1, 4, 8, 16, 32, 64])
def test_perf_argv_golden(bs):
    argv = aisbench.perf_argv(f"squeezenet1_1_bs{bs}.om", bs, device_id=1)
    assert aisbench.shell_line(argv) == (
        f"python3 -m ais_bench --model=squeezenet1_1_bs{bs}.om --loop=50 --batchsize={bs} --device 1")
    with_out = aisbench.perf_argv(f"squeezenet1_1_bs{bs}.om", bs, device_id=1, output="perf")
    assert aisbench.shell_line(with_out) == (
        f"python3 -m ais_bench --model=squeezenet1_1_bs{bs}.om --loop=50 --batchsize={bs} "
        f"--device 1 --output perf --output_dirname perf_bs{bs}")
    if bs == 8:
        assert aisbench.shell_line(argv).startswith(RECIPE_PERF + " ")


def test_registered_and_not_installed_message(monkeypatch):
    assert "ais_bench" in backends.names()
    monkeypatch.setitem(sys.modules, "ais_bench", None)   # import ais_bench -> ImportError
    with pytest.raises(backends.BackendUnavailable) as e:
        backends.create("ais_bench", backends.Artifacts(om_models={1: "x.om"}), device_id=0)
    msg = str(e.value)
    for needle in ("ais_bench is not installed", "aclruntime", "ais_bench' from Ascend/tools",
                   "ais-bench_workload/tool/ais_bench", "CANN", "set_env.sh"):
        assert needle in msg
    assert not aisbench.available()


@pytest.fixture
def fake_ais(tmp_path, monkeypatch):
    """The FAKE ais_bench package importable in-process and by `python -m ais_bench`."""
    root = write_fake_ais_bench(tmp_path / "fakepkg")
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("PYTHONPATH", str(root))
    for name in [m for m in sys.modules if m == "ais_bench" or m.startswith("ais_bench.")]:
        monkeypatch.delitem(sys.modules, name)
    yield root
    for name in [m for m in sys.modules if m == "ais_bench" or m.startswith("ais_bench.")]:
        del sys.modules[name]


def test_infer_uses_infersession_per_batch_size(tmp_path, fake_ais):
    oms = {}
    for bs in (1, 4):
        oms[bs] = tmp_path / f"squeezenet1_1_bs{bs}.om"
        oms[bs].write_bytes(b"")
    b = backends.create("ais_bench", backends.Artifacts(om_models={k: str(v) for k, v in oms.items()}),
                        device_id=3, soc_version="Ascend310P3", cann_version="6.0.RC1")
    assert b.device == "npu: Ascend310P3 (CANN 6.0.RC1)"
    out = b.infer(np.zeros((4, 224, 224, 3), np.uint8))
    assert out.shape == (4, 1000) and out.dtype == np.float32 and out.argmax(1).tolist() == [7] * 4
    from ais_bench.infer.interface import CALLS
    assert CALLS[:2] == [("init", 3, str(oms[4])), ("infer", (4, 224, 224, 3), "uint8")]
    with pytest.raises(backends.BackendUnavailable, match="squeezenet1_1_bs2.om"):
        b.infer(np.zeros((2, 224, 224, 3), np.uint8))
    with pytest.raises(backends.BackendUnavailable, match=r"have 1, 4\).*squeezenet1_1_bs8.om"):
        b.run_perf(8, tmp_path / "perf")      # the CLI paths name the missing OM the same way
    info = b.info()
    assert info["backend"] == "ais_bench" and info["device_id"] == 3
    b.close()


def test_missing_om_is_unavailable(tmp_path, fake_ais):
    with pytest.raises(backends.BackendUnavailable, match="ATC"):
        backends.create("ais_bench", backends.Artifacts())
    with pytest.raises(backends.BackendUnavailable, match="not found"):
        backends.create("ais_bench", backends.Artifacts(om_models={1: str(tmp_path / "no.om")}),
                        soc_version="Ascend310P3")


def test_cli_runs_through_subprocess(tmp_path, fake_ais):
    om = tmp_path / "squeezenet1_1_bs1.om"
    om.write_bytes(b"")
    inputs = tmp_path / "prep_dataset"
    inputs.mkdir()
    for n in ("img_10", "img_2", "img_1"):
        (inputs / f"{n}.bin").write_bytes(bytes(150528))
    b = backends.create("ais_bench", backends.Artifacts(om_models={1: str(om)}),
                        device_id=0, soc_version="Ascend310P3")
    out = tmp_path / "result"
    s = b.run_accuracy(inputs, out, 1)
    assert sorted(p.name for p in (out / "result_bs1").iterdir()) == [
        "img_10_0.txt", "img_1_0.txt", "img_2_0.txt"]
    assert s["args"][1:] == aisbench.accuracy_argv(str(om), 1, str(inputs), str(out),
                                                   device_id=0)[3:]
    p = b.run_perf(1, tmp_path / "perf")
    assert p["NPU_compute_time"]["count"] == 50
    assert json.loads((tmp_path / "perf" / "perf_bs1_summary.json").read_text())["throughput"] > 0
    b.artifacts.om_models[1] = str(tmp_path / "gone.om")
    with pytest.raises(aisbench.AisBenchError, match="see .*result_bs1.log"):
        b.run_accuracy(inputs, tmp_path / "r2", 1)


@pytest.mark.parametrize("text,want", [
    ("package_name=Ascend-cann-toolkit\nversion=6.0.RC1\narch=x86_64\n", "6.0.RC1"),
    ("Version=7.0.0\n", "7.0.0"),
    ("6.3.RC2\n", "6.3.RC2"),
    ("", ""),
])
def test_parse_cann_version(text, want):
    assert aisbench.parse_cann_version(text) == want


def test_npu_device_name():
    assert aisbench.npu_device_name("310P3", "6.0.RC1") == "npu: Ascend310P3 (CANN 6.0.RC1)"
    assert aisbench.npu_device_name(None, None) == \
        "npu: Ascend (chip not recorded) (CANN version not recorded)"
