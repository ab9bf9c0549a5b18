"""Builders for NPU-side files, written from ais_bench's documented formats.

Nothing here is an NPU measurement: the fixtures are synthetic files in the layout
ais_bench writes (Ascend/tools ``ais-bench_workload/tool/ais_bench``), for cases the real
front end does not write (damaged, appended or foreign files).  Runs of the real front end
are in test_aisbench_real.py.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

# `npu-smi info` as the recipe's guide prints it.
NPU_SMI_SAMPLE = """\
+-------------------+-----------------+------------------------------------------------------+
| NPU     Name      | Health          | Power(W)     Temp(C)           Hugepages-Usage(page) |
| Chip    Device    | Bus-Id          | AICore(%)    Memory-Usage(MB)                        |
+===================+=================+======================================================+
| 0       310P3     | OK              | 15.8         42                0    / 0              |
| 0       0         | 0000:82:00.0    | 0            1074 / 21534                            |
+===================+=================+======================================================+
| 1       310P3     | OK              | 15.4         43                0    / 0              |
| 0       1         | 0000:89:00.0    | 0            1070 / 21534                            |
+===================+=================+======================================================+
"""


def ranked_scores(label: int, rank: int, classes: int = 1000, offset: int = 0) -> np.ndarray:
    """float32 scores whose class ``label + offset`` sits at 0-based ``rank``.

    Values are multiples of 1/1024 in [0, 1): distinct and exact at ``%f`` precision."""
    target = label + offset
    others = [c for c in range(classes) if c != target]
    order = others[:rank] + [target] + others[rank:]          # best first
    scores = np.empty(classes, dtype=np.float32)
    for pos, c in enumerate(order):
        scores[c] = (classes - pos) / 1024.0
    return scores


def ais_txt(rows: np.ndarray) -> str:
    """ais_bench's TXT: ``reshape(-1, last_dim)``, ``%f`` values each followed by a space."""
    rows = np.asarray(rows)
    rows = rows.reshape(-1, rows.shape[-1])
    return "".join("".join(f"{v:f} " for v in r) + "\n" for r in rows)


def write_output(folder: Path, stem: str, scores: np.ndarray, fmt: str = "TXT",
                 shape: tuple | None = None) -> Path:
    """One ``<stem>_0.<fmt>`` as ais_bench saves an output of ``shape`` (default [1, C])."""
    folder.mkdir(parents=True, exist_ok=True)
    arr = np.asarray(scores, dtype=np.float32).reshape(shape or (1, -1))
    path = folder / f"{stem}_0.{fmt.lower()}"
    if fmt == "TXT":
        path.write_text(ais_txt(arr), encoding="utf-8")
    elif fmt == "NPY":
        np.save(path, arr)
    else:
        arr.tofile(path)
    return path


def time_info(ms: list[float]) -> dict:
    a = np.asarray(ms, dtype=np.float64)
    if a.size == 0:
        return {"min": 0.0, "max": 0.0, "mean": 0.0, "median": 0.0, "percentile(99%)": 0.0,
                "count": 0}
    return {"min": float(a.min()), "max": float(a.max()), "mean": float(a.mean()),
            "median": float(np.median(a)), "percentile(99%)": float(np.percentile(a, 99)),
            "count": int(a.size)}


def summary(args: list[str], npu_ms: list[float], batch_size: int, h2d_ms=(), d2h_ms=(),
            filesinfo: dict | None = None) -> dict:
    """A ``<dirname>_summary.json`` with ais_bench's keys (Summary.report)."""
    mean = float(np.mean(npu_ms)) if npu_ms else 0.0
    return {"filesinfo": filesinfo or {}, "args": args,
            "NPU_compute_time": time_info(npu_ms), "H2D_latency": time_info(list(h2d_ms)),
            "D2H_latency": time_info(list(d2h_ms)),
            "throughput": 1000 * batch_size / mean if mean else 0,
            "npu_compute_time_list": list(npu_ms), "pid": 4242}


def write_summary(path: Path, obj: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


def accuracy_args(bs: int, input_dir: str = "prep_dataset", output: str = "result") -> list[str]:
    return ["/usr/local/lib/python3.7/site-packages/ais_bench/__main__.py",
            f"--model=squeezenet1_1_bs{bs}.om", f"--batchsize={bs}", "--input", input_dir,
            "--output", output, "--output_dirname", f"result_bs{bs}", "--outfmt", "TXT",
            "--device", "1"]


def perf_args(bs: int) -> list[str]:
    return ["/usr/local/lib/python3.7/site-packages/ais_bench/__main__.py",
            f"--model=squeezenet1_1_bs{bs}.om", "--loop=50", f"--batchsize={bs}",
            "--device", "1", "--output", "perf", "--output_dirname", f"perf_bs{bs}"]


def tiny_onnx(path: Path, recipe) -> Path:
    """A small ONNX model with the recipe's input and output names ([N, 3, size, size] ->
    [N, 3]): what a kit needs of a model to write its commands (nothing here runs it)."""
    import onnx
    from onnx import TensorProto, helper
    m = recipe.model
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", [m.input], ["pooled"]),
         helper.make_node("Flatten", ["pooled"], [m.output])], "tiny",
        [helper.make_tensor_value_info(m.input, TensorProto.FLOAT, ["N", 3, m.size, m.size])],
        [helper.make_tensor_value_info(m.output, TensorProto.FLOAT, ["N", 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", m.opset)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
