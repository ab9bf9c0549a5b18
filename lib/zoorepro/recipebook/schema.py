"""The recipe's facts as frozen dataclasses (what ``recipe.yaml`` holds, section by section),
and the words each field may take."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from zoorepro.errors import RecipeError

RECIPE_FILE = "recipe.yaml"
SCHEMA = 1
DECODERS = ("pil", "opencv")
LAYOUTS = ("flat", "class_folders")
INTERPOLATIONS = ("bilinear", "bicubic", "nearest", "lanczos")
DTYPES = ("uint8", "int8")
BATCH_AXES = ("dynamic", "static")
KINDS = ("modelzoo", "own")
# what a command template may name; each is filled in, quoted, by the command builders
PLACEHOLDERS = {"onnx", "om", "bs", "input", "size", "soc", "aipp", "input_dir", "output",
                "dirname", "outfmt", "loop"}


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
    file: str               # as weights.default: a path, project:<path> or package:<...>
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
    source: str             # where the recipe comes from (upstream path)
    revision: str           # which revision of it
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

    @property
    def path(self) -> Path:
        return Path(self.folder) / RECIPE_FILE

    @property
    def aipp_path(self) -> str:
        return str(Path(self.folder) / self.aipp)

    def om_name(self, batch_size: int) -> str:
        return self.atc.om.format(bs=int(batch_size))

    def throughput_labels(self) -> dict:
        return {f"recipe {chip}": dict(t) for chip, t in self.published.throughput.items()}

    def build_model(self):
        """The builder's model, untrained (the weights are loaded by the caller)."""
        from zoorepro.recipebook.code import resolve_builder
        return resolve_builder(self)()

    def default_weights(self, local=None) -> str:
        """The default weights as an absolute path ('' when the recipe has none); a
        :class:`RecipeError` when they come from a package that is not installed.
        ``local(path)``: how the caller's route resolves a default path (a notebook in a
        clone of the project); a ``project:`` file found there wins over zoorepro's own."""
        from zoorepro.recipebook.code import PROJECT_PREFIX, locate
        spec = self.weights.default
        if local is not None and spec.startswith(PROJECT_PREFIX):
            here = local(spec[len(PROJECT_PREFIX):])
            if os.path.exists(here):
                return here
        return locate(spec, self)

    def demo_weights(self) -> str:
        if self.weights.demo is None:
            return ""
        try:
            from zoorepro.recipebook.code import locate
            return locate(self.weights.demo.file, self)
        except RecipeError:
            return ""
