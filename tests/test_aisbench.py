"""The ais_bench backend: the recipe's command lines (golden), the lazy import and its
message, CANN version parsing.  Its calls into ais_bench run against ais_bench's real front
end in test_aisbench_real.py."""
import sys

import pytest

from zoorepro.ascend import aiscommands, atc
from zoorepro import backends, recipebook
from zoorepro.backends import ascend
from zoorepro.errors import RecipeError

SQUEEZENET = recipebook.load("squeezenet1_1")


# The recipe's README commands with ${bs}=8 and ${save_dir}=prep_dataset.
RECIPE_ACCURACY = ("python3 -m ais_bench --model=squeezenet1_1_bs8.om  --batchsize=8 "
                   "--input prep_dataset --output result --output_dirname result_bs8 --outfmt TXT")
RECIPE_PERF = "python3 -m ais_bench --model=squeezenet1_1_bs8.om --loop=50 --batchsize=8"


def squash(s: str) -> str:
    return " ".join(s.split())


def test_accuracy_argv_golden():
    argv = aiscommands.accuracy_argv(SQUEEZENET, "squeezenet1_1_bs8.om", 8, "prep_dataset",
                                     "result", device_id=0)
    assert aiscommands.shell_line(argv) == (
        "python3 -m ais_bench --model=squeezenet1_1_bs8.om --batchsize=8 --input prep_dataset "
        "--output result --output_dirname result_bs8 --outfmt TXT --device 0")
    assert aiscommands.shell_line(argv).startswith(squash(RECIPE_ACCURACY) + " ")


@pytest.mark.parametrize("bs", [1, 4, 8, 16, 32, 64])
def test_perf_argv_golden(bs):
    argv = aiscommands.perf_argv(SQUEEZENET, f"squeezenet1_1_bs{bs}.om", bs, device_id=1)
    assert aiscommands.shell_line(argv) == (
        f"python3 -m ais_bench --model=squeezenet1_1_bs{bs}.om --loop=50 --batchsize={bs} "
        f"--device 1")
    with_out = aiscommands.perf_argv(SQUEEZENET, f"squeezenet1_1_bs{bs}.om", bs, device_id=1,
                                     output="perf")
    assert aiscommands.shell_line(with_out) == (
        f"python3 -m ais_bench --model=squeezenet1_1_bs{bs}.om --loop=50 --batchsize={bs} "
        f"--device 1 --output perf --output_dirname perf_bs{bs}")
    if bs == 8:
        assert aiscommands.shell_line(argv).startswith(RECIPE_PERF + " ")


# The other recipes' README lines: their own word forms ('--model X', no --batchsize in
# resnet50's accuracy line, mobilenet_v2's quoted 'TXT', --loop 1000), paths as given here.
OTHER = {
    "resnet50": ("python3 -m ais_bench --model ./resnet50_bs64.om --input ./prep_dataset/ "
                 "--output ./ --output_dirname result --outfmt TXT",
                 "python3 -m ais_bench --model ./resnet50_bs64.om --loop 1000 --batchsize 64",
                 "./resnet50_bs64.om", 64, "./prep_dataset/", "./", "result"),
    "mobilenet_v2": ("python3 -m ais_bench --model ./output/mobilenet_v2_bs4.om --input "
                     "./preprocess_data --output ./output --output_dirname subdir --outfmt TXT "
                     "--batchsize 4",
                     "python3 -m ais_bench --model ./output/mobilenet_v2_bs4.om --loop 1000 "
                     "--batchsize 4",
                     "./output/mobilenet_v2_bs4.om", 4, "./preprocess_data", "./output",
                     "subdir"),
}


@pytest.mark.parametrize("name", sorted(OTHER))
def test_each_recipe_gets_its_own_ais_bench_lines(name):
    acc, perf, om, bs, input_dir, output, dirname = OTHER[name]
    recipe = recipebook.load(name)
    argv = aiscommands.accuracy_argv(recipe, om, bs, input_dir, output, dirname, device_id=None)
    assert aiscommands.shell_line(argv) == acc
    argv = aiscommands.perf_argv(recipe, om, bs, device_id=None)
    assert aiscommands.shell_line(argv) == perf          # the recipe's loop: 1000
    argv = aiscommands.perf_argv(recipe, om, bs, loop=7, device_id=2, output="p")
    assert argv[3:] == ["--model", om, "--loop", "7", "--batchsize", str(bs), "--device", "2",
                        "--output", "p", "--output_dirname", f"perf_bs{bs}"]


def test_a_template_word_that_is_not_one_shell_word_is_refused():
    with pytest.raises(RecipeError, match="recipe.yaml: ais_bench.perf: 'a b' is not one shell"):
        aiscommands.template_argv(SQUEEZENET, ("a b",), "ais_bench.perf")
    with pytest.raises(RecipeError, match=r"ais_bench.perf names \{input\}, which this command "
                                          r"does not have"):
        aiscommands.template_argv(SQUEEZENET, ("--x={input}",), "ais_bench.perf", om="m", bs=1,
                                  loop=1)


def test_registered_and_not_installed_message(monkeypatch):
    assert "ais_bench" in backends.names()
    monkeypatch.setitem(sys.modules, "ais_bench", None)   # import ais_bench -> ImportError
    with pytest.raises(backends.BackendUnavailable) as e:
        backends.create("ais_bench", backends.Artifacts(om_models={1: "x.om"}), device_id=0)
    msg = str(e.value)
    for needle in ("ais_bench is not installed", "aclruntime", "ais_bench' from Ascend/tools",
                   "ais-bench_workload/tool/ais_bench", "CANN", "set_env.sh"):
        assert needle in msg
    assert not ascend.available()


@pytest.mark.parametrize("text,want", [
    ("package_name=Ascend-cann-toolkit\nversion=6.0.RC1\narch=x86_64\n", "6.0.RC1"),
    ("Version=7.0.0\n", "7.0.0"),
    ("6.3.RC2\n", "6.3.RC2"),
    ("", ""),
])
def test_parse_cann_version(text, want):
    assert atc.parse_cann_version(text) == want


def test_npu_device_name():
    assert atc.npu_device_name("310P3", "6.0.RC1") == "npu: Ascend310P3 (CANN 6.0.RC1)"
    assert atc.npu_device_name(None, None) == \
        "npu: Ascend (chip not recorded) (CANN version not recorded)"
