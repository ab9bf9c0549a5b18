"""``zoorepro kit``: the folder for the NPU host and its one script (correct bash, the
recipe's exact commands).  The script runs end to end against ais_bench's real front end in
test_aisbench_real.py."""
import json
import os
import shutil
import subprocess

import pytest
import yaml

from zoorepro.ascend import atc, kit
from zoorepro import cli, config, recipebook

from conftest import AIPP_CONFIG, DEMO_LABELS, small_params
from npu_fixtures import tiny_onnx

ALL_BS = [1, 4, 8, 16, 32, 64]


@pytest.fixture(scope="module")
def kit_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kit")
    cfg = config.from_mapping(small_params(tmp, max_images=6, batch_sizes=ALL_BS))
    script = kit.make_kit(cfg, tmp / "kit", progress=False)
    assert script == tmp / "kit" / "run_on_npu.sh"
    return script.parent


def test_kit_contents(kit_dir):
    import onnx
    m = onnx.load(str(kit_dir / "model" / "squeezenet1_1.onnx"))
    assert m.graph.input[0].name == "image" and m.graph.output[0].name == "class"
    assert (kit_dir / "aipp.config").read_bytes() == AIPP_CONFIG.read_bytes()
    assert (kit_dir / "val_label.txt").read_bytes() == DEMO_LABELS.read_bytes()
    bins = sorted((kit_dir / "prep_dataset").iterdir())
    assert len(bins) == 6 and all(p.stat().st_size == 150528 for p in bins)
    man = json.loads((kit_dir / "kit.json").read_text())
    assert man["images"] == 6 and len(man["keys"]) == 6 and man["batch_sizes"] == ALL_BS
    assert man["export"]["weights_sha256"] and man["export"]["onnx_sha256"]
    from zoorepro.run import records          # the kit's records, read by the same classes
    exp = records.ExportRecord.from_json(man["export"], "kit.json (export)")
    assert exp.to_json() == man["export"] and exp.opset == man["params"]["opset"]
    pre = records.PreprocessRecord.from_json(man["preprocess"], "kit.json (preprocess)")
    assert pre.to_json() == man["preprocess"] and pre.ok == 6
    assert os.access(kit_dir / "run_on_npu.sh", os.X_OK)
    # the recipe travels with the kit: its files, named in kit.json with recipe.yaml's sha256
    shipped = recipebook.load("squeezenet1_1")
    copy = kit_dir / "recipe" / "squeezenet1_1"
    assert man["recipe"] == "squeezenet1_1" and man["recipe_sha256"] == shipped.sha256
    assert (copy / "recipe.yaml").read_bytes() == shipped.path.read_bytes()
    assert (copy / "aipp.config").is_file()
    assert recipebook.load(str(copy)).sha256 == shipped.sha256


def test_script_is_valid_bash(kit_dir):
    r = subprocess.run(["bash", "-n", str(kit_dir / "run_on_npu.sh")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_script_passes_shellcheck(kit_dir):
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (Debian: apt-get install shellcheck; "
                    "'make browser' installs it)")
    r = subprocess.run(["shellcheck", "--shell=bash", str(kit_dir / "run_on_npu.sh")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_script_has_the_recipes_exact_commands(kit_dir):
    text = (kit_dir / "run_on_npu.sh").read_text()
    assert text.startswith("#!/usr/bin/env bash\n") and "\nset -euo pipefail\n" in text
    assert 'source "$CANN_SET_ENV"' in text and "npu-smi info" in text
    for bs in ALL_BS:
        # the ATC line, with the chip variable filled in, is exactly atc.atc_command's
        want = atc.shell_line(atc.atc_command(recipebook.load("squeezenet1_1"),
                                              "model/squeezenet1_1.onnx", bs, "310P3",
                                              "aipp.config", "om"))
        lines = [ln for ln in text.splitlines() if "atc --model=" in ln and f"_bs{bs} " in ln]
        assert len(lines) == 1
        got = lines[0].split(f"atc_bs{bs}.log\" ", 1)[1].replace('"Ascend${chip_name}"',
                                                                 "Ascend310P3")
        assert got == want
        assert f'--input_shape="image:{bs},3,224,224" --log=error' in got
        # the recipe's pure-inference command, with --output so that a summary is written
        assert (f"python3 -m ais_bench --model=om/squeezenet1_1_bs{bs}.om --loop=50 "
                f"--batchsize={bs} --device \"${{FIRST_DEVICE}}\" --output npu_results/perf "
                f"--output_dirname perf_bs{bs}\n") in text
    assert ("python3 -m ais_bench --model=om/squeezenet1_1_bs1.om --batchsize=1 --input "
            "prep_dataset --output npu_results/result --output_dirname result_bs1 --outfmt TXT "
            "--device \"${DEVICE_ID}\" ${DIVIDE[@]+\"${DIVIDE[@]}\"}\n") in text
    assert "zoorepro ingest" in text


def test_kit_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "k").mkdir()
    (tmp_path / "k" / "x").write_text("")
    cfg = config.from_mapping(small_params(tmp_path))
    with pytest.raises(kit.KitError, match="not empty"):
        kit.make_kit(cfg, tmp_path / "k")


@pytest.mark.parametrize("precision, extra, says", [
    ("fp32", [], "precision fp32: the kit's .om models run fp16 (ATC --precision_mode "
                 "force_fp16 (ATC's default for inference)); add --precision_mode="
                 "must_keep_origin_dtype to atc_extra_args"),
    ("int8", [], "precision int8: the kit's .om models run fp16"),
    ("fp16", ["--precision_mode=must_keep_origin_dtype"],
     "precision fp16: the kit's .om models run fp32"),
])
def test_kit_refuses_a_precision_its_om_models_do_not_run(tmp_path, precision, extra, says):
    cfg = config.from_mapping(small_params(tmp_path, precision=precision,
                                           atc_extra_args=extra))
    with pytest.raises(kit.KitError) as e:
        kit.make_kit(cfg, tmp_path / "k")
    assert says in str(e.value)
    assert not (tmp_path / "k").exists()


def test_cli_kit_no_bins(tmp_path, capsys, onnx_models):
    params = tmp_path / "p.yaml"
    params.write_text(yaml.safe_dump({
        "data_dir": "/nowhere/imagenet/val", "label_file": str(DEMO_LABELS),
        "weights": "/nowhere/w.pth", "onnx_model": str(onnx_models[0]),
        "aipp_config": str(AIPP_CONFIG), "batch_sizes": [1, 8], "soc_version": "Ascend310P3"}))
    assert cli.main(["kit", str(params), str(tmp_path / "k"), "--no-bins"]) == 0
    assert "bash run_on_npu.sh" in capsys.readouterr().out
    k = tmp_path / "k"
    assert not (k / "prep_dataset").exists()
    text = (k / "run_on_npu.sh").read_text()
    assert 'python3 "$PREPROCESS_PY" "$DATA_DIR" prep_dataset' in text
    assert 'DEFAULT_SOC_VERSION=Ascend310P3\n' in text
    assert 'SOC_VERSION="${SOC_VERSION:-$DEFAULT_SOC_VERSION}"' in text
    assert subprocess.run(["bash", "-n", str(k / "run_on_npu.sh")]).returncode == 0
    if shutil.which("shellcheck"):
        r = subprocess.run(["shellcheck", str(k / "run_on_npu.sh")], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout
    man = json.loads((k / "kit.json").read_text())
    assert man["keys"] is None and man["export"]["weights_sha256"] is None


def test_kit_matches_images_and_labels_like_a_run(tmp_path, demo_images, onnx_models):
    """Same rules as ``zoorepro run``: a mismatch stops before any work, unless allowed."""
    from zoorepro.recipe.data import DataError
    src = tmp_path / "imgs"
    src.mkdir()
    for p in demo_images[:3]:
        shutil.copyfile(p, src / p.name)
    shutil.copyfile(demo_images[3], src / "unlabelled_photo.JPEG")
    base = small_params(tmp_path, data_dir=str(src), max_images=0, onnx_model=str(onnx_models[0]))
    with pytest.raises(DataError, match=r"(?s)1 of 4 image.*no label.*allow_label_mismatch"):
        kit.make_kit(config.from_mapping(base), tmp_path / "k1")
    assert not list((tmp_path / "k1").rglob("*.bin"))
    kit.make_kit(config.from_mapping(dict(base, allow_label_mismatch=True)), tmp_path / "k2")
    man = json.loads((tmp_path / "k2" / "kit.json").read_text())
    assert man["images"] == 3 and man["unlabelled_images"] == 1
    assert man["unlabelled_examples"] == ["unlabelled_photo.JPEG"]
    assert len(list((tmp_path / "k2" / "prep_dataset").glob("*.bin"))) == 3


def test_a_symlink_loop_in_data_dir_leaves_no_half_written_kit(tmp_path, demo_images, onnx_models,
                                                                capsys):
    """A symlink loop in data_dir gave a traceback and a half-written kit folder; now a clear
    error before anything is written, and a kit that fails later is removed."""
    src = tmp_path / "imgs"
    src.mkdir()
    for p in demo_images[:3]:
        shutil.copyfile(p, src / p.name)
    (src / "loop.JPEG").symlink_to(src / "loop.JPEG")
    params = tmp_path / "p.yaml"
    params.write_text(yaml.safe_dump(small_params(tmp_path, data_dir=str(src), max_images=0,
                                                  onnx_model=str(onnx_models[0]))))
    assert cli.main(["kit", str(params), str(tmp_path / "k1")]) == 2
    assert "loop.JPEG is a symlink loop" in capsys.readouterr().err
    assert not (tmp_path / "k1").exists()
    (src / "loop.JPEG").unlink()
    (src / demo_images[1].name).write_bytes(b"not a jpeg")          # fails while preprocessing
    (tmp_path / "k2").mkdir()                                         # empty: allowed, kept
    cfg = config.from_mapping(small_params(tmp_path, data_dir=str(src), max_images=0,
                                           onnx_model=str(onnx_models[0]),
                                           label_file=str(_labels_for(tmp_path, src))))
    with pytest.raises(kit.KitError, match="could not be preprocessed"):
        kit.make_kit(cfg, tmp_path / "k2")
    assert (tmp_path / "k2").is_dir() and not list((tmp_path / "k2").iterdir())


def _labels_for(tmp_path, src):
    from zoorepro.recipe import data
    labels = data.read_labels(DEMO_LABELS)
    path = tmp_path / "labels.txt"
    path.write_text("".join(f"{p.name} {labels[data.image_key(p.name)]}\n"
                            for p in sorted(src.iterdir())))
    return path


def _no_bins_kit(tmp_path, recipe, onnx_path=None):
    onnx_path = onnx_path or tiny_onnx(tmp_path / "m.onnx", recipebook.load(recipe))
    cfg = config.from_mapping(
        small_params(tmp_path, data_dir="/nowhere/imagenet/val", weights="", aipp_config="",
                     onnx_model=str(onnx_path), batch_sizes=[1, 8], soc_version="Ascend310P3",
                     recipe=recipe), check_paths=False)
    return kit.make_kit(cfg, tmp_path / "k", bins=False, progress=False).read_text()


def test_no_bins_runs_the_recipes_own_preprocessing_script(tmp_path):
    """resnet50's upstream script takes its model type first (the README's line shows it);
    the kit's line is that line, the script and folders its own."""
    text = _no_bins_kit(tmp_path, "resnet50")
    assert "DEFAULT_PREPROCESS_PY=imagenet_torch_preprocess.py\n" in text
    assert '\n    python3 "$PREPROCESS_PY" resnet "$DATA_DIR" prep_dataset\n' in text
    assert "# run_on_npu.sh: the ResNet-50 recipe on this NPU host" in text
    assert "om/resnet50_bs<N>.om with aipp_resnet50.aippconfig" in text
    assert "--loop 1000" in text and "squeezenet" not in text.lower()
    assert (tmp_path / "k" / "aipp_resnet50.aippconfig").is_file()
    assert (tmp_path / "k" / "model" / "resnet50.onnx").is_file()
    script = str(tmp_path / "k" / "run_on_npu.sh")
    assert subprocess.run(["bash", "-n", script]).returncode == 0
    if shutil.which("shellcheck"):
        r = subprocess.run(["shellcheck", script], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout


def test_no_bins_keeps_the_readmes_trailing_slash(tmp_path):
    """mobilenet_v2's preprocess.py joins folder and class name without a separator."""
    text = _no_bins_kit(tmp_path, "mobilenet_v2")
    assert '\n    python3 "$PREPROCESS_PY" "$DATA_DIR/" prep_dataset\n' in text


def test_no_bins_needs_an_upstream_script(tmp_path):
    with pytest.raises(kit.KitError, match=r"efficientnet_lite0/recipe.yaml: recipe "
                                           r"efficientnet_lite0 names no upstream preprocessing "
                                           r"script.*leave out --no-bins"):
        _no_bins_kit(tmp_path, "efficientnet_lite0")
    assert not (tmp_path / "k").exists()


def test_an_onnx_model_without_the_recipes_input_is_refused(tmp_path, onnx_models):
    """resnet50's ATC line names the input actual_input_1: squeezenet's ONNX (image) would
    fail on the NPU host, after the copy; it is refused before anything is written."""
    with pytest.raises(kit.KitError, match=r"takes image, not the recipe's input "
                                           r"actual_input_1 \(model.input in .*resnet50"):
        _no_bins_kit(tmp_path, "resnet50", onnx_models[0])
    assert not (tmp_path / "k").exists()
