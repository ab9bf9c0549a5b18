"""The recipes' command lines against their upstream READMEs (``shared/third_party/modelzoo``).

(a) Each zoo recipe's ``recipe.yaml`` quotes its README: ``atc.command``,
``ais_bench.accuracy_command`` / ``perf_command``, ``preprocess.command`` and
``scoring.command`` appear in the README (whitespace normalised, backslash-newline
continuations joined).

(b) The kit's ``run_on_npu.sh`` runs the README's ATC, ais_bench and preprocessing lines word
for word (both sides read with ``shlex.split``), once the README's variables -- ``${bs}``,
``${chip_name}``, its paths and folder names -- are the kit's values (:data:`KIT_VALUES`).
What the kit adds is zoorepro's and the same for every recipe (:data:`KIT_ADDS`: the device,
the sweep's summary folder); a deviation from a README word is allowed only where the
recipe's ``notes`` say so (:data:`DEVIATIONS`).  The kits are made with ``--no-bins`` (the
preprocessing line is then the script's) and a small ONNX model with the recipe's input
and output names: the commands depend on neither the images nor the weights.
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from zoorepro import config, recipebook
from zoorepro.ascend import kit

from conftest import small_params
from npu_fixtures import tiny_onnx

SHARED = Path(__file__).resolve().parents[2] / "shared"
MODELZOO = SHARED / "third_party" / "modelzoo"
pytestmark = pytest.mark.skipif(not MODELZOO.is_dir(),
                                reason=f"{MODELZOO} not present (the upstream READMEs)")
ZOO = ("squeezenet1_1", "resnet50", "mobilenet_v2")
FIELDS = {"atc.command": lambda r: r.atc.command,
          "ais_bench.accuracy_command": lambda r: r.ais_bench.accuracy_command,
          "ais_bench.perf_command": lambda r: r.ais_bench.perf_command,
          "preprocess.command": lambda r: r.preprocess.command,
          "scoring.command": lambda r: r.scoring.command}
BATCH_SIZES = [1, 8]         # the kits' sweep (each recipe adds its accuracy batch size)


def normalise(text: str) -> str:
    """Backslash-newline continuations joined, whitespace runs made one space."""
    return " ".join(re.sub(r"\\[ \t]*\n", " ", text).split())


def readme_lines(name: str) -> list[str]:
    """The README's command lines (those starting with atc or python3), each normalised."""
    text = re.sub(r"\\[ \t]*\n", " ", (MODELZOO / name / "README.md").read_text("utf-8"))
    return [normalise(line) for line in text.splitlines()
            if line.strip().startswith(("atc ", "python3 "))]


def readme_line(name: str, kind: str) -> str | None:
    """The README's one line of ``kind`` (atc, accuracy, perf, preprocess); None if none."""
    recipe = recipebook.load(name)
    test = {"atc": lambda s: s.startswith("atc "),
            "accuracy": lambda s: s.startswith("python3 -m ais_bench") and " --input " in s,
            "perf": lambda s: s.startswith("python3 -m ais_bench") and "--loop" in s,
            "preprocess": lambda s: s.startswith(f"python3 {recipe.scripts['preprocess']} ")}
    found = [s for s in readme_lines(name) if test[kind](s)]
    assert len(found) <= 1, f"{name} README: {len(found)} {kind} lines: {found}"
    return found[0] if found else None


# ------------------------------------------------------------------ (a) recipe.yaml quotes
@pytest.mark.parametrize("field", sorted(FIELDS))
@pytest.mark.parametrize("name", ZOO)
def test_recipe_yaml_quotes_its_readme(name, field):
    recipe = recipebook.load(name)
    command = FIELDS[field](recipe)
    readme = normalise((MODELZOO / name / "README.md").read_text("utf-8"))
    if not command:
        assert field == "ais_bench.perf_command", f"{recipe.path}: {field} is empty"
        assert readme_line(name, "perf") is None, \
            f"{recipe.path}: {field} is empty but the README has {readme_line(name, 'perf')!r}"
        return
    quoted = normalise(command) in readme
    assert quoted, (f"{recipe.path}: {field} {normalise(command)!r} is not in {name}'s README "
                    f"({MODELZOO / name / 'README.md'}); write the README's line there, its "
                    f"paths as they are (the kit reads them as variables); its lines: "
                    f"{readme_lines(name)}")


# ------------------------------------------------------------------ (b) the kit's lines
def _kit_values(recipe, bs: int) -> dict:
    """README word -> the kit's word, per recipe: the README's paths, folders and variables
    (``${bs}`` is filled in before, ``${chip_name}`` stays the script's variable)."""
    om = f"om/{recipe.om_name(bs)}"
    onnx = f"model/{recipe.name}.onnx"
    return {
        "squeezenet1_1": {
            "--model=${onnx_file}": f"--model={onnx}",
            f"--output=squeezenet1_1_bs{bs}": f"--output={om}",
            f"--model=squeezenet1_1_bs{bs}.om": f"--model={om}.om",
            "${save_dir}": kit.BIN_DIR, "result": f"{kit.RESULTS}/result",
            "squeezenet1_1_preprocess.py": "$PREPROCESS_PY", "${data_dir}": "$DATA_DIR"},
        "resnet50": {
            "--model=resnet50_official.onnx": f"--model={onnx}",
            f"--output=resnet50_bs{bs}": f"--output={om}",
            f"./resnet50_bs{bs}.om": f"{om}.om", "./prep_dataset/": kit.BIN_DIR,
            "./": f"{kit.RESULTS}/result", "result": f"result_bs{bs}",
            "imagenet_torch_preprocess.py": "$PREPROCESS_PY", "./ImageNet/val": "$DATA_DIR",
            "./prep_dataset": kit.BIN_DIR},
        "mobilenet_v2": {
            "--model=${output_dir}/${model}.onnx": f"--model={onnx}",
            f"--output=${{output_dir}}/${{model}}_bs{bs}": f"--output={om}",
            "--soc_version=${soc}": "--soc_version=Ascend${chip_name}",
            f"./output/mobilenet_v2_bs{bs}.om": f"{om}.om", "./preprocess_data": kit.BIN_DIR,
            "./output": f"{kit.RESULTS}/result", "subdir": f"result_bs{bs}",
            "preprocess.py": "$PREPROCESS_PY",
            "/usr/local/MobileNetV2_for_Pytorch/imagenet/val/": "$DATA_DIR/"},
    }[recipe.name]


KIT_VALUES = _kit_values
# zoorepro's additions at the end of a line: the NPU (one id or a list) and, for the sweep,
# the folder of the summary ais_bench writes only when --output is given
KIT_ADDS = {"atc": lambda bs: [],
            "accuracy": lambda bs: ["--device", "${DEVICE_ID}", "${DIVIDE[@]+${DIVIDE[@]}}"],
            "perf": lambda bs: ["--device", "${FIRST_DEVICE}", "--output",
                                f"{kit.RESULTS}/perf", "--output_dirname", f"perf_bs{bs}"],
            "preprocess": lambda bs: []}
# (recipe, line) -> (README word prefix, the kit's), each named in the recipe's notes
DEVIATIONS = {("squeezenet1_1", "atc"): ("--input-shape=", "--input_shape=")}


@pytest.fixture(scope="module")
def kits(tmp_path_factory) -> dict:
    """name -> the text of its kit's run_on_npu.sh (made once per recipe)."""
    out = {}
    for name in ZOO:
        tmp = tmp_path_factory.mktemp(f"kit-{name}")
        recipe = recipebook.load(name)
        cfg = config.from_mapping(
            small_params(tmp, recipe=name, data_dir="/nowhere/val", weights="", aipp_config="",
                         onnx_model=str(tiny_onnx(tmp / "m.onnx", recipe)),
                         batch_sizes=BATCH_SIZES), check_paths=False)
        out[name] = kit.make_kit(cfg, tmp / "kit", bins=False, progress=False).read_text()
    return out


def kit_words(text: str, kind: str, bs: int) -> list[str]:
    """The kit script's line of ``kind`` at ``bs``, as shlex reads it."""
    if kind == "preprocess":
        (line,) = [s for s in text.splitlines() if '"$PREPROCESS_PY"' in s and
                   s.strip().startswith("python")]
        return shlex.split(line)
    log = {"atc": f"atc_bs{bs}", "accuracy": f"ais_bench_result_bs{bs}",
           "perf": f"ais_bench_perf_bs{bs}"}[kind]
    (line,) = [s for s in text.splitlines() if s.startswith(f'run_logged "$OUT/logs/{log}.log" ')]
    return shlex.split(line)[2:]


@pytest.mark.parametrize("kind", ["atc", "accuracy", "perf", "preprocess"])
@pytest.mark.parametrize("name", ZOO)
def test_the_kit_runs_the_readmes_lines(kits, name, kind):
    recipe = recipebook.load(name)
    line = readme_line(name, kind)
    if line is None:
        assert kind == "perf" and not recipe.ais_bench.perf_command
        pytest.skip(f"{name}'s README has no {kind} line (its notes: "
                    f"{'; '.join(n for n in recipe.notes if 'command' in n)})")
    # a README line with ${bs} is each OM's; one without is the accuracy batch size's
    sizes = sorted(set(BATCH_SIZES) | {recipe.ais_bench.accuracy_batch_size}) \
        if "${bs}" in line else [recipe.ais_bench.accuracy_batch_size]
    if kind in ("accuracy", "preprocess"):
        sizes = [recipe.ais_bench.accuracy_batch_size]
    for bs in sizes:
        values = KIT_VALUES(recipe, bs)
        want = [values.get(w, w) for w in shlex.split(line.replace("${bs}", str(bs)))]
        got = kit_words(kits[name], kind, bs)
        deviation = DEVIATIONS.get((name, kind))
        if deviation:
            old, new = deviation
            assert any(old.rstrip("=") in n for n in recipe.notes), \
                f"{recipe.path}: the kit writes {new} for the README's {old}; say so in notes"
            assert any(w.startswith(old) for w in want)        # the deviation is real
            want = [new + w[len(old):] if w.startswith(old) else w for w in want]
        assert got == want + KIT_ADDS[kind](bs), (name, kind, bs)
    if kind == "preprocess":    # the README's own paths, or ${data_dir}: the same line
        import dataclasses
        as_readme = dataclasses.replace(
            recipe, preprocess=dataclasses.replace(recipe.preprocess, command=line))
        assert kit.preprocess_argv(as_readme) == kit.preprocess_argv(recipe)


def test_every_kit_value_is_a_readme_word():
    """The table above holds nothing no README line has (at some batch size)."""
    for name in ZOO:
        recipe = recipebook.load(name)
        lines = [readme_line(name, k) for k in ("atc", "accuracy", "perf", "preprocess")]
        sizes = sorted(set(BATCH_SIZES) | {recipe.ais_bench.accuracy_batch_size})
        used = [False] * len(KIT_VALUES(recipe, 1))
        for bs in sizes:
            words = {w for s in lines if s for w in shlex.split(s.replace("${bs}", str(bs)))}
            used = [u or k in words for u, k in zip(used, KIT_VALUES(recipe, bs))]
        assert all(used), (name, [k for u, k in zip(used, KIT_VALUES(recipe, 1)) if not u])
