import json
import re

import pytest
import yaml

from zoorepro import config
from zoorepro.runner import notebooks_dir
from zoorepro.run.stages import NOTEBOOKS

from conftest import ROOT, small_params


def test_demo_params_load_and_resolve_relative_to_the_yaml_file():
    cfg = config.load(ROOT / "params" / "demo.yaml")
    assert cfg.data_dir == str((ROOT / "demo/imagenet-sample-100/images").resolve())
    assert cfg.output_root == str((ROOT / "reports").resolve())
    assert cfg.backends[0] == "onnxruntime"
    import dataclasses
    with pytest.raises(dataclasses.FrozenInstanceError):
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
def test_notebook_parameters_cell_holds_the_keys_it_uses_typed_and_explained(nb):
    from zoorepro.run.stages import notebook_keys
    cells = json.loads((notebooks_dir() / nb).read_text())["cells"]
    params = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1
    source = "".join(params[0]["source"])
    assert source == config.notebook_parameters_source(notebook_keys(nb))
    ns: dict = {}
    exec(source, ns)
    keys = [k for k in config.FIELD_NAMES if k in ns]
    assert keys and set(keys) == set(notebook_keys(nb)) and len(keys) < len(config.FIELD_NAMES)
    for line in source.splitlines()[2:]:                 # key: type = value  # meaning
        assert re.fullmatch(r"\w+: (str|int|float|bool|list) = .+  # .+", line), line


def test_papermill_explains_every_parameter():
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "papermill", "--help-notebook",
                        str(notebooks_dir() / "03_infer.ipynb")], capture_output=True, text=True)
    assert r.returncode == 0 and "Unknown type" not in r.stdout
    assert "bench_iterations: int (default 10)" in r.stdout and "timed iterations" in r.stdout


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
    from_yaml = config.load(ROOT / "params" / "demo.yaml")
    for where in (notebooks_dir(), ROOT):       # JupyterLab's folder, or papermill from the root
        try:
            os.chdir(where)
            assert config.from_namespace(ns) == from_yaml
            # papermill -f params/demo.yaml: the file's own relative paths, from either place
            raw = yaml.safe_load((ROOT / "params" / "demo.yaml").read_text())
            assert config.from_namespace(raw) == from_yaml
        finally:
            os.chdir(cwd)


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
    cfg = config.from_mapping(small_params(
        tmp_path, atc_extra_args=["--precision_mode=allow_fp32_to_fp16"]))
    assert cfg.atc_extra_args == ("--precision_mode=allow_fp32_to_fp16",)


def test_yaml_aliases_are_refused_fast(tmp_path):
    """A billion-laughs bomb under a valid key ran for minutes (and its message expanded it)."""
    import time
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    lines += [f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]" for p, c in zip("abcdefg", "bcdefgh")]
    p = tmp_path / "bomb.yaml"
    p.write_text("\n".join(lines + ["batch_sizes: [*h, *h, *h, *h, *h, *h, *h, *h, *h]"]) + "\n")
    t0 = time.perf_counter()
    with pytest.raises(config.ConfigError, match="no YAML alias") as e:
        config.load(p, check_paths=False)
    assert time.perf_counter() - t0 < 5 and len(str(e.value)) < 1000 and str(p) in str(e.value)
    assert config.parse_override("batch_sizes", "*h") == ("batch_sizes", "*h")   # text, no crash


@pytest.mark.parametrize("key,value,needle", [
    ("bench_min_seconds", float("inf"), "bench_min_seconds: must be <= 3,600"),
    ("bench_min_seconds", float("nan"), "bench_min_seconds: must be from 0 to 3,600"),
    ("batch_sizes", [100000], "batch_sizes: 100000 is above 4096"),
    ("accuracy_batch_size", 100000, "accuracy_batch_size: must be <= 4,096"),
    ("bench_iterations", 10**12, "bench_iterations: must be <= 1,000,000"),
    ("threads", 10**400, "threads: must be <= 4,096, got 1000"),
    ("reference_tolerance_pct", float("nan"), "reference_tolerance_pct: must be from 0 to 5"),
    ("batch_sizes", list(range(1, 100)), r"expected a list \(at most 64 entries\)"),
    ("name", "x" * 300, "300 characters, at most 100"),
], ids=["inf-seconds", "nan-seconds", "batch", "accuracy-batch", "iterations", "threads",
        "nan-tolerance", "long-list", "long-name"])
def test_unbounded_values_are_refused(tmp_path, key, value, needle):
    with pytest.raises(config.ConfigError, match=needle) as e:
        config.from_mapping(small_params(tmp_path, **{key: value}))
    assert len(str(e.value)) < 2000


def test_odd_yaml_is_a_config_error_not_a_traceback(tmp_path):
    for text in ("1: 2\nx: 3\n", "backends: [{a: 1}]\n", "atc_extra_args: 'a\\'\n",
                 "[" * 5000, "name: \x00\n"):
        p = tmp_path / "p.yaml"
        p.write_text(text)
        with pytest.raises(config.ConfigError):
            config.load(p, check_paths=False)
    (tmp_path / "p.yaml").write_bytes(b"name: \xff\n")
    with pytest.raises(config.ConfigError, match="not UTF-8"):
        config.load(tmp_path / "p.yaml", check_paths=False)


# ------------------------------------------------------------------ overrides, one path
def _file(tmp_path, **extra):
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(small_params(tmp_path, **extra)))
    return p


@pytest.mark.parametrize("key,text,want", [
    ("reference_tolerance_pct", "1e-1", 0.1), ("bench_min_seconds", "2e0", 2.0),
    ("bench_min_seconds", "1E1", 10.0), ("max_images", "1E3", 1000),
    ("batch_sizes", "[1e0, 8]", (1, 8)),
])
def test_scientific_notation_is_a_number_not_the_default(tmp_path, key, text, want):
    """PyYAML reads 1e-1 as a string: it gave 1.0 (the default) for -p ... 1e-1."""
    cfg = config.load(_file(tmp_path), dict([config.parse_override(key, text)]))
    assert getattr(cfg, key) == want and type(getattr(cfg, key)) is type(want)


def test_a_wrong_typed_override_is_an_error_never_the_default(tmp_path):
    p = _file(tmp_path, warmup=3, bench_min_seconds=1.5)
    for key, text in (("warmup", "x"), ("bench_min_seconds", "fast"), ("max_images", "1e-1")):
        with pytest.raises(config.ConfigError, match=f"{key}: expected") as e:
            config.load(p, dict([config.parse_override(key, text)]))
        assert str(p) in str(e.value)
    cfg = config.load(p, dict([config.parse_override("max_images", "2")]))
    assert (cfg.warmup, cfg.bench_min_seconds, cfg.max_images) == (3, 1.5, 2)   # the file's


def test_file_and_override_problems_come_in_one_error(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(small_params(tmp_path, warmup="many")))
    over = dict([config.parse_override("opset", "eleven"), ("bogus", 1)])
    with pytest.raises(config.ConfigError) as e:
        config.load(p, over)
    msg = str(e.value)
    assert "3 problem(s)" in msg and "warmup: expected an integer" in msg
    assert "override: opset: expected an integer" in msg and "unknown key 'bogus'" in msg


def test_reference_tolerance_is_at_most_five_points(tmp_path):
    assert config.from_mapping(small_params(tmp_path, reference_tolerance_pct=5)) \
        .reference_tolerance_pct == 5.0
    with pytest.raises(config.ConfigError, match="reference_tolerance_pct: must be <= 5"):
        config.from_mapping(small_params(tmp_path, reference_tolerance_pct=50))
    assert "0 to 5" in config.HELP["reference_tolerance_pct"]


@pytest.mark.parametrize("name", ["a\nb", "..", "-x", "a\x07b", "a b", "x\r", "../up", ""])
def test_unsafe_run_names_are_refused(tmp_path, name):
    with pytest.raises(config.ConfigError, match="name: .*(not a safe name|empty)"):
        config.from_mapping(small_params(tmp_path, name=name))


@pytest.mark.parametrize("address", ["garbage", "tcp://garbage", "tcp://", "http://h:8786",
                                     "tcp://h:99999", "tcp://h:0", "tcp://a b:1", "tcp://h:x"])
def test_scheduler_addresses_are_checked_as_dask_reads_them(tmp_path, address):
    with pytest.raises(config.ConfigError, match="scheduler: .*not a Dask scheduler address"):
        config.from_mapping(small_params(tmp_path, scheduler=address))


@pytest.mark.parametrize("address", ["tcp://10.0.0.5:8786", "10.0.0.5:8786", "tls://h.x:1",
                                     "tcp://[::1]:8786", "ucx://node-1:8786", "ws://h:80"])
def test_scheduler_addresses_dask_accepts_pass(tmp_path, address):
    assert config.from_mapping(small_params(tmp_path, scheduler=address)).scheduler == address


def test_repeated_batch_sizes_are_refused(tmp_path):
    with pytest.raises(config.ConfigError, match=r"batch_sizes: 1 listed 3 times") as e:
        config.from_mapping(small_params(tmp_path, batch_sizes=[1, 1, 1, 8]))
    assert "1 problem(s)" in str(e.value)


def test_a_mistyped_key_gets_a_suggestion_on_every_route(tmp_path):
    from zoorepro import runner
    p = tmp_path / "p.yaml"
    p.write_text("max_image: 5\n")
    for call in (lambda: config.load(p), lambda: config.load(None, {"bench_iteration": 3}),
                 lambda: config.from_mapping({"warmpu": 1})):
        with pytest.raises(config.ConfigError, match=r"did you mean '(max_images|"
                                                     r"bench_iterations|warmup)'\?"):
            call()
    with pytest.raises(config.ConfigError, match=r"unknown key 'max_image' \(did you mean "
                                                 r"'max_images'\?\)"):
        runner.refuse_unknown_parameters({"In": ["# Parameters\nmax_image = 5\n"]})
    runner.refuse_unknown_parameters({"In": ["# Parameters\nmax_images = 5\n"]})   # a key


def test_a_bad_value_is_not_followed_by_every_valid_key(tmp_path):
    with pytest.raises(config.ConfigError) as e:
        config.load(None, {"data_dir": str(tmp_path / "nowhere")})
    assert "data_dir" in str(e.value) and "valid keys" not in str(e.value)


def test_the_readme_parameter_table_names_every_field_and_no_other():
    """README's "Parameters" table is held to the config's own fields (one place: config)."""
    import re

    from conftest import ROOT
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Parameters"):text.index("## What a run folder holds")]
    rows = [ln for ln in section.splitlines() if ln.startswith("| `")]
    named = {k for ln in rows for k in re.findall(r"`(\w+)`", ln.split(" | ")[0])}
    assert named == set(config.FIELD_NAMES), (set(config.FIELD_NAMES) - named,
                                              named - set(config.FIELD_NAMES))


# ------------------------------------------------------------------ no value is no default
NO_VALUE = "(no value given|an empty value); give a value, or leave the key out for the default"


@pytest.mark.parametrize("key,text,default", [
    ("max_images", "", "0"), ("max_images", "null", "0"), ("max_images", "~", "0"),
    ("batch_sizes", "null", "[1, 4, 8, 16, 32, 64]"), ("name", "null", "'demo'"),
    ("name", "", "'demo'"), ("output_root", "", "'reports'"), ("run_dir", "null", "''"),
    ("allow_label_mismatch", "", "False"), ("atc_extra_args", "~", "[]"),
])
def test_an_explicit_null_or_empty_override_is_refused_never_the_default(tmp_path, key, text,
                                                                          default):
    """-p max_images '' (null, ~) gave 0, all images; -p name null gave 'demo'."""
    p = _file(tmp_path)
    with pytest.raises(config.ConfigError) as e:
        config.load(p, dict([config.parse_override(key, text)]))
    msg = str(e.value)
    assert re.search(f"override: {key}: {NO_VALUE} {re.escape(default)}", msg), msg
    assert "1 problem(s)" in msg


@pytest.mark.parametrize("line", ["max_images:", "max_images: null", "max_images: ~",
                                  "max_images: ''", "batch_sizes:", "name: null"])
def test_an_explicit_null_in_a_params_file_is_refused(tmp_path, line):
    p = tmp_path / "p.yaml"
    p.write_text(line + "\n")
    with pytest.raises(config.ConfigError, match=f"{line.split(':')[0]}: {NO_VALUE}") as e:
        config.load(p, check_paths=False)
    assert str(p) in str(e.value)


def test_papermill_none_is_refused_on_the_notebook_route():
    for key in ("max_images", "name", "batch_sizes", "bench_min_seconds"):
        with pytest.raises(config.ConfigError, match=f"{key}: {NO_VALUE}"):
            config.from_namespace({key: None}, check_paths=False)
    with pytest.raises(config.ConfigError, match=f"max_images: {NO_VALUE} 0"):
        config.from_namespace({"max_images": ""}, check_paths=False)


@pytest.mark.parametrize("key", ["bin_dir", "run_dir", "onnx_model", "soc_version",
                                 "scheduler"])
def test_an_empty_string_keeps_its_documented_meaning(tmp_path, key):
    assert key in config.EMPTY_MEANS and config.DEFAULTS[key] == ""
    cfg = config.load(_file(tmp_path), dict([config.parse_override(key, "")]))
    assert getattr(cfg, key) == ""
    with pytest.raises(config.ConfigError, match=f"{key}: {NO_VALUE} ''"):
        config.load(_file(tmp_path), dict([config.parse_override(key, "null")]))
    with pytest.raises(config.ConfigError, match=f"{key}: an empty value"):
        config.load(_file(tmp_path), {key: "  "})


# ------------------------------------------------------------------ YAML 1.2 numbers
@pytest.mark.parametrize("key,text,needle", [
    ("max_images", "010", "leading zero"), ("max_images", "-07", "leading zero"),
    ("max_images", "0x10", "expected an integer"), ("max_images", "0o10", "expected an integer"),
    ("max_images", "1:30", "expected an integer"), ("bench_min_seconds", "1:30", "expected a num"),
    ("max_images", "1_000", "expected an integer"), ("max_images", "1.5", "expected an integer"),
    ("max_images", "1e-1", "expected an integer"), ("allow_label_mismatch", "yes", "true or false"),
    ("allow_label_mismatch", "on", "true or false"), ("allow_label_mismatch", "0", "true or f"),
    ("bench_min_seconds", "0b11", "expected a number"),
])
def test_yaml_1_1_readings_are_refused_never_another_number(tmp_path, key, text, needle):
    """-p max_images 010 gave 8 (octal), 0x10 16, 1:30 90 (sexagesimal), exit 0."""
    with pytest.raises(config.ConfigError, match=f"override: {key}: .*{needle}") as e:
        config.load(_file(tmp_path), dict([config.parse_override(key, text)]))
    assert "1 problem(s)" in str(e.value)


@pytest.mark.parametrize("key,text,want", [
    ("max_images", "1.0", 1), ("max_images", "1e0", 1), ("max_images", "2E1", 20),
    ("max_images", "'7'", 7), ("max_images", "+3", 3), ("bench_min_seconds", ".5", 0.5),
    ("bench_min_seconds", "3", 3.0), ("bench_min_seconds", "1.", 1.0),
    ("reference_tolerance_pct", "5e-1", 0.5), ("batch_sizes", "[1.0, 8e0, '16']", (1, 8, 16)),
    ("allow_label_mismatch", "True", True), ("name", "010", "010"), ("name", "1e3", "1e3"),
])
def test_whole_numbers_in_every_spelling_and_yaml_1_2_floats(tmp_path, key, text, want):
    cfg = config.load(_file(tmp_path), dict([config.parse_override(key, text)]))
    assert getattr(cfg, key) == want and type(getattr(cfg, key)) is type(want)


def test_integer_fields_read_whole_floats_on_every_route(tmp_path):
    p = _file(tmp_path, max_images=2.0, warmup=0.0)
    cfg = config.load(p)
    assert (cfg.max_images, cfg.warmup) == (2, 0) and type(cfg.max_images) is int
    assert config.from_namespace({"max_images": 3.0}, check_paths=False).max_images == 3
    with pytest.raises(config.ConfigError, match=r"max_images: expected an integer, got 2\.5"):
        config.from_mapping(small_params(tmp_path, max_images=2.5))
    with pytest.raises(config.ConfigError, match="batch_sizes: every batch size must be an "
                                                 r"integer > 0, got 1\.5"):
        config.from_mapping(small_params(tmp_path, batch_sizes=[1.5, 8]))


def test_params_files_read_yaml_1_2(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("max_images: 010\nallow_label_mismatch: yes\nbench_min_seconds: 1e-1\n"
                 "name: 2024-01-01\nsoc_version: 1e3\n")
    with pytest.raises(config.ConfigError) as e:
        config.load(p, check_paths=False)
    msg = str(e.value)
    assert "3 problem(s)" in msg and "max_images: '010' has a leading zero" in msg
    assert "soc_version: expected a string, got 1000.0 (float)" in msg     # YAML 1.2: 1e3
    assert "allow_label_mismatch: expected true or false, got 'yes'" in msg
    p.write_text("bench_min_seconds: 1e-1\nname: 2024-01-01\nmax_images: 10\n")
    cfg = config.load(p, check_paths=False)
    assert (cfg.bench_min_seconds, cfg.name, cfg.max_images) == (0.1, "2024-01-01", 10)


# ------------------------------------------------------------------ one declaration per key
def test_each_key_is_declared_once_and_the_rest_derived_from_it():
    """configspec.Params holds each key's type, default and Spec; the tables are read off it."""
    import dataclasses

    from zoorepro import configspec
    specs = {f.name: f.metadata["spec"] for f in dataclasses.fields(config.RunConfig)}
    assert tuple(specs) == config.FIELD_NAMES and all(s.help for s in specs.values())
    assert config.HELP == {k: s.help for k, s in specs.items()}
    assert config.PATH_KEYS == tuple(k for k, s in specs.items() if s.path)
    assert set(config.REQUIRED_EXISTING) <= set(config.PATH_KEYS)
    assert set(config.EMPTY_MEANS) == {k for k, d in config.DEFAULTS.items() if d == ""} - {
        "output_root"}
    for key, s in specs.items():
        numeric = type(config.DEFAULTS[key]) in (int, float)
        assert (s.minimum is not None) == (s.maximum is not None), key   # both bounds or none
        assert numeric <= (s.maximum is not None), f"{key}: a number with no bounds"
        if s.maximum is not None:
            assert config.MAXIMA[key] == s.maximum
    assert config.MAXIMA["list"] == configspec.LIST_MAX and config.MAXIMA["file"] == 1 << 20


def test_choices_come_from_their_single_sources(tmp_path):
    from zoorepro.backends import registry
    from zoorepro.outputs import FORMATS
    assert config.SPECS["outfmt"].allowed() == FORMATS
    assert config.SPECS["backends"].allowed() == registry.names()
    for key, value, needle in (
            ("outfmt", "csv", "outfmt: must be one of TXT, NPY, BIN, got 'csv'"),
            ("precision", "fp64",
             "precision: must be '' (the recipe's), fp32, fp16 or int8, got 'fp64'"),
            ("device", "tpu", "device: must be auto, cpu or cuda, got 'tpu'"),
            ("timing", "wall", "timing: must be device (compute only, as ais_bench) or call "
                               "(around each synchronous call), got 'wall'")):
        with pytest.raises(config.ConfigError) as e:
            config.from_mapping(small_params(tmp_path, **{key: value}))
        assert needle in str(e.value) and "1 problem(s)" in str(e.value)


@pytest.mark.parametrize("key,value,line", [
    ("batch_sizes", "[1, 8", "batch_sizes: '[1, 8' is not a YAML list such as [1, 8]"),
    ("run_dir", " ", "run_dir: an empty value (' '); give a value, or leave the key out for "
                     "the default ''"),
    ("max_images", "2.5", "max_images: expected an integer, got '2.5' (not a whole number)"),
])
def test_one_reading_of_a_value_on_every_route(tmp_path, key, value, line):
    """The file, -p, a mapping and a notebook's parameters read a value the same way."""
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump({key: value}))
    routes = {"file": lambda: config.load(p, check_paths=False),
              "override": lambda: config.load(None, {key: value}, check_paths=False),
              "mapping": lambda: config.from_mapping({key: value}, check_paths=False),
              "notebook": lambda: config.from_namespace({key: value}, check_paths=False)}
    for route, call in routes.items():
        with pytest.raises(config.ConfigError) as e:
            call()
        assert line in str(e.value) and "1 problem(s)" in str(e.value), (route, str(e.value))


def test_a_lower_case_outfmt_is_kept_upper_case_on_every_route(tmp_path):
    assert config.from_mapping(small_params(tmp_path, outfmt="npy")).outfmt == "NPY"
    assert config.from_namespace({"outfmt": "bin"}, check_paths=False).outfmt == "BIN"
    assert config.load(None, {"outfmt": "txt"}, check_paths=False).outfmt == "TXT"
