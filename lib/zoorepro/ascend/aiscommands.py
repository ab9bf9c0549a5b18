"""ais_bench's command lines as the recipe's README writes them (beside the contract in
:mod:`zoorepro.ascend.aisformat`; ATC's are in :mod:`zoorepro.ascend.atc`).

Each recipe's ``recipe.yaml`` holds its two lines (``ais_bench.accuracy_command`` and
``perf_command``, as the README prints them) and their templates (``ais_bench.accuracy`` and
``perf``: the words after ``python3 -m ais_bench``, with ``{om}`` ``{bs}`` ``{input_dir}``
``{output}`` ``{dirname}`` ``{outfmt}`` ``{loop}``), in the README's own form: ``--model=X``
or ``--model X``, with or without ``--batchsize``, ``--outfmt 'TXT'`` quoted or not.

Both are built here as argv lists from the templates (``--device`` appended: the NPU comes
from ``device_id``).  Pure mode writes its ``<dirname>_summary.json`` only when ``--output``
is given, so :func:`perf_argv` adds ``--output``/``--output_dirname`` when asked.  The paths
and folder names are the caller's (a README's ``--output_dirname result`` is its own choice;
zoorepro names the folder ``result_bs<N>``, which ingest reads as a batch-size clue).
"""
from __future__ import annotations

import shlex
from typing import Sequence

from zoorepro import recipebook
from zoorepro.ascend.aisformat import perf_dirname, result_dirname
from zoorepro.errors import RecipeError


def template_argv(recipe: "recipebook.Recipe", template: Sequence[str], what: str,
                  **values) -> list[str]:
    """A recipe's command template as argv: each word read as the shell reads the README's
    word (``'TXT'`` is ``TXT``), then its placeholders filled with ``values`` (as text)."""
    words = []
    for word in template:
        try:
            parts = shlex.split(word)
        except ValueError:
            parts = []
        if len(parts) != 1:
            raise RecipeError(f"{recipe.path}: {what}: {word!r} is not one shell word; write "
                              f"each word of the command as one list item")
        words.append(parts[0])
    try:
        return recipebook.fill(tuple(words), **values)
    except KeyError as exc:
        raise RecipeError(f"{recipe.path}: {what} names {{{exc.args[0]}}}, which this command "
                          f"does not have (it has {', '.join(sorted(values))}); remove it from "
                          f"the template") from None


def accuracy_argv(recipe: "recipebook.Recipe", om: str, batch_size: int, input_dir: str,
                  output: str = "result", output_dirname: str | None = None,
                  outfmt: str = "TXT", device_id: int | str | None = 0,
                  python: str = "python3") -> list[str]:
    """The recipe's accuracy command (``ais_bench.accuracy``), as argv (``--device``
    appended unless ``None``; ``output_dirname`` defaults to ``result_bs<N>``)."""
    words = template_argv(recipe, recipe.ais_bench.accuracy, "ais_bench.accuracy",
                          om=om, bs=int(batch_size), input_dir=input_dir, output=output,
                          dirname=output_dirname or result_dirname(batch_size), outfmt=outfmt,
                          loop=recipe.ais_bench.loop)
    argv = [python, "-m", "ais_bench", *words]
    if device_id is not None:
        argv += ["--device", str(device_id)]
    return argv


def perf_argv(recipe: "recipebook.Recipe", om: str, batch_size: int, loop: int | None = None,
              device_id: int | str | None = 0, output: str | None = None,
              output_dirname: str | None = None, python: str = "python3") -> list[str]:
    """The recipe's pure-inference command (``ais_bench.perf``: zero input), as argv;
    ``loop`` defaults to the recipe's ``ais_bench.loop``.

    ``output`` adds ``--output``/``--output_dirname`` (default ``perf_bs<N>``): ais_bench
    writes ``<output>/<dirname>_summary.json`` only then."""
    loop = recipe.ais_bench.loop if loop is None else int(loop)
    words = template_argv(recipe, recipe.ais_bench.perf, "ais_bench.perf", om=om,
                          bs=int(batch_size), loop=loop)
    argv = [python, "-m", "ais_bench", *words]
    if device_id is not None:
        argv += ["--device", str(device_id)]
    if output is not None:
        argv += ["--output", str(output), "--output_dirname",
                 output_dirname or perf_dirname(batch_size)]
    return argv


def shell_line(argv: Sequence[str]) -> str:
    """The command as one shell line (arguments quoted only where needed)."""
    return " ".join(shlex.quote(str(a)) for a in argv)
