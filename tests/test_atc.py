"""ATC: the recipe's command strings (golden) and chip detection from ``npu-smi info``."""

import textwrap

import pytest
from npu_fixtures import NPU_SMI_SAMPLE as GUIDE_SAMPLE

from zoorepro import recipebook
from zoorepro.ascend import atc

from conftest import SHARED

SQUEEZENET = recipebook.load("squeezenet1_1")

# The recipe README's ATC line with bs filled in, '--input-shape' written with the
# documented underscore ('--input_shape'), chip_name = 310P3 and onnx_file = squeezenet1_1.onnx.
GOLDEN = {
    bs: ("atc --model=squeezenet1_1.onnx --framework=5 --output=squeezenet1_1_bs{bs} "
         "--input_shape=\"image:{bs},3,224,224\" --log=error --soc_version=Ascend310P3 "
         "--enable_small_channel=1 --insert_op_conf=aipp.config").format(bs=bs)
    for bs in (1, 4, 8, 16, 32, 64)
}

# `npu-smi info` as the recipe's guide shows it (indented as in the guide).
NPU_SMI_SAMPLE = textwrap.indent(GUIDE_SAMPLE, " " * 9)


@pytest.mark.parametrize("bs", sorted(GOLDEN))
def test_atc_command_golden_for_every_batch_size(bs):
    for soc in ("310P3", "Ascend310P3"):
        argv = atc.atc_command(SQUEEZENET, "squeezenet1_1.onnx", bs, soc, "aipp.config")
        assert atc.shell_line(argv) == GOLDEN[bs]
    assert argv[4] == f"--input_shape=image:{bs},3,224,224"  # argv form: no shell quotes
    assert not any(a.startswith("--input-shape") for a in argv)


def test_atc_command_output_dir_and_extra_args_pass_through():
    argv = atc.atc_command(SQUEEZENET, "m.onnx", 8, "310B1", "cfg/aipp.config", "om",
                           ("--precision_mode=allow_fp32_to_fp16",))
    assert atc.shell_line(argv) == (
        'atc --model=m.onnx --framework=5 --output=om/squeezenet1_1_bs8 '
        '--input_shape="image:8,3,224,224" --log=error --soc_version=Ascend310B1 '
        '--enable_small_channel=1 --insert_op_conf=cfg/aipp.config '
        '--precision_mode=allow_fp32_to_fp16')


def test_npu_smi_guide_sample_both_chips_310P3():
    chips = atc.parse_npu_smi(NPU_SMI_SAMPLE)
    assert [(c["npu"], c["name"], c["health"], c["soc_version"]) for c in chips] == [
        (0, "310P3", "OK", "Ascend310P3"), (1, "310P3", "OK", "Ascend310P3")]


def test_npu_smi_sample_is_the_guides_text():
    guide = SHARED / "reference" / "000_427b72055f60dd48.txt"
    if not guide.is_file():
        pytest.skip(f"{guide} not present (shared reference folder absent)")
    text = guide.read_text(encoding="utf-8")
    start = text.index("+-------------------+")
    block = text[text.rfind("\n", 0, start) + 1:text.index("```", start)]
    assert atc.parse_npu_smi(block) == atc.parse_npu_smi(NPU_SMI_SAMPLE)


def test_detect_soc_version_uses_npu_smi(monkeypatch):
    class Done:
        stdout = NPU_SMI_SAMPLE
    monkeypatch.setattr(atc.shutil, "which", lambda name: "/usr/bin/" + name)
    assert atc.detect_soc_version(runner=lambda *a, **k: Done()) == "Ascend310P3"
    monkeypatch.setattr(atc.shutil, "which", lambda name: None)
    assert atc.detect_soc_version() is None


def test_npu_smi_without_chips():
    assert atc.parse_npu_smi("") == []
    assert atc.parse_npu_smi("npu-smi: command not found") == []


def test_unknown_chip_shows_the_recipes_shell_variable():
    line = atc.shell_line(atc.atc_command(SQUEEZENET, "squeezenet1_1.onnx", 8,
                                          atc.SOC_PLACEHOLDER, "aipp.config"))
    assert line == GOLDEN[8].replace("Ascend310P3", "Ascend${chip_name}")


# The other recipes' README lines (ModelZoo-PyTorch 6a2804a358a5), bs and the chip filled in:
# resnet50's with the README's own batch size 64, mobilenet_v2's with ${soc} = Ascend310P3.
OTHER_GOLDEN = {
    "resnet50": (64, "resnet50_official.onnx", "aipp_resnet50.aippconfig",
                 "atc --model=resnet50_official.onnx --framework=5 --output=resnet50_bs64 "
                 "--input_format=NCHW --input_shape=\"actual_input_1:64,3,224,224\" "
                 "--enable_small_channel=1 --log=error --soc_version=Ascend310P3 "
                 "--insert_op_conf=aipp_resnet50.aippconfig"),
    "mobilenet_v2": (16, "out/mobilenet_v2.onnx", "aipp_TorchVision.config",
                     "atc --model=out/mobilenet_v2.onnx --framework=5 "
                     "--output=out/mobilenet_v2_bs16 --input_format=NCHW "
                     "--input_shape=\"actual_input_1:16,3,224,224\" --log=error "
                     "--soc_version=Ascend310P3 --insert_op_conf=aipp_TorchVision.config"),
}


@pytest.mark.parametrize("name", sorted(OTHER_GOLDEN))
def test_each_recipe_gets_its_own_atc_line(name):
    bs, onnx, aipp, want = OTHER_GOLDEN[name]
    recipe = recipebook.load(name)
    out = "out" if onnx.startswith("out/") else ""
    assert atc.shell_line(atc.atc_command(recipe, onnx, bs, "310P3", aipp, out)) == want
    assert atc.om_name(recipe, bs) == f"{name}_bs{bs}"


def test_an_input_shape_the_shell_would_expand_is_quoted_whole():
    line = atc.shell_line(["atc", "--input_shape=$(id):1,3,224,224"])
    assert line == "atc '--input_shape=$(id):1,3,224,224'"


@pytest.mark.parametrize("extra, want", [
    ((), ("fp16", "force_fp16 (ATC's default for inference)")),
    (("--precision_mode=force_fp16",), ("fp16", "force_fp16")),
    (("--precision_mode=must_keep_origin_dtype",), ("fp32", "must_keep_origin_dtype")),
    (("--precision_mode=allow_fp32_to_fp16",), ("mixed", "allow_fp32_to_fp16")),
    (("--precision_mode_v2=origin",), ("fp32", "origin")),
    (("--precision_mode_v2=fp16",), ("fp16", "fp16")),
    (("--precision_mode=something_new",), ("unknown", "something_new")),
])
def test_the_om_precision_is_read_from_atc_s_options(extra, want):
    argv = atc.atc_command(SQUEEZENET, "m.onnx", 1, "310P3", "aipp.config", "", extra)
    assert atc.precision_of(argv) == want
