"""ais_bench's command lines as the recipe's README writes them (beside the contract in
:mod:`zoorepro.ascend.aisformat`; ATC's are in :mod:`zoorepro.ascend.atc`).

The recipe runs, for accuracy and for pure performance::

    python3 -m ais_bench --model=squeezenet1_1_bs${bs}.om --batchsize=${bs} \\
        --input ${save_dir} --output result --output_dirname result_bs${bs} --outfmt TXT
    python3 -m ais_bench --model=squeezenet1_1_bs${bs}.om --loop=50 --batchsize=${bs}

Both are built here as argv lists (``--device`` appended: the NPU comes from
``device_id``).  Pure mode writes its ``<dirname>_summary.json`` only when ``--output``
is given, so :func:`perf_argv` adds ``--output``/``--output_dirname`` when asked.
"""
from __future__ import annotations

import shlex
from typing import Sequence

from zoorepro.ascend.aisformat import PERF_LOOP, perf_dirname, result_dirname


def accuracy_argv(om: str, batch_size: int, input_dir: str, output: str = "result",
                  output_dirname: str | None = None, outfmt: str = "TXT",
                  device_id: int | str | None = 0, python: str = "python3") -> list[str]:
    """The recipe's accuracy command, as argv (``--device`` appended unless ``None``)."""
    argv = [python, "-m", "ais_bench", f"--model={om}", f"--batchsize={batch_size}",
            "--input", str(input_dir), "--output", str(output),
            "--output_dirname", output_dirname or result_dirname(batch_size),
            "--outfmt", outfmt]
    if device_id is not None:
        argv += ["--device", str(device_id)]
    return argv


def perf_argv(om: str, batch_size: int, loop: int = PERF_LOOP, device_id: int | str | None = 0,
              output: str | None = None, output_dirname: str | None = None,
              python: str = "python3") -> list[str]:
    """The recipe's pure-inference command (zero input), as argv.

    ``output`` adds ``--output``/``--output_dirname`` (default ``perf_bs<N>``): ais_bench
    writes ``<output>/<dirname>_summary.json`` only then."""
    argv = [python, "-m", "ais_bench", f"--model={om}", f"--loop={loop}",
            f"--batchsize={batch_size}"]
    if device_id is not None:
        argv += ["--device", str(device_id)]
    if output is not None:
        argv += ["--output", str(output), "--output_dirname",
                 output_dirname or perf_dirname(batch_size)]
    return argv


def shell_line(argv: Sequence[str]) -> str:
    """The command as one shell line (arguments quoted only where needed)."""
    return " ".join(shlex.quote(str(a)) for a in argv)
