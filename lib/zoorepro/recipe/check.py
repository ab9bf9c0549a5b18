"""A recipe checked as a run will use it, before any work: its builder imports and builds a
model with the parameter count the recipe states, and its AIPP config reads and fits its
preprocessing and network.  ``recipebook`` checks the file's data; this checks what the data
names (code and files), which needs the recipe's steps."""
from __future__ import annotations

from zoorepro.errors import AippError, RecipeError


def problems(recipe) -> list[str]:
    """Every problem a run of ``recipe`` would meet in its code and AIPP config ([]: none)."""
    from zoorepro.recipe import aipp, export
    out = []
    try:
        model = recipe.build_model()
    except RecipeError as exc:
        out.append(str(exc))
    except Exception as exc:  # the recipe's builder is outside code: any failure is its own
        out.append(f"{recipe.path}: model.builder {recipe.model.builder} fails to build a "
                   f"model ({type(exc).__name__}: {exc}); fix the builder")
    else:
        n = sum(p.numel() for p in model.parameters())
        if n != recipe.model.parameters:
            out.append(f"{recipe.path}: model.parameters is {recipe.model.parameters:,} but "
                       f"{recipe.model.builder} builds a model with {n:,}; set "
                       f"model.parameters to {n} if that is the network, or fix the builder")
    try:
        export.check_aipp(recipe, aipp.load(recipe.aipp_path))
    except AippError as exc:
        out.append(str(exc))
    return out


def check(recipe) -> None:
    """:func:`problems`, raised at once as one :class:`RecipeError`."""
    found = problems(recipe)
    if found:
        raise RecipeError(f"recipe {recipe.name} ({recipe.path}): {len(found)} problem(s):\n  - "
                          + "\n  - ".join(found))
