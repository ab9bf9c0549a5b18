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
import os
from pathlib import Path

from zoorepro.errors import RecipeError
from zoorepro.files import load_yaml
from zoorepro.recipebook.code import (COPY_MAX, PACKAGE_PREFIX, PROJECT_PREFIX,  # noqa: F401
                                      copy_folder, fill,
                                      locate, resolve, resolve_builder, summary)
from zoorepro.recipebook.parse import parse  # noqa: F401
from zoorepro.recipebook.schema import *  # noqa: F401,F403
from zoorepro.recipebook.schema import RECIPE_FILE, Recipe

RECIPES_DIR = Path(__file__).resolve().parents[1] / "recipes"
FILE_MAX = 1 << 18
# the recipe the params use when they name none: written in the recipes' own index
DEFAULT = (RECIPES_DIR / "DEFAULT").read_text(encoding="utf-8").strip()


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

