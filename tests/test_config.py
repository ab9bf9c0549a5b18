import json

import pytest
import yaml

from zoorepro import config
from zoorepro.runner import notebooks_dir
from zoorepro.stages import NOTEBOOKS

from conftest import ROOT, small_params


def test_demo_params_load_and_resolve_relative_to_the_yaml_file():
    cfg = config.load(ROOT / "params" / "demo.yaml")
    assert cfg.data_dir == str((ROOT / "demo/imagenet-sample-100/images").resolve())
    assert cfg.output_root == str((ROOT / "reports").resolve())
    assert cfg.backends[0] == "onnxruntime"
    with pytest.raises(Exception):
        cfg.name = "x"  # frozen


def test_unknown_key_lists_valid_keys(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("batch_size: 8\n")
    with pytest.raises(config.ConfigError) as e:
        config.load(p)
    msg = str(e.value)
    assert "unknown key 'batch_size'" in msg and "valid keys:" in msg and "batch_sizes" in msg
    assert str(p) in msg


def test_all_problems_reported_at_once(tmp_path):
    raw = small_params(tmp_path, batch_sizes=[0, 4], accuracy_batch_size="eight",
                       weights=str(tmp_path / "nope.pth"), backends=["tensorrt"])
    with pytest.raises(config.ConfigError) as e:
        config.from_mapping(raw)
    msg = str(e.value)
    assert "4 problem(s)" in msg
    assert "batch_sizes" in msg and "accuracy_batch_size: expected an integer" in msg
    assert "nope.pth does not exist" in msg and "unknown backend 'tensorrt'" in msg


def test_overrides_parse_yaml_and_keep_paths(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(small_params(tmp_path)))
    over = dict([config.parse_override("batch_sizes", "[1, 8]"),
                 config.parse_override("max_images", "3"),
                 config.parse_override("name", "123")])
    cfg = config.load(p, over)
    assert cfg.batch_sizes == (1, 8) and cfg.max_images == 3 and cfg.name == "123"
    with pytest.raises(config.ConfigError, match="unknown key"):
        config.load(p, {"bogus": 1})


def test_missing_params_file_and_bad_yaml(tmp_path):
    with pytest.raises(config.ConfigError, match="params file not found"):
        config.load(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(config.ConfigError, match="not valid YAML"):
        config.load(bad)


@pytest.mark.parametrize("nb", NOTEBOOKS)
def test_notebook_parameters_cell_is_the_config_signature(nb):
    cells = json.loads((notebooks_dir() / nb).read_text())["cells"]
    params = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1
    assert "".join(params[0]["source"]) == config.notebook_parameters_source()
    ns: dict = {}
    exec("".join(params[0]["source"]), ns)
    assert set(config.FIELD_NAMES) <= set(ns)


@pytest.mark.parametrize("nb", NOTEBOOKS)
def test_notebooks_committed_without_outputs(nb):
    cells = json.loads((notebooks_dir() / nb).read_text())["cells"]
    for c in cells:
        if c["cell_type"] == "code":
            assert not c.get("outputs") and c.get("execution_count") is None


def test_notebook_defaults_are_the_demo_params():
    """Running a notebook as it is in JupyterLab == zoorepro run params/demo.yaml."""
    from zoorepro.runner import notebooks_dir
    ns: dict = {}
    exec(config.notebook_parameters_source(), ns)
    import os
    cwd = os.getcwd()
    try:
        os.chdir(notebooks_dir())
        from_nb = config.from_namespace(ns)
    finally:
        os.chdir(cwd)
    from_yaml = config.load(ROOT / "params" / "demo.yaml")
    assert from_nb == from_yaml


def test_infer_streams_is_validated(tmp_path):
    assert config.from_mapping(small_params(tmp_path, infer_streams=2)).infer_streams == 2
    assert config.RunConfig().infer_streams == 0      # auto
    with pytest.raises(config.ConfigError, match="infer_streams: must be >= 0"):
        config.from_mapping(small_params(tmp_path, infer_streams=-1))


def test_atc_extra_args_cannot_override_the_recipes_options(tmp_path):
    from conftest import small_params
    for arg in ("--insert_op_conf=/etc/passwd", "--input_shape=image:8,3,224,224", "--output=x"):
        with pytest.raises(config.ConfigError, match="set by the recipe's ATC command"):
            config.from_mapping(small_params(tmp_path, atc_extra_args=[arg]))
    cfg = config.from_mapping(small_params(tmp_path, atc_extra_args=["--precision_mode=allow_fp32_to_fp16"]))
    assert cfg.atc_extra_args == ("--precision_mode=allow_fp32_to_fp16",)
