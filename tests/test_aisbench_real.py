"""zoorepro against ais_bench's REAL Python front end (``../shared/third_party/ais_bench``),
with only its C++ runtime replaced by ``tests/standin/aclruntime``.  Every accuracy below is
the exact answer the stand-in's logits encode (see ``ais_real.py``)."""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ais_real as ar
from ais_real import EXPECTED, need_ais
from conftest import small_params
from zoorepro import recipebook

SQ = recipebook.load("squeezenet1_1")     # the recipe the stand-in's models follow

pytestmark = [pytest.mark.npu, need_ais]


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    """A work folder with ten preprocessed demo images and designed labels."""
    d = tmp_path_factory.mktemp("aishost")
    bins = ar.write_bins(d / "prep")
    labels = ar.designed_labels(d / "val_label.txt")
    return d, bins, labels


def ingest_metrics(result_dir, labels, out, **kw):
    from zoorepro.ascend import ingest
    run = ingest.ingest(result_dir, labels, out, **kw)
    return run, json.loads((run / "metrics.json").read_text())


def records(run: Path, name: str):
    return json.loads((run / "records" / f"{name}.json").read_text())


# --------------------------------------------------------- accuracy runs (CLI)
@pytest.mark.parametrize("outfmt,dtype", [("TXT", "float32"), ("NPY", "float32"),
                                          ("BIN", "float32"), ("BIN", "float16"),
                                          ("TXT", "float16")])
def test_accuracy_run_formats_score_exactly(host, tmp_path, outfmt, dtype):
    d, bins, labels = host
    model = ar.om(tmp_path / "m_bs4.om", 4, (("class", dtype, 1000),))
    ar.run_ais(["--model", model, "--batchsize", 4, "--input", d / "prep", "--output",
                tmp_path / "res", "--output_dirname", "result_bs4", "--outfmt", outfmt],
               tmp_path, ar.env(tmp_path))
    out = tmp_path / "res" / "result_bs4"
    files = sorted(out.iterdir())
    assert len(files) == 10                      # the padding of the last batch is not saved
    if outfmt == "BIN":
        assert {f.stat().st_size for f in files} == {1000 * np.dtype(dtype).itemsize}
    run, m = ingest_metrics(out, labels, tmp_path / "reports")
    assert m["images"] == 10 and ar.scores(m) == EXPECTED
    inf = records(run, "infer")["ais_bench"]
    assert inf["accuracy_batch_size"] == 4 and inf["compute_throughput"] > 0


def test_batch16_pads_the_only_batch(host, tmp_path):
    d, bins, labels = host
    model = ar.om(tmp_path / "m_bs16.om", 16)
    proc = ar.run_ais(["--model", model, "--batchsize", 16, "--input", d / "prep", "--output",
                       tmp_path / "res", "--output_dirname", "result_bs16", "--outfmt", "TXT"],
                      tmp_path, ar.env(tmp_path))
    assert "runcount:1" in proc.stdout
    out = tmp_path / "res" / "result_bs16"
    assert len(list(out.iterdir())) == 10
    # the real writer's TXT: one line of '%f ' values for each image
    first = (out / f"{bins[0].stem}_0.txt").read_text()
    assert first.endswith(" \n") and first.count("\n") == 1
    assert first.split() == ["%f" % v for v in ar.expected_scores(bins[0])]
    _, m = ingest_metrics(out, labels, tmp_path / "reports")
    assert ar.scores(m) == EXPECTED


def test_two_output_model_scores_the_first(host, tmp_path):
    d, bins, labels = host
    model = ar.om(tmp_path / "m_bs2.om", 2, (("class", "float32", 1000), ("aux", "float32", 1000)))
    ar.run_ais(["--model", model, "--batchsize", 2, "--input", d / "prep", "--output",
                tmp_path / "res", "--output_dirname", "result_bs2", "--outfmt", "NPY"],
               tmp_path, ar.env(tmp_path))
    out = tmp_path / "res" / "result_bs2"
    assert len(list(out.glob("*_1.npy"))) == 10 and len(list(out.glob("*_0.npy"))) == 10
    run, m = ingest_metrics(out, labels, tmp_path / "reports")
    assert ar.scores(m) == EXPECTED
    assert not any("not ais_bench outputs" in w for w in records(run, "ingest")["read_warnings"])


def test_no_output_dirname_gives_a_timestamped_folder(host, tmp_path):
    d, bins, labels = host
    model = ar.om(tmp_path / "m_bs1.om", 1)
    ar.run_ais(["--model", model, "--input", d / "prep", "--output", tmp_path / "res",
                "--outfmt", "TXT"], tmp_path, ar.env(tmp_path))
    (stamp,) = [p for p in (tmp_path / "res").iterdir() if p.is_dir()]
    assert (tmp_path / "res" / f"{stamp.name}_summary.json").is_file()
    run, m = ingest_metrics(stamp, labels, tmp_path / "reports")
    assert ar.scores(m) == EXPECTED
    inf = records(run, "infer")["ais_bench"]
    assert inf["accuracy_batch_size"] == 1 and inf["compute_throughput"] > 0


def test_loop_summaries_become_sweep_records(host, tmp_path):
    d, bins, labels = host
    env = ar.env(tmp_path)
    summaries = []
    for bs in (1, 4):
        model = ar.om(tmp_path / f"m_bs{bs}.om", bs)
        ar.run_ais([f"--model={model}", "--loop=5", f"--batchsize={bs}", "--output",
                    tmp_path / "perf", "--output_dirname", f"perf_bs{bs}"], tmp_path, env)
        summaries.append(tmp_path / "perf" / f"perf_bs{bs}_summary.json")
    ar.run_ais(["--model", tmp_path / "m_bs4.om", "--batchsize", 4, "--input", d / "prep",
                "--output", tmp_path / "res", "--output_dirname", "result_bs4"], tmp_path, env)
    run, m = ingest_metrics(tmp_path / "res" / "result_bs4", labels, tmp_path / "reports",
                            summaries=summaries)
    bench = records(run, "bench")["records"]
    assert [b["batch_size"] for b in bench] == [1, 4]
    for b, path in zip(bench, summaries):
        s = json.loads(path.read_text())
        assert b["iterations"] == 5 == s["NPU_compute_time"]["count"]
        assert b["throughput"] == pytest.approx(s["throughput"], rel=1e-12)
        assert "zero-filled input" in b["throughput_definition"]


def test_pipeline_with_two_threads(host, tmp_path):
    """--pipeline --threads 2: the summary holds [start, end] pairs and only mean/count."""
    d, bins, labels = host
    model = ar.om(tmp_path / "m_bs1.om", 1)
    ar.run_ais(["--model", model, "--input", d / "prep", "--output", tmp_path / "res",
                "--output_dirname", "result_bs1", "--outfmt", "TXT", "--pipeline", "1",
                "--threads", "2"], tmp_path, ar.env(tmp_path))
    s = json.loads((tmp_path / "res" / "result_bs1_summary.json").read_text())
    assert set(s["NPU_compute_time"]) == {"mean", "count"}
    assert all(len(t) == 2 for t in s["npu_compute_time_list"])
    assert s["NPU_compute_time"]["count"] == 10 and s["filesinfo"] == {}
    # the same mode as a pure-inference sweep point
    ar.run_ais(["--model", model, "--loop", "7", "--output", tmp_path / "perf",
                "--output_dirname", "perf_bs1", "--pipeline", "1", "--threads", "2"], tmp_path,
               ar.env(tmp_path))
    perf = tmp_path / "perf" / "perf_bs1_summary.json"
    p = json.loads(perf.read_text())
    run, m = ingest_metrics(tmp_path / "res" / "result_bs1", labels, tmp_path / "reports",
                            summaries=[perf])
    assert ar.scores(m) == EXPECTED
    inf = records(run, "infer")["ais_bench"]
    assert inf["compute_throughput"] == pytest.approx(s["throughput"], rel=1e-9)
    assert "union of the [start, end] intervals" in inf["throughput_definition"]
    (b,) = records(run, "bench")["records"]
    assert b["throughput"] == pytest.approx(p["throughput"], rel=1e-9)
    assert b["iterations"] == p["NPU_compute_time"]["count"]
    # the accuracy run's summary is no sweep point: it was taken as one
    from zoorepro.errors import IngestError
    with pytest.raises(IngestError, match="accuracy run's summary, not a pure-inference"):
        ingest_metrics(tmp_path / "res" / "result_bs1", labels, tmp_path / "reports",
                       summaries=[tmp_path / "res" / "result_bs1_summary.json"])


@pytest.mark.parametrize("divide", [True, False])
def test_multi_device_run(host, tmp_path, divide):
    d, bins, labels = host
    model = ar.om(tmp_path / "m_bs2.om", 2)
    args = ["--model", model, "--batchsize", 2, "--input", d / "prep", "--output",
            tmp_path / "res", "--output_dirname", "result_bs2", "--outfmt", "TXT",
            "--device", "0,1"]
    # ais_bench's processes race to create the output folder (makedirs_safe: exists, then
    # mkdir): made beforehand, mode 0750, as the kit's script does
    (tmp_path / "res" / "result_bs2").mkdir(parents=True)
    for p in (tmp_path / "res", tmp_path / "res" / "result_bs2"):
        os.chmod(p, 0o750)
    proc = ar.run_ais(args + (["--divide_input", "1"] if divide else []), tmp_path,
                      ar.env(tmp_path))
    out = tmp_path / "res" / "result_bs2"
    shards = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert shards == ["device0_0", "device1_1"]
    run, m = ingest_metrics(out, labels, tmp_path / "reports")
    assert m["images"] == 10 and ar.scores(m) == EXPECTED
    inf = records(run, "infer")["ais_bench"]
    per = inf["devices"]
    assert [p["device_id"] for p in per] == [0, 1]
    assert sum(p["images"] for p in per) == (10 if divide else 20)
    device_tp = [json.loads((out / f"{s}_summary.json").read_text())["throughput"] for s in shards]
    assert inf["compute_throughput"] == pytest.approx(sum(device_tp), rel=1e-9)
    summed = float(proc.stdout.split("summary throughput:")[1].split()[0])
    assert inf["compute_throughput"] == pytest.approx(summed, rel=1e-9)   # ais_bench's own sum
    warns = records(run, "ingest")["read_warnings"]
    if not divide:
        assert any("more than one device" in w and "agreed on every one" in w for w in warns)


# ------------------------------------------------- the other recipes' command forms
@pytest.mark.parametrize("name", ["resnet50", "mobilenet_v2"])
def test_other_recipes_command_forms_run_on_the_real_front_end(host, tmp_path, name):
    """resnet50's and mobilenet_v2's README forms ('--model X' with a space; resnet50's
    accuracy line has no --batchsize: ais_bench reads it from the model), as built from their
    recipe.yaml, are accepted by the real client; ingest reads the batch size from the OM
    and folder names."""
    from zoorepro import recipebook
    from zoorepro.ascend import aiscommands
    d, bins, labels = host
    recipe = recipebook.load(name)
    model = ar.om(tmp_path / f"{recipe.om_name(4)}.om", 4)
    acc = aiscommands.accuracy_argv(recipe, str(model), 4, str(d / "prep"),
                                    str(tmp_path / "res"), device_id=0)
    assert acc[3:5] == ["--model", str(model)] and ("--batchsize" in acc) == (name != "resnet50")
    ar.run_ais(acc[3:], tmp_path, ar.env(tmp_path))
    perf = aiscommands.perf_argv(recipe, str(model), 4, loop=5, device_id=0,
                                 output=str(tmp_path / "perf"))
    assert perf[3:9] == ["--model", str(model), "--loop", "5", "--batchsize", "4"]
    ar.run_ais(perf[3:], tmp_path, ar.env(tmp_path))
    point = tmp_path / "perf" / "perf_bs4_summary.json"
    acc_summary = json.loads((tmp_path / "res" / "result_bs4_summary.json").read_text())
    assert acc_summary["args"][1:3] == ["--model", str(model)]
    run, m = ingest_metrics(tmp_path / "res" / "result_bs4", labels, tmp_path / "reports",
                            summaries=[point])
    assert m["images"] == 10 and ar.scores(m) == EXPECTED
    assert records(run, "infer")["ais_bench"]["accuracy_batch_size"] == 4
    (b,) = records(run, "bench")["records"]
    assert b["batch_size"] == 4 and b["iterations"] == 5


# --------------------------------------------------------------- the backend
@pytest.fixture
def real_ais_in_process(monkeypatch):
    monkeypatch.syspath_prepend(str(ar.AIS))
    monkeypatch.syspath_prepend(str(ar.STANDIN))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ar.STANDIN), str(ar.AIS)]))
    for name in [m for m in sys.modules if m.split(".")[0] in ("ais_bench", "aclruntime")]:
        monkeypatch.delitem(sys.modules, name)
    yield
    for name in [m for m in sys.modules if m.split(".")[0] in ("ais_bench", "aclruntime")]:
        del sys.modules[name]


def test_backend_infersession_and_teardown(host, tmp_path, real_ais_in_process):
    from zoorepro import backends
    d, bins, labels = host
    oms = {bs: str(ar.om(tmp_path / f"squeezenet1_1_bs{bs}.om", bs)) for bs in (1, 4)}
    b = backends.create("ais_bench", backends.Artifacts(om_models=oms, recipe=SQ), device_id=0,
                        soc_version="Ascend310P3", cann_version="8.0.RC1")
    batch = np.stack([np.fromfile(p, np.uint8).reshape(224, 224, 3) for p in bins[:4]])
    out = b.infer(batch)
    np.testing.assert_array_equal(out, np.stack([ar.expected_scores(p) for p in bins[:4]]))
    b.infer(batch[:1])
    with pytest.raises(backends.BackendUnavailable, match="squeezenet1_1_bs2.om"):
        b.infer(batch[:2])
    with pytest.raises(backends.BackendUnavailable, match=r"have 1, 4\).*squeezenet1_1_bs8.om"):
        b.run_perf(8, tmp_path / "perf")     # the CLI paths name a missing OM the same way
    assert b.info()["device"] == "npu: Ascend310P3 (CANN 8.0.RC1)"
    import aclruntime
    aclruntime.CALLS.clear()
    b.close()
    # ais_bench's teardown: free_resource() on each session, then finalize() once
    assert [c[0] for c in aclruntime.CALLS] == ["free_resource", "free_resource", "finalize"]
    b.close()                                                 # a second close is a no-op
    assert [c[0] for c in aclruntime.CALLS] == ["free_resource", "free_resource", "finalize"]


def test_backend_runs_its_recipes_command_forms(host, tmp_path, real_ais_in_process):
    """The backend runs the recipe it is given (Artifacts.recipe): mobilenet_v2's forms and
    its --loop (1000 unless asked)."""
    from zoorepro import backends, recipebook
    d, bins, labels = host
    recipe = recipebook.load("mobilenet_v2")
    oms = {4: str(ar.om(tmp_path / f"{recipe.om_name(4)}.om", 4))}
    b = backends.create("ais_bench", backends.Artifacts(om_models=oms, recipe=recipe),
                        device_id=0, soc_version="Ascend310P3")
    s = b.run_folder(d / "prep", tmp_path / "results", 4, "TXT")
    p = b.run_perf(4, tmp_path / "results", loop=3)
    with pytest.raises(backends.BackendUnavailable, match=r"build mobilenet_v2_bs8\.om"):
        b.run_perf(8, tmp_path / "results")
    b.close()
    assert s["args"][1:3] == ["--model", oms[4]] and "--batchsize" in s["args"]
    assert p["args"][3:5] == ["--loop", "3"] and p["NPU_compute_time"]["count"] == 3
    _, m = ingest_metrics(tmp_path / "results" / "result_bs4", labels, tmp_path / "reports")
    assert ar.scores(m) == EXPECTED


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_backend_cli_paths_under_umask(host, tmp_path, real_ais_in_process, umask):
    """run_accuracy / run_perf through the real CLI: nothing the backend creates (output and
    log folders) or hands over (inputs, OM) trips ais_bench's permission checks."""
    from zoorepro import backends
    from zoorepro.errors import AisBenchError
    d, bins, labels = host
    old = os.umask(umask)
    try:
        prep = tmp_path / "bin"
        prep.mkdir()
        for p in bins:
            shutil.copyfile(p, prep / p.name)                  # mode from the umask
        oms = {bs: str(tmp_path / f"squeezenet1_1_bs{bs}.om") for bs in (2, 4)}
        for bs, path in oms.items():
            ar.standin().stub_om(path, bs)
        results = tmp_path / "results" / "ais_bench"
        results.mkdir(parents=True)                             # 0755 or 0775: ais_bench
        b = backends.create("ais_bench", backends.Artifacts(om_models=oms, recipe=SQ), device_id=0,
                            soc_version="Ascend310P3")
        s = b.run_folder(prep, results, 2, "TXT")
        p = b.run_perf(4, results, loop=3)
        b.close()
    finally:
        os.umask(old)
    assert s["args"][-2:] == ["--device", "0"] and p["NPU_compute_time"]["count"] == 3
    b.artifacts.om_models[2] = str(tmp_path / "gone.om")
    with pytest.raises(AisBenchError, match="see .*r2_logs/result_bs2.log"):
        b.run_folder(prep, tmp_path / "r2", 2)
    assert (tmp_path / "results" / "ais_bench_logs" / "result_bs2.log").is_file()
    _, m = ingest_metrics(results / "result_bs2", labels, tmp_path / "reports")
    assert ar.scores(m) == EXPECTED


# ------------------------------------------------------------------- the kit
def make_kit(tmp_path, **params):
    from zoorepro import config
    from zoorepro.ascend import kit
    labels = ar.designed_labels(tmp_path / "val_label.txt")
    cfg = config.from_mapping(small_params(tmp_path, label_file=str(labels), max_images=10,
                                           batch_sizes=[1, 4], accuracy_batch_size=4,
                                           **params))
    return kit.make_kit(cfg, tmp_path / "kit", progress=False).parent


@pytest.fixture(scope="module")
def kit_dir(tmp_path_factory):
    return make_kit(tmp_path_factory.mktemp("realkit"))


def cann_set_env(tmp_path: Path) -> Path:
    """A CANN set_env.sh whose toolkit says version 6.0.RC1 (and reads an unset variable)."""
    cann = tmp_path / "cann" / "latest"
    (cann / "x86_64-linux").mkdir(parents=True)
    (cann / "x86_64-linux" / "ascend_toolkit_install.info").write_text(
        "package_name=Ascend-cann-toolkit\nversion=6.0.RC1\n")
    set_env = tmp_path / "cann" / "set_env.sh"
    set_env.write_text(f"export ASCEND_HOME_PATH={cann}\n"
                       "export LD_LIBRARY_PATH=/fake/lib64:$LD_LIBRARY_PATH\n")
    return set_env


def run_script(kit: Path, tmp_path: Path, umask: int, work: Path | None = None, **extra):
    if work is None:
        work = tmp_path / "npuhost"
        shutil.copytree(kit, work)
    environ = ar.env(tmp_path, CANN_SET_ENV=cann_set_env(tmp_path) if not
                     (tmp_path / "cann").exists() else tmp_path / "cann" / "set_env.sh", **extra)
    environ.pop("LD_LIBRARY_PATH", None)
    proc = subprocess.run(["bash", "-c", f"umask {umask:03o} && bash run_on_npu.sh"], cwd=work,
                          env=environ, capture_output=True, text=True, timeout=600)
    return work, proc


def ingest_as_printed(cmd: str, work: Path, tmp_path: Path, monkeypatch, capsys) -> Path:
    """Run the 'zoorepro ingest' command the script printed, here; check the exact scores."""
    from zoorepro import cli
    argv = shlex.split(cmd)
    assert argv[:2] == ["zoorepro", "ingest"]
    monkeypatch.chdir(work)
    capsys.readouterr()
    assert cli.main(argv[1:] + ["--out", str(tmp_path / "reports"), "--no-report"]) == 0
    run = Path(capsys.readouterr().out.strip().splitlines()[-1])
    m = json.loads((run / "metrics.json").read_text())
    assert m["images"] == 10 and ar.scores(m) == EXPECTED
    return run


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_kit_round_trip_through_the_real_front_end(kit_dir, tmp_path, umask, monkeypatch, capsys):
    work, proc = run_script(kit_dir, tmp_path, umask, DEVICE_ID=1)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    res = work / "npu_results"
    assert "chip: Ascend310P3, CANN: 6.0.RC1, device: 1" in proc.stdout
    for name in ("npu-smi.txt", "cann_version.txt", "kit.json", "val_label.txt", "aipp.config",
                 "om_sha256.txt", "ingest_command.txt", "result/result_bs4_summary.json",
                 "perf/perf_bs1_summary.json", "perf/perf_bs4_summary.json",
                 "recipe/squeezenet1_1/recipe.yaml"):
        assert (res / name).is_file(), name
    assert len(list((res / "result" / "result_bs4").glob("*_0.txt"))) == 10
    atc_log = (tmp_path / "atc.log").read_text()
    assert atc_log.count("--soc_version=Ascend310P3") == 2
    assert "--input_shape=image:4,3,224,224" in atc_log
    cmd = (res / "ingest_command.txt").read_text().strip()
    assert cmd in proc.stdout
    run = ingest_as_printed(cmd, work, tmp_path, monkeypatch, capsys)
    bench = records(run, "bench")["records"]
    assert [b["batch_size"] for b in bench] == [1, 4]
    assert all(b["iterations"] == 50 and b["throughput"] > 0 for b in bench)
    acc = records(run, "accuracy")["ais_bench"]
    assert acc["device"] == "npu: Ascend310P3 (CANN 6.0.RC1)"
    kit = json.loads((work / "kit.json").read_text())
    assert acc["weights_sha256"] == kit["export"]["weights_sha256"]
    assert records(run, "atc")["commands"][0].count("Ascend310P3") == 1
    assert records(run, "ingest")["device_id"] == 1
    # a second run refuses to mix with the first one's results
    _, again = run_script(kit_dir, tmp_path, umask, work=work)
    assert again.returncode == 1 and "exists from an earlier run" in again.stderr


def test_kit_round_trip_of_another_recipe(tmp_path, monkeypatch, capsys):
    """resnet50's kit: its host crop (256 x 256 .bin files, AIPP crops on the device), its
    README's forms ('--model X', no --batchsize in the accuracy line, --loop 1000), its AIPP
    file's name; run through the real front end and ingested with the kit's recipe."""
    from zoorepro import config, recipebook
    from zoorepro.ascend import kit
    from npu_fixtures import tiny_onnx
    recipe = recipebook.load("resnet50")
    labels = ar.designed_labels(tmp_path / "val_label.txt", recipe="resnet50")
    cfg = config.from_mapping(small_params(
        tmp_path, recipe="resnet50", label_file=str(labels), max_images=10, weights="",
        aipp_config="", onnx_model=str(tiny_onnx(tmp_path / "m.onnx", recipe)),
        batch_sizes=[4], accuracy_batch_size=4))
    kit_dir = kit.make_kit(cfg, tmp_path / "kit", progress=False).parent
    assert {p.stat().st_size for p in (kit_dir / "prep_dataset").iterdir()} == {256 * 256 * 3}
    work, proc = run_script(kit_dir, tmp_path, 0o022)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    res = work / "npu_results"
    assert "--insert_op_conf=aipp_resnet50.aippconfig" in (tmp_path / "atc.log").read_text()
    acc = json.loads((res / "result" / "result_bs4_summary.json").read_text())
    assert "--batchsize" not in acc["args"] and acc["args"][1] == "--model"
    run = ingest_as_printed((res / "ingest_command.txt").read_text(), work, tmp_path,
                            monkeypatch, capsys)
    (b,) = records(run, "bench")["records"]
    assert b["batch_size"] == 4 and b["iterations"] == 1000
    assert records(run, "infer")["ais_bench"]["accuracy_batch_size"] == 4
    assert records(run, "recipe")["name"] == "resnet50"


def test_kit_script_on_two_devices(kit_dir, tmp_path, monkeypatch, capsys):
    work, proc = run_script(kit_dir, tmp_path, 0o022, DEVICE_ID="0,1")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    res = work / "npu_results"
    assert sorted(p.name for p in (res / "result" / "result_bs4").iterdir() if p.is_dir()) == \
        ["device0_0", "device1_1"]
    run = ingest_as_printed((res / "ingest_command.txt").read_text(), work, tmp_path,
                            monkeypatch, capsys)
    assert [d["images"] for d in records(run, "infer")["ais_bench"]["devices"]] == [5, 5]


# ------------------------------------------------------------------ injection
BAD_VALUES = ["Ascend310P3$(touch {m})", "Ascend310P3`touch {m}`", "Ascend310P3'; touch {m}; '",
              'Ascend310P3"; touch {m}; "', "Ascend310P3\ntouch {m}"]


@pytest.mark.parametrize("bad", BAD_VALUES)
def test_no_parameter_value_runs_in_the_script(tmp_path, bad):
    """A value from params never reaches the script as code: refused by the config, and by
    the template machinery when a config is made without validation."""
    import dataclasses
    from zoorepro import config
    from zoorepro.ascend import kit, shell
    marker = tmp_path / "INJECTED"
    value = bad.format(m=marker)
    with pytest.raises(config.ConfigError, match="soc_version"):
        config.from_mapping(small_params(tmp_path, soc_version=value))
    cfg = config.from_mapping(small_params(tmp_path))
    for field, v in (("soc_version", value), ("device_id", value),
                     ("atc_extra_args", (value.replace("Ascend310P3", "--log"),))):
        with pytest.raises(kit.KitError, match=field):              # before any work
            kit.make_kit(dataclasses.replace(cfg, **{field: v}), tmp_path / f"k-{field}")
        assert not (tmp_path / f"k-{field}").exists()
        with pytest.raises(shell.ShellTemplateError):
            kit.render_script(dataclasses.replace(cfg, **{field: v}), [1], 1, 1, True)
    with pytest.raises(kit.KitError, match="comment"):
        kit.make_kit(cfg, tmp_path / "k-src", params_source=f"/x/p{chr(10)}touch INJECTED.yaml")
    assert not marker.exists()


@pytest.mark.parametrize("var", ["SOC_VERSION", "DEVICE_ID"])
@pytest.mark.parametrize("bad", BAD_VALUES)
def test_environment_values_never_run(kit_dir, tmp_path, var, bad):
    marker = tmp_path / "INJECTED"
    value = bad.format(m=marker) if var == "SOC_VERSION" else \
        bad.format(m=marker).replace("Ascend310P3", "0")
    work, proc = run_script(kit_dir, tmp_path, 0o022, **{var: value})
    assert proc.returncode != 0 and var in proc.stderr
    assert not marker.exists()
    assert not (work / "npu_results" / "result").exists()


def test_template_refuses_an_unquoted_value():
    from zoorepro.ascend import shell
    env = shell.environment()
    with pytest.raises(shell.ShellTemplateError, match="not quoted"):
        env.from_string("echo {{ v }}").render(v="$(id)")
    assert env.from_string("echo {{ v|q }} {{ n }}").render(v="$(id)", n=3) == "echo '$(id)' 3"
    with pytest.raises(shell.ShellTemplateError, match="comment"):
        env.from_string("# {{ v|comment }}").render(v="a\nid")


# ------------------------------------------------ nothing ran: a clear failure
@pytest.fixture
def ais_params(tmp_path):
    import yaml
    params = tmp_path / "p.yaml"
    params.write_text(yaml.safe_dump(small_params(tmp_path, backends=["ais_bench"], max_images=2,
                                                  batch_sizes=[1], soc_version="Ascend310P3")))
    return params


def test_bench_fails_when_no_backend_ran(ais_params, capsys, monkeypatch):
    """ais_bench absent: exit non-zero naming what to install, no raw warning."""
    import warnings
    from zoorepro import cli
    monkeypatch.setitem(sys.modules, "ais_bench", None)
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rc = cli.main(["bench", str(ais_params)])
    err = capsys.readouterr().err
    assert rc != 0 and "no backend produced a result" in err
    assert "ais_bench is not installed" in err and "UserWarning" not in err


@pytest.mark.e2e
def test_run_fails_when_no_backend_ran(ais_params, capsys):
    """The notebooks' kernel has no ais_bench: the run stops at inference, exits 1 naming what
    to install, and still leaves a partial report."""
    from zoorepro import cli
    capsys.readouterr()
    rc = cli.main(["run", str(ais_params)])
    out, err = capsys.readouterr()
    assert rc == 1 and "no backend produced a result" in err and "ais_bench is not installed" in err
    run = Path(out.strip().splitlines()[-1])
    assert (run / "report.html").is_file() and not (run / "result.json").exists()


# ------------------------------------------------------- review: found by trying to break it
def test_a_multi_device_folder_missing_a_device_is_refused(host, tmp_path):
    from zoorepro.errors import IngestError
    d, bins, labels = host
    model = ar.om(tmp_path / "m_bs2.om", 2)
    (tmp_path / "res" / "result_bs2").mkdir(parents=True)
    for p in (tmp_path / "res", tmp_path / "res" / "result_bs2"):
        os.chmod(p, 0o750)
    ar.run_ais(["--model", model, "--batchsize", 2, "--input", d / "prep", "--output",
                tmp_path / "res", "--output_dirname", "result_bs2", "--device", "0,1",
                "--divide_input", "1"], tmp_path, ar.env(tmp_path))
    out = tmp_path / "res" / "result_bs2"
    shutil.rmtree(out / "device0_0")
    (out / "device0_0_summary.json").unlink()
    with pytest.raises(IngestError, match="--device 0,1 but the folder holds device1_1"):
        ingest_metrics(out, labels, tmp_path / "reports")


@pytest.mark.parametrize("devices,message", [("0,0", "listed twice"), ("300", "0-255"),
                                             ("0,1,2,3,4,5,6,7,8,9,10", "list fewer devices")])
def test_the_script_checks_device_lists_before_any_work(kit_dir, tmp_path, devices, message):
    work, proc = run_script(kit_dir, tmp_path, 0o022, DEVICE_ID=devices)
    assert proc.returncode != 0 and message in proc.stderr
    assert not (work / "om").exists() or not list((work / "om").glob("*.om"))


def test_kit_refuses_image_names_ais_bench_refuses(tmp_path, demo_images):
    from zoorepro import config
    from zoorepro.ascend import kit
    src = tmp_path / "imgs"
    src.mkdir()
    shutil.copyfile(demo_images[0], src / demo_images[0].name)
    shutil.copyfile(demo_images[1], src / "a+b.JPEG")
    labels = tmp_path / "l.txt"
    labels.write_text(f"{demo_images[0].name} 0\na+b.JPEG 1\n")
    cfg = config.from_mapping(small_params(tmp_path, data_dir=str(src), label_file=str(labels),
                                           max_images=0))
    with pytest.raises(kit.KitError, match=r"1 image name\(s\).*A-Z a-z 0-9 _ - \..*a\+b.JPEG"):
        kit.make_kit(cfg, tmp_path / "k", progress=False)


def test_the_kit_script_follows_the_physical_path(kit_dir, tmp_path):
    """A symlinked kit folder whose real path ais_bench would refuse is caught up front."""
    real = tmp_path / "with space"
    shutil.copytree(kit_dir, real / "kit")
    (tmp_path / "link").symlink_to(real)
    env = ar.env(tmp_path, CANN_SET_ENV=tmp_path / "none.sh", CDPATH=str(tmp_path))
    proc = subprocess.run(["bash", str(tmp_path / "link" / "kit" / "run_on_npu.sh")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "ais_bench accepts only" in proc.stderr
    assert not (real / "kit" / "om").exists()


def test_backend_precision_is_the_om_s_honoured_or_refused(tmp_path, real_ais_in_process):
    """The .om's precision is ATC's (--precision_mode; ATC's default force_fp16): recorded as
    it is, honoured when asked for, refused (with the ATC option to add) when not."""
    from zoorepro import backends
    oms = {1: str(ar.om(tmp_path / "squeezenet1_1_bs1.om", 1))}
    kw = dict(device_id=0, soc_version="Ascend310P3", cann_version="8.0.RC1")
    arts = backends.Artifacts(om_models=oms, recipe=SQ)
    assert backends.create("ais_bench", arts, **kw).info()["precision"] == "fp16"
    assert backends.create("ais_bench", arts, precision="fp16", **kw).precision == "fp16"
    with pytest.raises(backends.BackendUnavailable,
                       match=r"precision fp32: the recipe's .om models run fp16 \(ATC "
                             r"--precision_mode force_fp16 .*add --precision_mode="
                             r"must_keep_origin_dtype to atc_extra_args"):
        backends.create("ais_bench", arts, precision="fp32", **kw)
    fp32 = backends.Artifacts(om_models=oms, recipe=SQ,
                              atc_extra_args=("--precision_mode=must_keep_origin_dtype",))
    assert backends.create("ais_bench", fp32, precision="fp32", **kw).info()["precision"] == "fp32"
    assert backends.refuses("ais_bench", "int8") == ("precision int8: the ais_bench backend "
                                                     "runs fp32, fp16 only")
