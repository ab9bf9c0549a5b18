"""``recipe.yaml`` read into a :class:`~zoorepro.recipebook.schema.Recipe`: every field typed
and checked, every problem collected and reported at once, naming the file."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

from zoorepro.errors import RecipeError
from zoorepro.names import name_problem
from zoorepro.recipebook.schema import (BATCH_AXES, DECODERS, DTYPES, INTERPOLATIONS, KINDS,
                                        LAYOUTS, PLACEHOLDERS, RECIPE_FILE, SCHEMA, AisBench,
                                        Atc, Demo, Model, Preprocess, Published, Recipe,
                                        Reference, Scoring, Weights)
from zoorepro.recipebook.code import PLACEHOLDER_RE

_TOKEN = re.compile(r"[A-Za-z0-9_.,:=+/@%{}'\-]+")     # a word of a command template

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
            for ph in PLACEHOLDER_RE.findall(a):
                if ph not in PLACEHOLDERS:
                    self.problems.append(f"{name}: {a!r} names {{{ph}}}; known: "
                                         f"{', '.join(sorted(PLACEHOLDERS))}")
        return tuple(value)


# every key a recipe.yaml may hold, by section ("": the top level): any other is a problem
KEYS = {
    "": {"schema", "name", "title", "kind", "source", "notes", "model", "weights", "preprocess",
         "aipp", "atc", "ais_bench", "scoring", "published", "reference"},
    "source": {"what", "revision", "scripts"},
    "model": {"builder", "parameters", "input", "output", "batch", "export_batch", "size",
              "opset", "classes"},
    "weights": {"hint", "default", "extra", "known", "demo"},
    "weights.demo": {"file", "convert", "name", "expected", "measured_by"},
    "preprocess": {"decoder", "layout", "extensions", "resize", "interpolation", "crop", "dtype",
                   "command", "mean", "std"},
    "atc": {"om", "argv", "command"},
    "ais_bench": {"accuracy_batch_size", "loop", "accuracy", "perf", "accuracy_command",
                  "perf_command"},
    "scoring": {"script", "result_file", "command"},
    "published": {"source", "images", "accuracy", "throughput"},
    "reference": {"label", "name", "source", "top1", "top5"},
}


def unknown_keys(top: Mapping) -> list[str]:
    """A problem line per key no section knows, with the nearest known key when one is close
    (a misspelt key is never read as its default)."""
    import difflib
    out = []
    for section, known in KEYS.items():
        data = top
        for part in section.split(".") if section else ():
            data = data.get(part) if isinstance(data, Mapping) else None
        if not isinstance(data, Mapping):
            continue
        for key in data:
            if key not in known:
                close = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.6)
                where = f"{section}.{key}" if section else str(key)
                out.append(f"{where}: unknown key" + (f" (did you mean {close[0]!r}?)"
                                                      if close else
                                                      f"; known: {', '.join(sorted(known))}"))
    return out


def parse(raw: Any, folder: Path, sha256: str = "") -> Recipe:
    """A :class:`Recipe` from the data of ``folder/recipe.yaml``; every problem at once."""
    where = str(Path(folder) / RECIPE_FILE)
    r = _Reader(raw, where)
    g = r.get
    top = r.raw
    r.problems.extend(unknown_keys(top))
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
                    folder=str(Path(folder).resolve()), source=g(src, "what", str, where="source"),
                    revision=g(src, "revision", str, default="", where="source"),
                    scripts=dict(scripts) if isinstance(scripts, Mapping) else {},
                    notes=tuple(notes), model=model, weights=weights, preprocess=prep,
                    aipp=aipp, atc=atc_, ais_bench=ais_, scoring=scoring, published=published,
                    reference=reference, sha256=sha256)
    if prep.crop and model.size and prep.crop < model.size:
        r.problems.append(f"preprocess.crop: {prep.crop} is smaller than the network's input "
                          f"{model.size} (model.size); AIPP can crop, never enlarge")
    if prep.crop and prep.resize and prep.crop > prep.resize:
        r.problems.append(f"preprocess.crop: {prep.crop} is larger than the shorter side "
                          f"after resize ({prep.resize}): the crop would reach past the image "
                          f"(black borders); crop at most preprocess.resize")
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

