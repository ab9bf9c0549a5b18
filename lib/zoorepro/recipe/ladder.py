"""The precision ladder's arithmetic (issue #24): where accuracy goes from the framework's float
pipeline to the NPU, one row per step on the run's images, the same weights throughout.

a. :func:`framework_logits`: torchvision's transforms on the PIL image, the network in float32
(what the framework's reference measures).  b. The recipe's fp32 path (uint8 ``.bin`` + the
AIPP model): the run's own result, only compared with here.  c. :func:`fp16_aipp_model`: AIPP's
output rounded to fp16 (the device hands it to the network in fp16), the network float32.
d. :func:`fp16_network_model`: ATC's ``force_fp16`` emulated as fp16 *storage* with float32
arithmetic inside each op (:data:`FP16_HOW`: what it models and what it cannot).  Rows e
(int8) and f (the NPU) are made elsewhere; every ONNX row runs on the onnxruntime backend
(:mod:`zoorepro.run.precision`).

Row d is an ONNX model, not torch's ``.half()`` on the CPU.  On the demo (100 images, batch
8) the two agree (the same top-1 everywhere, logits within 1/32, one fp16 step), but torch's
CPU fp16 convolution is oneDNN's kernel for the CPU at hand: as fast as float32 with
AVX512-FP16, 10 times slower, other last bits, with oneDNN held to AVX2.  The ONNX model runs
rows b and c's float32 kernels on any CPU: b, c and d differ only by the roundings, each an
explicit node the tests check, with the cube unit's fp32 accumulation by construction.

:func:`compare` (a row against row b) and :func:`ladder_csv` (the per-image table) score as
:mod:`zoorepro.recipe.evaluate` does; an image with NaN or inf scores is a miss, and changed.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from zoorepro.errors import AippError, EvaluationError
from zoorepro.files import atomic_write_bytes
from zoorepro.recipe.evaluate import TOPK, percent
from zoorepro.recipe.framework import _need
from zoorepro.recipe.framework import (INTERPOLATION_MODES, framework_crop,  # noqa: F401
                                       framework_engine, framework_how, framework_inputs,
                                       framework_logits, framework_transform)

AIPP_OUTPUT = "aipp_output"          # the AIPP nodes' output, the network's input
AIPP_PREFIX = "aipp_"                # the AIPP nodes' (and their initialisers') names
NON_FINITE = "non-finite"            # an image's class when its scores hold NaN or inf
NO_CLASS = -2                        # top1()'s class for such an image
BACKGROUND = -1                      # a 1001-class output's class 0, shifted as labels
_FLOAT, _FLOAT16 = 1, 10              # ONNX TensorProto element types (onnx imported late)


# ----------------------------------------------------------------- fp16 rounding
def round_fp16(x: np.ndarray) -> np.ndarray:
    """``x`` (taken as float32) rounded to the nearest fp16, ties to even, as float32: 65520
    and up in size to +-inf, 2**-25 to 0, 3 * 2**-26 to 2**-24; NaN stays NaN."""
    with np.errstate(over="ignore"):        # to inf is the answer, not an accident
        return np.asarray(x, dtype=np.float32).astype(np.float16).astype(np.float32)


# ----------------------------------------------------------------- row a
# the recipe's interpolation names (recipebook's choices) -> torchvision's InterpolationMode
# ----------------------------------------------------------------- rows c and d
def _load_onnx(path):
    onnx = _need("onnx", "fp16 models (rows c, d)", "onnx")
    path = Path(path)
    if not path.is_file():
        raise AippError(f"{path}: AIPP model not found; run the export step first (it writes "
                        f"model/<recipe>_aipp.onnx)")
    return onnx, onnx.load(str(path))


def _round_pair(tensor: str, tag: str) -> tuple[list, str]:
    """(two Cast nodes, the name the producer must now write): ``<tensor>_fp32`` ->
    Cast(to float16) -> Cast(to float32) -> ``tensor``, so every reader is unchanged."""
    from onnx import helper
    src, mid = f"{tensor}_fp32", f"{tensor}_fp16"
    return [helper.make_node("Cast", [src], [mid], to=_FLOAT16, name=f"{tag}_to_fp16"),
            helper.make_node("Cast", [mid], [tensor], to=_FLOAT, name=f"{tag}_to_fp32")], src


def _with_rounded_aipp(model, path):
    """``model`` (changed in place) with the Cast pair on ``aipp_output``."""
    found = [i for i, n in enumerate(model.graph.node) if AIPP_OUTPUT in n.output]
    if len(found) != 1 or not model.graph.node[found[0]].name.startswith(AIPP_PREFIX):
        raise AippError(f"{path}: not an AIPP model: no {AIPP_PREFIX}* node writes "
                        f"{AIPP_OUTPUT!r}; give the export step's <recipe>_aipp.onnx (built by "
                        f"zoorepro.recipe.export.build_aipp_model)")
    node = model.graph.node[found[0]]
    pair, node.output[list(node.output).index(AIPP_OUTPUT)] = _round_pair(AIPP_OUTPUT,
                                                                          "aipp_round")
    for k, new in enumerate(pair):
        model.graph.node.insert(found[0] + 1 + k, new)
    return model


def _save(onnx, model, dest) -> Path:
    onnx.checker.check_model(model, full_check=True)
    return atomic_write_bytes(dest, model.SerializeToString())


def fp16_aipp_model(aipp_onnx_path: str | os.PathLike, dest_path: str | os.PathLike) -> Path:
    """Row c: a copy of the AIPP model at ``dest_path`` (atomic) with ``Cast(to float16) ->
    Cast(to float32)`` on ``aipp_output``: AIPP in float32, its output rounded once to fp16
    (ties to even), the network unchanged in float32.  Everything else is as it was."""
    onnx, model = _load_onnx(aipp_onnx_path)
    return _save(onnx, _with_rounded_aipp(model, aipp_onnx_path), dest_path)


def fp16_network_model(aipp_onnx_path: str | os.PathLike, dest_path: str | os.PathLike) -> Path:
    """Row d: row c's model at ``dest_path`` (atomic) with the network's float initialisers
    (not AIPP's) rounded to fp16, kept float32, and each network node's float output through
    ``Cast(to float16) -> Cast(to float32)``, the logits too (an ``.om`` built without
    ``--output_type`` returns fp16): each op float32 inside, rounded once (:data:`FP16_HOW`)."""
    onnx, model = _load_onnx(aipp_onnx_path)
    model = _with_rounded_aipp(model, aipp_onnx_path)
    graph = model.graph
    network_reads = {t for n in graph.node if not n.name.startswith(AIPP_PREFIX) for t in n.input}
    for init in graph.initializer:
        if init.data_type == _FLOAT and init.name in network_reads:
            init.CopyFrom(onnx.numpy_helper.from_array(
                round_fp16(onnx.numpy_helper.to_array(init)), init.name))
    g = onnx.shape_inference.infer_shapes(model).graph
    types = {vi.name: vi.type.tensor_type.elem_type for vi in [*g.value_info, *g.output]}
    unknown, nodes = [], []
    for n, node in enumerate(graph.node):
        nodes.append(node)
        for j, out in enumerate(node.output if not node.name.startswith(AIPP_PREFIX) else ()):
            if out and not types.get(out):
                unknown.append(f"{node.name or node.op_type} -> {out}")
            elif out and types[out] == _FLOAT:
                pair, node.output[j] = _round_pair(out, f"fp16_round_{n}_{j}")
                nodes.extend(pair)
    if unknown:
        raise AippError(f"{aipp_onnx_path}: the element type of {len(unknown)} node output(s) "
                        f"cannot be inferred ({', '.join(unknown[:4])}), so it is unknown "
                        f"which to round to fp16; give the export step's model (onnx shape "
                        f"inference must type every tensor)")
    del graph.node[:]
    graph.node.extend(nodes)
    return _save(onnx, model, dest_path)


FP16_AIPP_HOW = (
    "the recipe's fp32 AIPP model with Cast(float32 -> float16) -> Cast(float16 -> float32) "
    "on aipp_output (ONNX Runtime, CPU): AIPP computed in float32 and its output rounded once "
    "to the nearest fp16 (ties to even), the network in float32; it cannot model the device "
    "AIPP's own arithmetic (its subtraction and multiplication, min_chn and var_reci_chn as "
    "the hardware holds them, in its own precision), only the fp16 hand-over to the network")

FP16_HOW = (
    "ATC's precision_mode force_fp16 emulated on the CPU as fp16 storage with float32 "
    "arithmetic inside each op: row c's model (AIPP output rounded to fp16) with every network "
    "weight and bias rounded to the nearest fp16 and every network op's float output passed "
    "through Cast(float32 -> float16) -> Cast(float16 -> float32), the logits too, each op "
    "computed by ONNX Runtime in float32 on fp16-valued operands and rounded once (as the "
    "NPU's cube unit multiplies fp16 operands and accumulates in fp32); it cannot model the "
    "NPU's accumulation order and partial-sum precision inside an op (ONNX Runtime's own "
    "float32 order differs between CPUs in the last bits too), ATC's fused ops and layout "
    "changes (Conv + bias + ReLU rounded once on the device, here the Conv's output is rounded "
    "before the ReLU, which gives the same values: ReLU, MaxPool and Concat commute with "
    "rounding), ops ATC keeps in fp32 or computes its own way (GlobalAveragePool's sum and "
    "division are float32 here, rounded once), a bias the device keeps in fp32, nor the "
    "device AIPP's own fp16 arithmetic (row c's limits)")


# ----------------------------------------------------------------- comparing rows
def _ranked(logits: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(top-5 classes, 0-based as labels, [N, 5]; finite rows [N]) with evaluate's rule."""
    logits = np.asarray(logits)
    if logits.ndim != 2 or logits.shape[1] < TOPK:
        raise EvaluationError(f"ladder: {what} must be logits [images, classes] with at least "
                              f"{TOPK} classes, got shape {logits.shape}")
    finite = np.isfinite(logits).all(axis=1)
    best = np.argsort(-logits, axis=1, kind="stable")[:, :TOPK] - (logits.shape[1] == 1001)
    return best, finite


def top1(logits: np.ndarray) -> np.ndarray:
    """Each image's best class, ties to the lower: 0-based as the labels (a 1001-class
    output's background is ``BACKGROUND``, -1); ``NO_CLASS`` (-2) for NaN or inf scores."""
    best, finite = _ranked(logits, "logits")
    return np.where(finite, best[:, 0], NO_CLASS)


_NAMES = {BACKGROUND: "background", NO_CLASS: NON_FINITE}


def _name(c) -> str:
    """A class as the examples and the table write it (:func:`parse_class` reads it)."""
    return _NAMES.get(int(c), str(int(c)))


def parse_class(text: str) -> int:
    """A class as :func:`ladder_csv` wrote it, back (a ValueError when it is none)."""
    c = next((c for c, t in _NAMES.items() if t == text), None)
    return int(text) if c is None else c


def compare(logits: np.ndarray, base: np.ndarray, labels: np.ndarray, keys: list[str],
            examples: int = 5) -> dict:
    """A row's ``logits`` against the ``base`` row's (b), the same images in the ``keys``'
    order, 0-based ``labels``: the :class:`~zoorepro.run.records.LadderRow` fields
    ``images``, ``top1``..``top5`` (percent), ``agreement_pct`` (top-1 = the base's),
    ``compared``, ``changed``, ``fixed`` (changed, right where the base was wrong), ``broken``
    (changed, wrong where it was right), ``changed_examples`` (the first ``examples``,
    ``"key: <base's class> -> <this row's> (label <label>)"``; ``non-finite`` for an image with
    NaN or inf scores, which is a miss and changed; ``background`` for a 1001-class output's
    class 0) and ``max_abs_logit_delta`` (on images finite in both; None for other class
    counts)."""
    labels, n = np.asarray(labels), len(keys)
    given = {"logits": np.shape(logits), "base": np.shape(base), "labels": labels.shape}
    if not n or any(s[:1] != (n,) for s in given.values()) or labels.ndim != 1:
        raise EvaluationError(f"ladder: {n} key(s) but " + ", ".join(
            f"{k} {v}" for k, v in given.items()) + "; give at least one image, one row of "
            "logits and one label per image, in the keys' order")
    best, finite = _ranked(logits, "logits")
    b_best, b_finite = _ranked(base, "base")
    classes = 1000 if np.shape(logits)[1] == 1001 else np.shape(logits)[1]
    if labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() >= classes:
        raise EvaluationError(f"ladder: labels must be 0-based class indices below {classes}, "
                              f"got {labels.dtype} from {labels.min()} to {labels.max()}; use "
                              f"the run's val_label.txt classes")
    cum = np.cumsum(((best == labels[:, None]) & finite[:, None]).sum(axis=0))
    mine = np.where(finite, best[:, 0], NO_CLASS)
    theirs = np.where(b_finite, b_best[:, 0], NO_CLASS)
    changed = (mine != theirs) | (mine == NO_CLASS) | (theirs == NO_CLASS)
    right, b_right = mine == labels, theirs == labels
    both = finite & b_finite
    delta = (float(np.abs(np.asarray(logits, np.float64)[both] - np.asarray(base)[both]).max())
             if np.shape(logits)[1] == np.shape(base)[1] and both.any() else None)
    shown = [f"{keys[i]}: {_name(theirs[i])} -> {_name(mine[i])} (label {int(labels[i])})"
             for i in np.flatnonzero(changed)[:max(0, examples)]]
    return {"images": n, **{f"top{k + 1}": percent(int(cum[k]), n) for k in range(TOPK)},
            "agreement_pct": percent(int((~changed).sum()), n), "compared": n,
            "changed": int(changed.sum()), "fixed": int((changed & right & ~b_right).sum()),
            "broken": int((changed & b_right & ~right).sum()), "changed_examples": shown,
            "max_abs_logit_delta": delta}


def non_finite_note(logits: np.ndarray, keys: list[str], step: str) -> str | None:
    """A sentence for the notes on ``step``'s images with NaN or inf scores (None: none)."""
    _, finite = _ranked(logits, f"row {step}'s logits")
    bad = [keys[i] for i in np.flatnonzero(~finite)]
    if not bad:
        return None
    return (f"row {step}: {len(bad)} of {len(keys)} image(s) have NaN or infinite scores "
            f"(e.g. {', '.join(bad[:5])}): no class, so they count as misses and as changed "
            f"against row b; an fp16 overflow (a value beyond 65504) gives inf")


def ladder_csv(keys: list[str], labels, top1_by_step: dict[str, np.ndarray],
               base: str = "b") -> str:
    """The per-image table: a header, then one line per image in the keys' order: ``image``,
    ``label``, ``top1_<step>`` for each step (steps in name order; :func:`top1`'s class,
    ``background`` for -1, ``non-finite`` for -2), then ``differs_<step>`` for each step but
    the base (1 where its top-1 differs from the ``base`` step's, a non-finite one always)."""
    import csv
    import io
    steps, labels = sorted(top1_by_step), np.asarray(labels)
    if base not in steps:
        raise EvaluationError(f"ladder: the base step {base!r} is not among the steps "
                              f"({', '.join(steps) or 'none'}); give its top-1")
    cols = {s: np.asarray(top1_by_step[s]) for s in steps}
    bad = [f"{s} {cols[s].shape}" for s in steps if cols[s].shape != (len(keys),)]
    if bad or labels.shape != (len(keys),):
        raise EvaluationError(f"ladder: {len(keys)} key(s), but labels {labels.shape}"
                              + (f" and top-1 {', '.join(bad)}" if bad else "")
                              + "; give one value per image for every step")
    others, buf = [s for s in steps if s != base], io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["image", "label", *(f"top1_{s}" for s in steps),
                *(f"differs_{s}" for s in others)])
    for i, key in enumerate(keys):
        b = cols[base][i]
        w.writerow([key, int(labels[i]), *(_name(cols[s][i]) for s in steps),
                    *(int(cols[s][i] != b or NO_CLASS in (cols[s][i], b)) for s in others)])
    return buf.getvalue()

