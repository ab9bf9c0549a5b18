"""What an ais_bench summary and result folder say about the run that wrote them, beside
:mod:`zoorepro.ascend.aisformat` (which reads them): where it ran (:func:`origin_problem`), how many
inferences it made and over which images (:func:`inferences`, :func:`filesinfo_keys`), which
batch sizes those counts allow (:func:`batch_sizes_for`), and the multi-device folder names.

Facts from ais_bench's ``summary.py`` / ``infer_process.py`` (checked with its real front end
in ``tests/test_aisbench_real.py``): ``NPU_compute_time.count`` is the number of model
executions, ``ceil(images / batch size) * --loop`` for a run over ``--input`` files (the last
batch is padded, its padding outputs not saved); ``filesinfo`` holds one entry per real image
(``infiles``, ``outfiles``), ``pure_infer_data`` for a pure-inference run and nothing with
``--pipeline``; ``args`` is ``sys.argv`` and ``--model`` is required (an ``.om`` file).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from zoorepro.ascend.aisformat import RESULT_FILE, arg_value, stat, summary_is_pure
from zoorepro.errors import IngestError

DEVICE_DIR = re.compile(r"^device(\d+)_(\d+)$")
PURE_INPUT = "pure_infer_data"     # ais_bench's name for the zero (or random) input
# keys zoorepro's own summaries add after ais_bench's (bench.run_folder, shards)
ZOOREPRO_KEYS = ("backend", "backend_info", "compute_time_note", "e2e_definition", "streams")


def summary_device_id(summary: dict) -> int | None:
    text = arg_value(summary.get("args") or [], "--device", "-d")
    return int(text) if text is not None and re.fullmatch(r"[0-9]{1,6}", text) else None


def origin_problem(summary: dict, path: str | os.PathLike) -> str | None:
    """None for a summary ais_bench wrote on an NPU; else why it is not one (zoorepro's own
    summary of a CPU/GPU run, a model that is no ``.om``)."""
    ours = [k for k in ZOOREPRO_KEYS if k in summary]
    if ours:
        backend = summary.get("backend")
        who = f"zoorepro's {str(backend)[:40]} backend" if backend else "zoorepro"
        return (f"{path}: written by {who}, not by ais_bench on an NPU (it holds zoorepro's "
                f"keys {', '.join(ours)}); its figures were measured on the machine that ran "
                f"zoorepro. Give the results ais_bench wrote on the NPU host (run the kit's "
                f"run_on_npu.sh there)")
    model = arg_value(summary.get("args") or [], "--model", "-m")
    if model is None:
        return (f"{path}: its args name no --model (ais_bench requires one and records its "
                f"argv): not a summary ais_bench wrote; give <output>/<dirname>_summary.json")
    if not model.lower().endswith(".om"):
        return (f"{path}: the model {Path(model).name[:80]} is not an .om (an offline model "
                f"for the Ascend NPU, made by ATC): these results did not come from ais_bench "
                f"on an NPU; give the results of the kit's run_on_npu.sh")
    return None


def loop_count(summary: dict) -> int:
    text = arg_value(summary.get("args") or [], "--loop", "-l") or "1"
    return int(text) if re.fullmatch(r"[0-9]{1,9}", text) and int(text) > 0 else 1


def inferences(summary: dict, path: str | os.PathLike = "") -> int | None:
    """Model executions the summary counted (``NPU_compute_time.count``, else the length of
    ``npu_compute_time_list``); None when it holds neither."""
    count = stat(summary, "NPU_compute_time", "count", path)
    times = summary.get("npu_compute_time_list")
    if count is None:
        return len(times) if isinstance(times, list) and times else None
    if isinstance(times, list) and times and len(times) != count:
        raise IngestError(f"{path}: NPU_compute_time.count is {int(count)} but "
                          f"npu_compute_time_list holds {len(times)} times; the summary is "
                          f"damaged: copy it again from the NPU host")
    return int(count)


def is_accuracy_run(summary: dict) -> bool:
    """A run over real ``--input`` files, each once (no ``--loop`` above 1): what the recipe's
    accuracy command writes, not a sweep point."""
    return not summary_is_pure(summary) and loop_count(summary) == 1


def filesinfo_keys(summary: dict) -> set | None:
    """The image keys whose first output the summary says ais_bench saved (from
    ``filesinfo``); None when it lists none (``--pipeline``, pure inference, older files)."""
    info = summary.get("filesinfo")
    if not isinstance(info, dict) or not info:
        return None
    keys = set()
    for entry in info.values():
        outs = entry.get("outfiles") if isinstance(entry, dict) else None
        if not isinstance(outs, list):
            return None
        for out in outs:
            m = RESULT_FILE.match(Path(str(out)).name)
            if m and m.group("idx") == "0" and m.group("key") != PURE_INPUT:
                keys.add(m.group("key"))
    return keys or None


def batch_sizes_for(images: int, batches: int) -> tuple[int, int | None]:
    """(lowest, highest) batch size with which ``images`` inputs make ``batches`` batches
    (the last one padded); highest None: no limit (one batch)."""
    low = -(-images // batches)
    return low, ((images - 1) // (batches - 1) if batches > 1 else None)


def images_for(batch_size: int, batches: int) -> tuple[int, int]:
    """(fewest, most) real images ``batches`` batches of ``batch_size`` hold."""
    return (batches - 1) * batch_size + 1, batches * batch_size
