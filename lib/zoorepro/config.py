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
from zoorepro.configspec import (  # noqa: F401 (re-exported: the params' keys, declared there)
    DEFAULTS, EMPTY_MEANS, FIELD_NAMES, HELP, MAXIMA, PATH_KEYS, REQUIRED_EXISTING, SPECS,
    FILE_MAX,
    VALID_KEYS, Params, check_rules, coerce, resolved, unknown_key)
from zoorepro.configspec import show as _show
from zoorepro import recipebook
from zoorepro.errors import ConfigError  # noqa: F401  (raised here; defined in errors)
from zoorepro.errors import RecipeError
from zoorepro.files import load_yaml
from zoorepro.names import name_problem

# A chip name as 'npu-smi info' prints it (Ascend310P3, 310B1); run_on_npu.sh.j2 checks the
# same pattern in bash (tests/test_shell.py holds the two equal).
SOC_VERSION_RE = re.compile(r"^(Ascend)?[0-9A-Za-z]{2,32}$")


@dataclass(frozen=True)
class RunConfig(Params):
    """Everything one run needs: the keys of :class:`~zoorepro.configspec.Params` (each field's
    type, default and rules are declared there), validated together."""

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
    def recipe_spec(self) -> "recipebook.Recipe":
        """The recipe this run follows (read and checked once per file state)."""
        return recipebook.load(self.recipe)

    @property
    def primary_backend(self) -> str:
        return self.backends[0]

    @property
    def om_batch_sizes(self) -> list[int]:
        """Batch sizes that need an ``.om`` (ATC): the sweep's and the accuracy run's."""
        return sorted(set(self.batch_sizes) | {self.accuracy_batch_size})


def _against(base: Path):
    """Relative paths against ``base`` (a params file's folder, or the current directory)."""
    return lambda value: str((base / value).resolve())


def atc_options(recipe: "recipebook.Recipe") -> tuple[str, ...]:
    """The options the recipe's ATC command sets; extra args may not repeat them."""
    return tuple(a[2:].split("=", 1)[0] for a in recipe.atc.argv if a.startswith("--"))


def _with_recipe(v: dict, problems: list, check_paths: bool, resolve=None):
    """Load the recipe ``v`` names and fill the keys left to it ('' or 0): the AIPP config,
    the opset, the accuracy batch size and the weights.  Its problems are lines of ``problems``.
    A relative default weights path (the demo's, in the project) resolves as the route's other
    default paths do (``resolve``: from the working directory; in a notebook as its parameters
    cell writes a default, ``../`` from notebooks/) where it exists there, else against the
    project (zoorepro's own checkout)."""
    try:
        r = recipebook.load(v["recipe"])
    except RecipeError as exc:
        problems.append(f"recipe: {exc}")
        return None
    v["aipp_config"] = v["aipp_config"] or r.aipp_path
    v["opset"] = v["opset"] or r.model.opset
    v["accuracy_batch_size"] = v["accuracy_batch_size"] or r.ais_bench.accuracy_batch_size
    if not v["weights"] and not v["onnx_model"]:
        try:
            v["weights"] = r.default_weights(resolve)
        except RecipeError as exc:
            if check_paths:
                problems.append(f"weights: {exc}")
        else:
            if not v["weights"] and check_paths:
                problems.append(f"weights: recipe {r.name} ships no weights; set weights to "
                                f"{r.weights.hint} (or give onnx_model)")
            elif check_paths and not os.path.exists(v["weights"]):
                problems.append(f"weights: the recipe's default {v['weights']} "
                                f"(weights.default in {r.path}) does not exist; set weights "
                                f"to {r.weights.hint}")
                v["weights"] = ""
    return r


def _validate(v: dict, problems: list, check_paths: bool, recipe=None) -> None:
    """Every rule on typed values ``v`` (every key): the :class:`Spec`'s bounds and choices
    (configspec.check_rules), then the rules of a few keys that need more words."""
    check_rules(v, problems)
    bss, top = v["batch_sizes"], SPECS["batch_sizes"].maximum
    if not bss:
        problems.append("batch_sizes: must list at least one batch size")
    bad = [bs for bs in bss if isinstance(bs, bool) or not isinstance(bs, int) or bs <= 0]
    if bad:
        problems.append(f"batch_sizes: every batch size must be an integer > 0, "
                        f"got {_show(bad[0])}")
    elif bss and max(bss) > top:
        problems.append(f"batch_sizes: {max(bss)} is above {top} (one batch would need "
                        f"{max(bss) * 5 / 1024:.0f} GiB or more; the recipe sweeps 1..64)")
    else:
        twice = sorted({bs for bs in bss if bss.count(bs) > 1})
        if twice:
            problems.append("batch_sizes: " + ", ".join(f"{bs} listed {bss.count(bs)} times"
                            for bs in twice) + "; list each batch size once (one sweep point)")
    known = SPECS["backends"].allowed()
    if not v["backends"]:
        problems.append("backends: list at least one of " + ", ".join(known))
    for b in v["backends"]:
        if not isinstance(b, str) or b not in known:
            problems.append(f"backends: unknown backend {_show(b)} (known: {', '.join(known)})")
    if len({_show(b) for b in v["backends"]}) != len(v["backends"]):
        problems.append("backends: a backend is listed twice")
    if scheduler_problem(v["scheduler"]):
        problems.append(scheduler_problem(v["scheduler"]))
    soc = v.get("soc_version")
    if soc and (not isinstance(soc, str) or not SOC_VERSION_RE.fullmatch(soc)):
        problems.append(f"soc_version: {_show(soc)} is not a chip name such as Ascend310P3 "
                        f"(letters and digits, as 'npu-smi info' prints); leave it empty to "
                        f"read it from npu-smi")
    if v["opset"] and not 7 <= v["opset"] <= 30:
        problems.append(f"opset: {_show(v['opset'])}: ONNX opsets 7 to 30 (0: the recipe's)")
    recipe_options = atc_options(recipe) if recipe else ()
    for a in v["atc_extra_args"] or ():
        if not isinstance(a, str) or not re.fullmatch(
                r"--[A-Za-z][A-Za-z0-9_]*(=[A-Za-z0-9_.,:=+/@%-]*)?", a):
            problems.append(f"atc_extra_args: {_show(a)} is not an ATC option such as "
                            f"--precision_mode=allow_fp32_to_fp16 (letters, digits and "
                            f"_.,:=+/@%- only)")
        elif a[2:].split("=", 1)[0] in recipe_options:
            problems.append(f"atc_extra_args: {a.split('=', 1)[0]} is set by the recipe's ATC "
                            f"command itself ({', '.join('--' + o for o in recipe_options)}); "
                            f"change the matching parameter instead, or leave it out")
    if name_problem(v["name"]):
        problems.append(name_problem(v["name"]))
    if check_paths:
        for key in REQUIRED_EXISTING:
            p = v.get(key)
            if key == "weights" and v.get("onnx_model"):
                continue
            if isinstance(p, str) and p and not os.path.exists(p):
                problems.append(f"{key}: {p} does not exist (set {key} in the params file "
                                f"or with -p {key} PATH)")


def _finish(values: dict, problems: list, source: str, check_paths: bool,
            resolve=None) -> RunConfig:
    """The one end of every route: validate, raise every problem at once, or the config.
    ``resolve``: how the route resolves a default path (the recipe's default weights)."""
    values = {**DEFAULTS, **values}
    recipe = (_with_recipe(values, problems, check_paths, resolve or _against(Path.cwd()))
              if isinstance(values["recipe"], str) else None)
    _validate(values, problems, check_paths, recipe)
    if problems:
        unknown = any(p.split(": ", 1)[-1].startswith("unknown key") for p in problems)
        raise ConfigError(f"{source}: {len(problems)} problem(s):\n  - " + "\n  - ".join(problems)
                          + ("\n" + VALID_KEYS if unknown else ""))
    return RunConfig(**values)


def from_mapping(raw: Mapping[str, Any], base_dir: Path | str | None = None, *,
                 source: str = "params", check_paths: bool = True) -> RunConfig:
    """Validate ``raw`` into a :class:`RunConfig`; a :class:`ConfigError` lists all problems."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: expected a mapping of key: value, got {type(raw).__name__}.\n"
                          + VALID_KEYS)
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    problems: list[str] = []
    return _finish(coerce(raw, _against(base), problems), problems, source, check_paths)


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
        if p.stat().st_size > FILE_MAX:
            raise ConfigError(f"{p}: {p.stat().st_size:,} bytes is no params file (at most "
                              f"{FILE_MAX:,}); give a YAML file such as params/demo.yaml")
        try:
            loaded = read_yaml(p.read_bytes().decode("utf-8-sig"), str(p))
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{p}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: expected a mapping of key: value at top level.\n"
                              + VALID_KEYS)
        values = coerce(loaded, _against(p.resolve().parent), problems)
    if overrides:
        values.update(coerce(overrides, _against(Path.cwd()), problems, prefix="override: "))
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


def from_namespace(namespace: Mapping[str, Any], *, check_paths: bool = True,
                   base: Mapping[str, Any] | None = None) -> RunConfig:
    """Build the config from a notebook's parameters (its globals): the keys it has, over
    ``base`` (another config's values) or the defaults; relative paths as
    :func:`resolve_notebook_path` reads them."""
    raw = {k: DEFAULTS[k] for k in PATH_KEYS if DEFAULTS[k]}      # the path keys it lacks
    raw.update(base or {})
    raw.update((k, namespace[k]) for k in FIELD_NAMES if k in namespace)
    problems: list[str] = []
    # a default path as a notebook writes it (notebook_value: from notebooks/, "../")
    return _finish(coerce(raw, resolve_notebook_path, problems), problems,
                   "notebook parameters", check_paths,
                   lambda default: resolve_notebook_path("../" + default))


def notebook_value(key: str, value: Any) -> Any:
    """``value`` of ``key`` as a notebook's parameters cell writes it: a list for a tuple, a
    relative path from ``notebooks/`` (``../``), since a notebook runs in that folder."""
    if resolved(key, value, lambda v: "../" + v) != value:
        return "../" + value
    return list(value) if isinstance(value, tuple) else value


def notebook_parameters_source(keys=None, cfg: RunConfig | None = None) -> str:
    """The text of a notebook ``parameters`` cell: ``key: type = value  # meaning`` for
    ``keys`` (default: all), so that ``papermill --help-notebook`` explains each one.
    Values are ``cfg``'s (default: the demo); paths are relative to ``notebooks/``."""
    cfg = cfg or RunConfig()
    keys = FIELD_NAMES if keys is None else list(keys)
    types = {f.name: f.type for f in fields(RunConfig)}
    lines = ["# Parameters: papermill and zoorepro set these; the defaults run the embedded",
             "# demo. Relative paths: against the working directory, else its notebooks/ "
             "(never the installed package)."]
    for key in keys:
        value = notebook_value(key, getattr(cfg, key))
        kind = {"tuple": "list"}.get(str(types[key]), str(types[key]))
        lines.append(f"{key}: {kind} = {value!r}  # {HELP[key]}")
    return "\n".join(lines)
