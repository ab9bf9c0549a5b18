"""One frozen, validated run configuration, loaded from ``params/*.yaml``.

Relative paths in a YAML file resolve against that file's folder; relative paths given
on the command line or in a notebook resolve against the current directory.  Every
problem found is reported at once, in one :class:`ConfigError`.
"""
from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

import yaml
from zoorepro.addresses import scheduler_problem
from zoorepro.configspec import EMPTY_MEANS, HELP, MAXIMA, coerce  # noqa: F401 (EMPTY_MEANS)
from zoorepro.configspec import show as _show
from zoorepro.errors import ConfigError  # noqa: F401  (raised here; defined in errors)
from zoorepro.files import load_yaml
from zoorepro.backends import registry
from zoorepro.names import name_problem
from zoorepro.outputs import FORMATS as OUTFMTS

# Keys whose values are filesystem paths (resolved to absolute paths on load).
PATH_KEYS = ("data_dir", "label_file", "weights", "aipp_config", "output_root", "bin_dir",
             "run_dir", "onnx_model")
# A chip name as 'npu-smi info' prints it (Ascend310P3, 310B1); run_on_npu.sh.j2 checks the
# same pattern in bash (tests/test_kit.py holds the two equal).
SOC_VERSION_RE = re.compile(r"^(Ascend)?[0-9A-Za-z]{2,32}$")
# Paths that must exist when the run starts.
REQUIRED_EXISTING = ("data_dir", "label_file", "weights", "aipp_config")



@dataclass(frozen=True)
class RunConfig:
    """Everything one run needs.  Field order is the notebooks' ``parameters`` signature."""

    name: str = "demo"
    data_dir: str = "demo/imagenet-sample-100/images"
    label_file: str = "demo/imagenet-sample-100/val_label.txt"
    weights: str = "demo/weights/squeezenet1_1_caffe_folded.pth"
    aipp_config: str = "aipp.config"
    batch_sizes: tuple = (1, 4, 8, 16, 32, 64)
    accuracy_batch_size: int = 1
    backends: tuple = ("onnxruntime", "torch")
    device: str = "auto"          # auto | cpu | cuda
    precision: str = "fp32"       # fp32 | fp16 (fp16: torch on CUDA; ATC's default is fp16)
    timing: str = "device"        # device: compute only, as ais_bench's NPU_compute_time; call
    outfmt: str = "TXT"
    opset: int = 11
    bench_iterations: int = 10    # timed iterations per batch size (the recipe's --loop is 50)
    bench_min_seconds: float = 0.2
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
    shards: int = 1               # > 1: preprocessing and the accuracy run as Dask tasks
    scheduler: str = ""           # Dask scheduler address for shards; "": a LocalCluster here

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

    @property
    def om_batch_sizes(self) -> list[int]:
        """Batch sizes that need an ``.om`` (ATC): the sweep's and the accuracy run's."""
        return sorted(set(self.batch_sizes) | {self.accuracy_batch_size})


FIELD_NAMES = tuple(f.name for f in fields(RunConfig))
DEFAULTS = {f.name: f.default for f in fields(RunConfig)}


def _valid_keys_text() -> str:
    return "valid keys: " + ", ".join(FIELD_NAMES)


def _coerce(raw: Mapping[str, Any], base_dir: Path, problems: list, prefix: str = "") -> dict:
    """The keys of ``raw`` that coerce to their field's type (configspec.coerce); the rest are
    lines in ``problems`` and are left out (never replaced by a default)."""
    return coerce(raw, DEFAULTS, PATH_KEYS, base_dir, problems, prefix)


# options the recipe's ATC command sets (atc.atc_command); extra args may not repeat them
RECIPE_ATC_OPTIONS = ("model", "framework", "output", "input_shape", "log", "soc_version",
                      "enable_small_channel", "insert_op_conf")


def _validate(v: dict, problems: list, check_paths: bool) -> None:
    bss = v["batch_sizes"]
    if not bss:
        problems.append("batch_sizes: must list at least one batch size")
    bad = [bs for bs in bss if isinstance(bs, bool) or not isinstance(bs, int) or bs <= 0]
    if bad:
        problems.append(f"batch_sizes: every batch size must be an integer > 0, "
                        f"got {_show(bad[0])}")
    elif bss and max(bss) > MAXIMA["batch_sizes"]:
        problems.append(f"batch_sizes: {max(bss)} is above {MAXIMA['batch_sizes']} (one batch "
                        f"would need {max(bss) * 5 / 1024:.0f} GiB or more; the recipe sweeps "
                        f"1..64)")
    else:
        twice = sorted({bs for bs in bss if bss.count(bs) > 1})
        if twice:
            problems.append("batch_sizes: " + ", ".join(f"{bs} listed {bss.count(bs)} times"
                            for bs in twice) + "; list each batch size once (one sweep point)")
    for key, minimum in (("accuracy_batch_size", 1), ("bench_iterations", 1), ("warmup", 0),
                         ("threads", 0), ("infer_streams", 0), ("workers", 0),
                         ("max_images", 0), ("opset", 7), ("device_id", 0),
                         ("bench_min_seconds", 0), ("reference_tolerance_pct", 0), ("shards", 1)):
        x, top = v[key], MAXIMA.get(key, 255)
        if isinstance(x, (int, float)) and not isinstance(x, bool) and not minimum <= x <= top:
            problems.append(f"{key}: must be " + (
                f">= {minimum}" if x < minimum else f"<= {top:,}" if x > top
                else f"from {minimum} to {top:,}") + f", got {_show(x)}")  # the last: NaN
    known = registry.names()      # the built-in backends and any registered since
    if not v["backends"]:
        problems.append("backends: list at least one of " + ", ".join(known))
    for b in v["backends"]:
        if not isinstance(b, str) or b not in known:
            problems.append(f"backends: unknown backend {_show(b)} (known: {', '.join(known)})")
    if len({_show(b) for b in v["backends"]}) != len(v["backends"]):
        problems.append("backends: a backend is listed twice")
    if isinstance(v["outfmt"], str) and v["outfmt"].upper() not in OUTFMTS:
        problems.append(f"outfmt: must be one of {', '.join(OUTFMTS)}, got {_show(v['outfmt'])}")
    if v["precision"] not in ("fp32", "fp16"):
        problems.append(f"precision: must be fp32 or fp16, got {_show(v['precision'])}")
    if v["timing"] not in ("device", "call"):
        problems.append(f"timing: must be device (compute only, as ais_bench) or call (around "
                        f"each synchronous call), got {v['timing']!r}")
    if scheduler_problem(v["scheduler"]):
        problems.append(scheduler_problem(v["scheduler"]))
    if v["device"] not in ("auto", "cpu", "cuda"):
        problems.append(f"device: must be auto, cpu or cuda, got {_show(v['device'])}")
    soc = v.get("soc_version")
    if soc and (not isinstance(soc, str) or not SOC_VERSION_RE.fullmatch(soc)):
        problems.append(f"soc_version: {_show(soc)} is not a chip name such as Ascend310P3 "
                        f"(letters and digits, as 'npu-smi info' prints); leave it empty to "
                        f"read it from npu-smi")
    for a in v["atc_extra_args"] or ():
        if not isinstance(a, str) or not re.fullmatch(
                r"--[A-Za-z][A-Za-z0-9_]*(=[A-Za-z0-9_.,:=+/@%-]*)?", a):
            problems.append(f"atc_extra_args: {_show(a)} is not an ATC option such as "
                            f"--precision_mode=allow_fp32_to_fp16 (letters, digits and "
                            f"_.,:=+/@%- only)")
        elif a[2:].split("=", 1)[0] in RECIPE_ATC_OPTIONS:
            problems.append(f"atc_extra_args: {a.split('=', 1)[0]} is set by the recipe's ATC "
                            f"command itself ({', '.join('--' + o for o in RECIPE_ATC_OPTIONS)}); "
                            f"change the matching parameter instead, or leave it out")
    if name_problem(v["name"]):
        problems.append(name_problem(v["name"]))
    if check_paths:
        for key in REQUIRED_EXISTING:
            p = v.get(key)
            if key == "weights" and v.get("onnx_model"):
                continue
            if isinstance(p, str) and not os.path.exists(p):
                problems.append(f"{key}: {p} does not exist (set {key} in the params file "
                                f"or with -p {key} PATH)")


def _finish(values: dict, problems: list, source: str, check_paths: bool) -> RunConfig:
    """The one end of every route: validate, raise every problem at once, or the config."""
    values = {**DEFAULTS, **values}
    _validate(values, problems, check_paths)
    if problems:
        unknown = any(p.split(": ", 1)[-1].startswith("unknown key") for p in problems)
        raise ConfigError(f"{source}: {len(problems)} problem(s):\n  - " + "\n  - ".join(problems)
                          + ("\n" + _valid_keys_text() if unknown else ""))
    values["outfmt"] = values["outfmt"].upper()
    return RunConfig(**values)


def from_mapping(raw: Mapping[str, Any], base_dir: Path | str | None = None, *,
                 source: str = "params", check_paths: bool = True) -> RunConfig:
    """Validate ``raw`` into a :class:`RunConfig`; a :class:`ConfigError` lists all problems."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: expected a mapping of key: value, got {type(raw).__name__}.\n"
                          + _valid_keys_text())
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    problems: list[str] = []
    return _finish(_coerce(raw, base, problems), problems, source, check_paths)


def read_yaml(text: str, source: str = "params") -> Any:
    """Params YAML as data: safe tags only, no aliases; any problem is a ConfigError."""
    try:
        return load_yaml(text)
    except (yaml.YAMLError, RecursionError) as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc or 'nested too deeply'}") from None


def parse_override(key: str, text: str) -> tuple[str, Any]:
    """``-p KEY VALUE``: VALUE is read as YAML 1.2 (``-p batch_sizes [1,8]``, ``-p max_images
    10``); a string key keeps VALUE verbatim, ``''`` too, except YAML's null (``null``, ``~``),
    which stays None: every route refuses a null as no value, never the default."""
    try:
        value = read_yaml(text)
    except ConfigError:
        value = text
    if isinstance(DEFAULTS.get(key), str) and (value is not None or text == ""):
        value = text  # keep path-like strings verbatim
    return key, value


def load(path: str | os.PathLike | None = None, overrides: Mapping[str, Any] | None = None, *,
         check_paths: bool = True) -> RunConfig:
    """Load ``path`` (YAML) and apply ``overrides`` (relative paths: the file's against its
    folder, the overrides' against the current dir); the problems of both in one error."""
    values: dict = {}
    problems: list[str] = []
    source = "params"
    if path is not None:
        p = Path(path)
        source = str(p)
        if not p.is_file():
            raise ConfigError(f"{p}: params file not found (give a YAML file such as "
                              f"params/demo.yaml)")
        if p.stat().st_size > MAXIMA["file"]:
            raise ConfigError(f"{p}: {p.stat().st_size:,} bytes is no params file (at most "
                              f"{MAXIMA['file']:,}); give a YAML file such as params/demo.yaml")
        try:
            loaded = read_yaml(p.read_bytes().decode("utf-8-sig"), str(p))
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{p}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: expected a mapping of key: value at top level.\n"
                              + _valid_keys_text())
        values = _coerce(loaded, p.resolve().parent, problems)
    if overrides:
        values.update(_coerce(dict(overrides), Path.cwd(), problems, prefix="override: "))
        source += " with overrides"
    return _finish(values, problems, source, check_paths)


def resolve_notebook_path(value: str, cwd: Path | None = None) -> str:
    """A relative path given to a notebook: against the working directory, and when nothing is
    there, against its ``notebooks/`` folder (never the installed package).  A params file's paths
    are relative to the file (``params/``, a sibling of ``notebooks/``), and papermill's
    ``-f params/demo.yaml`` does not tell the notebook where that file was: so the same
    file works from the repository root and from ``notebooks/``."""
    if not value or os.path.isabs(value):
        return value
    cwd = Path(cwd or Path.cwd())
    for base in (cwd, cwd / "notebooks"):
        cand = base / value
        if cand.exists():
            return str(cand.resolve())
    return str((cwd / value).resolve())


def _yaml_list(key: str, text: str):
    try:
        value = load_yaml(text[:10_000])    # no aliases: no bombs
    except (yaml.YAMLError, RecursionError):
        raise ConfigError(f"{key}: {text[:80]!r} is not a YAML list such as [1, 8]") from None
    return value


def from_namespace(namespace: Mapping[str, Any], *, check_paths: bool = True,
                   base: Mapping[str, Any] | None = None) -> RunConfig:
    """Build the config from a notebook's parameters (its globals): the keys it has, over
    ``base`` (another config's values) or the defaults."""
    raw = dict(base or {})
    raw.update({k: resolve_notebook_path(DEFAULTS[k]) for k in PATH_KEYS   # keys it lacks
                if k not in namespace and k not in raw and DEFAULTS.get(k)})
    for k in FIELD_NAMES:
        if k in namespace:
            v = namespace[k]
            if isinstance(DEFAULTS[k], tuple) and isinstance(v, str) and v.lstrip().startswith("["):
                v = _yaml_list(k, v)          # papermill -p KEY "[1, 8]" passes a string
            raw[k] = resolve_notebook_path(v) if k in PATH_KEYS and isinstance(v, str) else v
    return from_mapping(raw, base_dir=Path.cwd(), source="notebook parameters",
                        check_paths=check_paths)


def notebook_parameters_source(keys=None, cfg: RunConfig | None = None) -> str:
    """The text of a notebook ``parameters`` cell: ``key: type = value  # meaning`` for
    ``keys`` (default: all), so that ``papermill --help-notebook`` explains each one.
    Values are ``cfg``'s (default: the demo); paths are relative to ``notebooks/``."""
    cfg = cfg or RunConfig()
    keys = [f.name for f in fields(RunConfig)] if keys is None else list(keys)
    types = {f.name: f.type for f in fields(RunConfig)}
    lines = ["# Parameters: papermill and zoorepro set these; the defaults run the embedded",
             "# demo. Relative paths: against the working directory, else its notebooks/ "
             "(never the installed package)."]
    for key in keys:
        value = getattr(cfg, key)
        if key in PATH_KEYS and isinstance(value, str) and value and not os.path.isabs(value):
            value = "../" + value
        if isinstance(value, tuple):
            value = list(value)
        kind = {"tuple": "list"}.get(str(types[key]), str(types[key]))
        lines.append(f"{key}: {kind} = {value!r}  # {HELP[key]}")
    return "\n".join(lines)
