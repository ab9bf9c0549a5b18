"""One frozen, validated run configuration, loaded from ``params/*.yaml``.

Relative paths in a YAML file resolve against that file's folder; relative paths given
on the command line or in a notebook resolve against the current directory.  Every
problem found is reported at once, in one :class:`ConfigError`.
"""
from __future__ import annotations

import dataclasses
import os
import re
import shlex
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

import yaml
from .errors import ConfigError  # noqa: F401  (raised here; defined in errors)

# Keys whose values are filesystem paths (resolved to absolute paths on load).
PATH_KEYS = ("data_dir", "label_file", "weights", "aipp_config", "output_root", "bin_dir",
             "run_dir", "onnx_model")
# Paths that must exist when the run starts.
REQUIRED_EXISTING = ("data_dir", "label_file", "weights", "aipp_config")

KNOWN_BACKENDS = ("onnxruntime", "torch", "ais_bench")
OUTFMTS = ("TXT", "NPY", "BIN")


@dataclass(frozen=True)
class RunConfig:
    """Everything one run needs.  Field order is the notebooks' ``parameters`` signature."""

    name: str = "squeezenet1_1"
    data_dir: str = "demo/imagenet-sample-100/images"
    label_file: str = "demo/imagenet-sample-100/val_label.txt"
    weights: str = "demo/weights/squeezenet1_1_caffe_folded.pth"
    aipp_config: str = "aipp.config"
    batch_sizes: tuple = (1, 4, 8, 16, 32, 64)
    accuracy_batch_size: int = 1
    backends: tuple = ("onnxruntime", "torch")
    device: str = "auto"          # auto | cpu | cuda
    precision: str = "fp32"       # fp32 | fp16 (fp16: torch on CUDA; ATC's default is fp16)
    outfmt: str = "TXT"
    opset: int = 11
    bench_iterations: int = 50    # timed iterations per batch size (like --loop=50)
    bench_min_seconds: float = 0.0
    warmup: int = 1
    threads: int = 0              # inference threads in all; 0: physical cores
    infer_streams: int = 0        # concurrent inference streams; 0: auto (CPU ORT: one per core)
    workers: int = 0              # preprocessing and output-reading processes; 0: all cores
    max_images: int = 0           # 0: every image in data_dir
    output_root: str = "reports"
    bin_dir: str = ""             # "": <run_dir>/bin
    run_dir: str = ""             # "": a new folder under output_root
    onnx_model: str = ""          # "": export from weights
    soc_version: str = ""         # e.g. Ascend310P3; "": detect with npu-smi
    device_id: int = 0
    atc_extra_args: tuple = ()
    reference_tolerance_pct: float = 1.0
    allow_label_mismatch: bool = False   # evaluate the images that have labels; report the rest

    # ----------------------------------------------------------------- helpers
    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        for k, v in out.items():
            if isinstance(v, tuple):
                out[k] = list(v)
        return out

    def replace(self, **changes) -> "RunConfig":
        return from_mapping({**self.to_dict(), **changes}, base_dir=Path.cwd())

    @property
    def primary_backend(self) -> str:
        return self.backends[0]


FIELD_NAMES = tuple(f.name for f in fields(RunConfig))
DEFAULTS = {f.name: f.default for f in fields(RunConfig)}


def _valid_keys_text() -> str:
    return "valid keys: " + ", ".join(FIELD_NAMES)


def _check_int(key, value, problems, minimum=None):
    if isinstance(value, bool) or not isinstance(value, int):
        problems.append(f"{key}: expected an integer, got {value!r} ({type(value).__name__})")
        return
    if minimum is not None and value < minimum:
        problems.append(f"{key}: must be >= {minimum}, got {value}")


def _coerce(raw: Mapping[str, Any], base_dir: Path, problems: list) -> dict:
    values = dict(DEFAULTS)
    unknown = sorted(k for k in raw if k not in DEFAULTS)
    for k in unknown:
        problems.append(f"unknown key {k!r}")
    for key, value in raw.items():
        if key not in DEFAULTS:
            continue
        default = DEFAULTS[key]
        if value is None:
            value = default
        if isinstance(default, tuple):
            if key == "atc_extra_args" and isinstance(value, str):
                value = shlex.split(value)   # "--precision_mode=allow_fp32_to_fp16 --x=1"
            elif isinstance(value, (str, int)) and not isinstance(value, bool):
                value = [value]
            if not isinstance(value, (list, tuple)):
                problems.append(f"{key}: expected a list, got {value!r}")
                continue
            value = tuple(value)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                problems.append(f"{key}: expected true or false, got {value!r}")
                continue
        elif isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                problems.append(f"{key}: expected a number, got {value!r} ({type(value).__name__})")
                continue
            value = float(value)
        elif isinstance(default, int):
            _check_int(key, value, problems)
        elif isinstance(default, str):
            if not isinstance(value, (str, os.PathLike)):
                problems.append(f"{key}: expected a string, got {value!r} ({type(value).__name__})")
                continue
            value = os.fspath(value)
        values[key] = value
    for key in PATH_KEYS:
        v = values.get(key)
        if isinstance(v, str) and v and not os.path.isabs(v):
            values[key] = str((base_dir / v).resolve())
    return values


# options the recipe's ATC command sets (atc.atc_command); extra args may not repeat them
RECIPE_ATC_OPTIONS = ("model", "framework", "output", "input_shape", "log", "soc_version",
                      "enable_small_channel", "insert_op_conf")


def _validate(v: dict, problems: list, check_paths: bool) -> None:
    bss = v["batch_sizes"]
    if not bss:
        problems.append("batch_sizes: must list at least one batch size")
    for bs in bss:
        if isinstance(bs, bool) or not isinstance(bs, int) or bs <= 0:
            problems.append(f"batch_sizes: every batch size must be an integer > 0, got {bs!r}")
    for key, minimum in (("accuracy_batch_size", 1), ("bench_iterations", 1), ("warmup", 0),
                         ("threads", 0), ("infer_streams", 0), ("workers", 0), ("max_images", 0), ("opset", 7),
                         ("device_id", 0)):
        if isinstance(v[key], int) and not isinstance(v[key], bool) and v[key] < minimum:
            problems.append(f"{key}: must be >= {minimum}, got {v[key]}")
    if isinstance(v["bench_min_seconds"], float) and v["bench_min_seconds"] < 0:
        problems.append("bench_min_seconds: must be >= 0")
    if not v["backends"]:
        problems.append("backends: list at least one of " + ", ".join(KNOWN_BACKENDS))
    for b in v["backends"]:
        if b not in KNOWN_BACKENDS:
            problems.append(f"backends: unknown backend {b!r} (known: {', '.join(KNOWN_BACKENDS)})")
    if len(set(v["backends"])) != len(v["backends"]):
        problems.append("backends: a backend is listed twice")
    if isinstance(v["outfmt"], str) and v["outfmt"].upper() not in OUTFMTS:
        problems.append(f"outfmt: must be one of {', '.join(OUTFMTS)}, got {v['outfmt']!r}")
    if v["precision"] not in ("fp32", "fp16"):
        problems.append(f"precision: must be fp32 or fp16, got {v['precision']!r}")
    if v["device"] not in ("auto", "cpu", "cuda"):
        problems.append(f"device: must be auto, cpu or cuda, got {v['device']!r}")
    soc = v.get("soc_version")
    if soc and (not isinstance(soc, str) or not re.fullmatch(r"(Ascend)?[0-9A-Za-z]{2,32}", soc)):
        problems.append(f"soc_version: {soc!r} is not a chip name such as Ascend310P3 "
                        f"(letters and digits, as 'npu-smi info' prints); leave it empty to "
                        f"read it from npu-smi")
    if isinstance(v["device_id"], int) and v["device_id"] > 255:
        problems.append(f"device_id: an NPU id is 0-255, got {v['device_id']}")
    for a in v["atc_extra_args"] or ():
        if not isinstance(a, str) or not re.fullmatch(r"--[A-Za-z][A-Za-z0-9_]*(=[A-Za-z0-9_.,:=+/@%-]*)?", a):
            problems.append(f"atc_extra_args: {a!r} is not an ATC option such as "
                            f"--precision_mode=allow_fp32_to_fp16 (letters, digits and "
                            f"_.,:=+/@%- only)")
        elif a[2:].split("=", 1)[0] in RECIPE_ATC_OPTIONS:
            problems.append(f"atc_extra_args: {a.split('=', 1)[0]} is set by the recipe's ATC "
                            f"command itself ({', '.join('--' + o for o in RECIPE_ATC_OPTIONS)}); "
                            f"change the matching parameter instead, or leave it out")
    if not str(v["name"]).strip() or any(c in str(v["name"]) for c in "/\\"):
        problems.append(f"name: must be a non-empty name without slashes, got {v['name']!r}")
    if check_paths:
        for key in REQUIRED_EXISTING:
            p = v.get(key)
            if key == "weights" and v.get("onnx_model"):
                continue
            if isinstance(p, str) and not os.path.exists(p):
                problems.append(f"{key}: {p} does not exist (set {key} in the params file "
                                f"or with -p {key} PATH)")


def from_mapping(raw: Mapping[str, Any], base_dir: Path | str | None = None, *,
                 source: str = "params", check_paths: bool = True) -> RunConfig:
    """Validate ``raw`` into a :class:`RunConfig`; raise :class:`ConfigError` listing all problems."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: expected a mapping of key: value, got {type(raw).__name__}.\n"
                          + _valid_keys_text())
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    problems: list[str] = []
    values = _coerce(raw, base, problems)
    _validate(values, problems, check_paths)
    if problems:
        raise ConfigError(f"{source}: {len(problems)} problem(s):\n  - " + "\n  - ".join(problems)
                          + "\n" + _valid_keys_text())
    values["outfmt"] = values["outfmt"].upper()
    return RunConfig(**values)


def parse_override(key: str, text: str) -> tuple[str, Any]:
    """``-p KEY VALUE``: VALUE is read as YAML (``-p batch_sizes [1,8]``, ``-p max_images 10``)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    if DEFAULTS.get(key) is not None and isinstance(DEFAULTS[key], str) and value is not None:
        value = text  # keep path-like strings verbatim
    return key, value


def load(path: str | os.PathLike | None = None, overrides: Mapping[str, Any] | None = None, *,
         check_paths: bool = True) -> RunConfig:
    """Load ``path`` (YAML) and apply ``overrides`` (relative paths: against the current dir)."""
    raw: dict = {}
    base = Path.cwd()
    source = "params"
    if path is not None:
        p = Path(path)
        source = str(p)
        if not p.is_file():
            raise ConfigError(f"{p}: params file not found (give a YAML file such as params/demo.yaml)")
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML: {exc}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: expected a mapping of key: value at top level.\n" + _valid_keys_text())
        base = p.resolve().parent
        # resolve the file's own relative paths against its folder first
        problems: list[str] = []
        raw = _coerce(loaded, base, problems)
        if problems:
            raise ConfigError(f"{p}: {len(problems)} problem(s):\n  - " + "\n  - ".join(problems)
                              + "\n" + _valid_keys_text())
        raw = {k: raw[k] for k in loaded}
    if overrides:
        bad = sorted(k for k in overrides if k not in DEFAULTS)
        if bad:
            raise ConfigError(f"override(s) {', '.join(map(repr, bad))}: unknown key(s).\n" + _valid_keys_text())
        over = _coerce(dict(overrides), Path.cwd(), [])
        raw.update({k: over[k] for k in overrides})
    return from_mapping(raw, base_dir=Path.cwd(), source=source, check_paths=check_paths)


def from_namespace(namespace: Mapping[str, Any], *, check_paths: bool = True) -> RunConfig:
    """Build the config from a notebook's ``parameters`` cell (its globals)."""
    return from_mapping({k: namespace[k] for k in FIELD_NAMES if k in namespace},
                        base_dir=Path.cwd(), source="notebook parameters", check_paths=check_paths)


# What params/demo.yaml sets beyond the defaults; the notebooks' parameters carry the same.
DEMO = {"name": "demo", "bench_iterations": 10, "bench_min_seconds": 0.2}


def notebook_parameters_source(cfg: RunConfig | None = None) -> str:
    """The text of a notebook ``parameters`` cell for ``cfg`` (defaults: the demo, from notebooks/)."""
    cfg = cfg or RunConfig(**DEMO)
    lines = ["# Parameters (papermill overrides these; defaults run the embedded demo).",
             "# Keys and meanings: lib/zoorepro/config.py RunConfig."]
    for f in fields(RunConfig):
        value = getattr(cfg, f.name)
        if f.name in PATH_KEYS and isinstance(value, str) and value and not os.path.isabs(value):
            value = "../" + value
        if isinstance(value, tuple):
            value = list(value)
        lines.append(f"{f.name} = {value!r}")
    return "\n".join(lines)
