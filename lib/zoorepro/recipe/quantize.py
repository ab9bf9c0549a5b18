"""int8 on the CPU: ONNX Runtime QDQ post-training static quantization of the AIPP model.

The fp32 AIPP model (uint8 NHWC in, AIPP nodes ``aipp_*`` first, then the network) is
quantized as :data:`METHOD` says -- QDQ format, weights int8 symmetric per output channel,
activations uint8 asymmetric, MinMax ranges from calibration -- with the AIPP nodes kept
float, so quantization begins at the network's input (``aipp_output``).  Calibration runs on
N of the run's own ``.bin`` inputs, chosen by :func:`select_calibration` (evenly spaced over
the sorted names: on a class-sorted set, as many classes as can be).

The int8 model is built once per run: its name carries :func:`calibration_hash` (the fp32
model, the calibration inputs in order, the method and ONNX Runtime's version), and a
sidecar ``.json`` written last says what it is; a later build with the same hash whose
model still matches the sidecar's sha256 reuses the file.  onnxruntime (its
``quantization`` package) is imported only when a model is built.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from zoorepro.errors import BackendUnavailable, ConfigError, DataError
from zoorepro.files import atomic_write_json, read_json, writing

# How the int8 model is made (chosen by measurement on SqueezeNet 1.1, the demo's 100 images,
# benchmarks/README.md "int8 (ONNX Runtime QDQ)").  Every entry is part of the calibration
# hash: changing one builds a new model.
METHOD = {
    "format": "QDQ",                 # QuantizeLinear/DequantizeLinear pairs; ORT fuses them
    "per_channel": True,             # one weight scale per output channel
    "weight_type": "QInt8",          # symmetric: zero point 0, scale max|w| / 127 (/ 64)
    "activation_type": "QUInt8",     # asymmetric uint8: fused to QLinearConv (u8s8, VNNI);
                                     # QInt8 ran unfused here, 2x slower than fp32
    "reduce_range": True,            # 7-bit weights ([-64, 64]): top-1 at fp32's (README)
    "calibrate_method": "MinMax",    # each activation's min and max over the calibration set
    # (Percentile also reads an optional "percentile" entry, ORT's CalibPercentile)
    "pre_process": False,            # quant_pre_process: measured no gain on this model
    "concat_shared_range": True,     # a Concat's inputs share its output's range: a copy
    "exclude": "aipp_*",             # nodes kept float: the AIPP steps before the network
}
BUILD = 1                            # how the model is prepared (part of the hash)
OPSET = 13                           # per-channel QuantizeLinear/DequantizeLinear (axis)
SIDECAR = ".json"


def method_sentence() -> str:
    """:data:`METHOD` in one sentence, as a report shows it."""
    m = METHOD
    weights = {"QInt8": "int8 symmetric", "QUInt8": "uint8 asymmetric"}[m["weight_type"]]
    acts = {"QInt8": "int8 symmetric", "QUInt8": "uint8 asymmetric"}[m["activation_type"]]
    return (f"ONNX Runtime post-training static quantization, {m['format']} format: weights "
            f"{weights} {'per output channel' if m['per_channel'] else 'per tensor'}"
            f"{' (7-bit reduced range)' if m['reduce_range'] else ''}, activations {acts}, "
            f"{m['calibrate_method']} calibration ranges"
            f"{', after ONNX Runtime pre-processing' if m['pre_process'] else ''}; "
            f"the AIPP nodes ({m['exclude']}) stay float, so quantization begins at the "
            f"network's input.")


def select_calibration(keys: list[str], n: int) -> list[int]:
    """Indices into ``keys`` of ``n`` of them (at most all), evenly spaced over the sorted
    keys -- the first, then every ``len/n``-th -- in sorted order.  Deterministic: the same
    keys give the same choice whatever their order."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"calibration_images {n!r}: must be a whole number >= 1 (the int8 "
                          f"model is calibrated on that many of the run's images)")
    order = sorted(range(len(keys)), key=lambda i: (keys[i], i))
    n = min(n, len(order))
    return [order[(k * len(order)) // n] for k in range(n)]


def _sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _ort_version() -> str:
    try:
        import onnxruntime
    except ImportError:
        raise BackendUnavailable("onnxruntime is not installed, and the int8 model is built "
                                 "with its quantizer: pip install onnxruntime") from None
    return onnxruntime.__version__


def calibration_hash(source_model: str | os.PathLike, inputs: Sequence[Path]) -> str:
    """sha256 over everything the int8 model depends on: the fp32 model's sha256, each
    calibration input's name and bytes in order, :data:`METHOD` and ONNX Runtime's version."""
    h = hashlib.sha256(f"zoorepro int8 {BUILD}\n".encode())
    h.update(f"model {_sha256_file(source_model)}\n".encode())
    for p in inputs:
        h.update(f"input {Path(p).name}\t{_sha256_file(p)}\n".encode())
    h.update(f"method {json.dumps(METHOD, sort_keys=True)}\n".encode())
    h.update(f"onnxruntime {_ort_version()}\n".encode())
    return h.hexdigest()


def check_inputs(inputs: Sequence[Path], input_shape: tuple) -> tuple:
    """Every calibration input is a file of exactly ``prod(input_shape)`` bytes (uint8 HWC,
    or NHWC for a batched file); returns the per-file array shape ``[N, H, W, 3]``."""
    shape = tuple(int(d) for d in input_shape)
    if len(shape) == 3:
        shape = (1, *shape)
    if len(shape) != 4 or shape[-1] != 3 or min(shape) < 1:
        raise DataError(f"input shape {tuple(input_shape)}: not a uint8 HWC image shape "
                        f"(H, W, 3); give the AIPP config's src_image_size as (H, W, 3)")
    if not inputs:
        raise DataError("no calibration inputs: the int8 model needs at least one of the "
                        "run's .bin images (calibration_images >= 1, and a preprocessed run)")
    expected = int(np.prod(shape))
    for p in inputs:
        p = Path(p)
        if not p.is_file():
            raise DataError(f"{p}: calibration input not found; preprocess the run's images "
                            f"again (its bin folder)")
        size = p.stat().st_size
        if size != expected:
            raise DataError(f"{p}: {size:,} bytes, but a calibration input is uint8 "
                            f"{'x'.join(map(str, input_shape))} = {expected:,} bytes (the AIPP "
                            f"config's src_image_size); preprocess the images again with "
                            f"the recipe, or give the run's own .bin files")
    return shape


def _reader(quantization, name: str, inputs: Sequence[Path], shape: tuple):
    """A CalibrationDataReader over the ``.bin`` inputs, one file a call (ORT's histogram
    calibrators refuse batches of unequal size; one at a time was the fastest anyway)."""
    class BinReader(quantization.CalibrationDataReader):
        def __init__(self):
            self.files = list(inputs)
            self.at = 0

        def get_next(self):
            if self.at >= len(self.files):
                return None
            self.at += 1
            return {name: np.fromfile(self.files[self.at - 1], np.uint8).reshape(shape)}

        def __len__(self):
            return len(self.files)
    return BinReader()


def _source_facts(source_model: Path, shape: tuple) -> tuple[str, list[str]]:
    """The fp32 AIPP model's input name and its AIPP nodes; refuses a model whose input is
    not the calibration inputs' uint8 [N, H, W, 3]."""
    import onnx
    if not source_model.is_file():
        raise DataError(f"{source_model}: the fp32 AIPP model is not there; run the export "
                        f"step first (it builds models/<name>_aipp.onnx)")
    try:
        model = onnx.load(str(source_model), load_external_data=False)
    except Exception as exc:   # noqa: BLE001 - any parse failure is the same fix
        raise DataError(f"{source_model}: not a readable ONNX model ({type(exc).__name__}); "
                        f"run the export step again") from None
    inp = model.graph.input[0]
    dims = [d.dim_value or None for d in inp.type.tensor_type.shape.dim]
    if inp.type.tensor_type.elem_type != onnx.TensorProto.UINT8 or dims[1:] != list(shape[1:]):
        raise DataError(f"{source_model}: input {inp.name} is not uint8 [N, "
                        f"{', '.join(map(str, shape[1:]))}] (the calibration inputs' shape); "
                        f"quantize the AIPP model the export step built for these inputs")
    excluded = [n.name for n in model.graph.node if n.name.startswith("aipp_")]
    return inp.name, excluded


def _prepare(source: Path, dest: Path) -> None:
    """``source`` as the quantizer takes it, in ``dest``: at opset :data:`OPSET` at least,
    and the AIPP's per-channel constants tiled along the width (``[1, 3, 1, W]``, the same
    values).  ONNX Runtime runs the int8 network in NHWC and moves the AIPP nodes after the
    layout change; a ``[1, 1, 1, 3]`` constant there broadcasts three floats at a time, 8x
    slower than the network's own first layer -- tiled, each element computes the very same
    float operations, at the speed of the fp32 model's AIPP."""
    import onnx
    from onnx import numpy_helper, version_converter
    model = onnx.load(str(source))
    current = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
                  default=OPSET)
    if current < OPSET:
        model = version_converter.convert_version(model, OPSET)
    inits = {t.name: t for t in model.graph.initializer}
    width = model.graph.input[0].type.tensor_type.shape.dim[2].dim_value
    if "aipp_crop_starts" in inits and "aipp_crop_ends" in inits:   # [y, x] of the crop box
        width = int(numpy_helper.to_array(inits["aipp_crop_ends"])[1]
                    - numpy_helper.to_array(inits["aipp_crop_starts"])[1])
    for name in ("aipp_offset", "aipp_scale"):
        c = numpy_helper.to_array(inits[name]) if name in inits else None
        if width and c is not None and c.shape == (1, 3, 1, 1):
            tiled = np.ascontiguousarray(np.broadcast_to(c, (1, 3, 1, width)))
            inits[name].CopyFrom(numpy_helper.from_array(tiled, name))
    onnx.save(model, str(dest))


def _calibrator_options() -> dict:
    """create_calibrator's options for :data:`METHOD` (quantize_static's names differ)."""
    return {"percentile": METHOD["percentile"]} if "percentile" in METHOD else {}


def _quantizable_ops(quantization) -> list[str]:
    """Every op type ORT's quantizer handles (what quantize_static calibrates by default)."""
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry
    return sorted(set(QLinearOpsRegistry) | set(QDQRegistry))


def _concat_overrides(quantization, model: Path, reader, tmp: Path) -> dict:
    """TensorQuantOverrides giving every Concat's inputs and output one shared range (the
    union of theirs: what the output's is under MinMax).  The network's ``Concat`` (a fire
    module's two expands) then copies bytes instead of re-quantizing each input through a
    lookup table; the output is quantized as coarsely as before, in one rounding, not two."""
    import onnx
    calibrator = quantization.create_calibrator(
        model, _quantizable_ops(quantization), augmented_model_path=str(tmp / "augmented.onnx"),
        calibrate_method=getattr(quantization.CalibrationMethod, METHOD["calibrate_method"]),
        extra_options=_calibrator_options())
    calibrator.collect_data(reader)
    ranges = calibrator.compute_data()
    out: dict = {}
    for node in onnx.load(str(model), load_external_data=False).graph.node:
        names = [*node.input, *node.output]
        if node.op_type != "Concat" or not all(n in ranges for n in names):
            continue
        lows, highs = zip(*(ranges[n].range_value for n in names))
        lo, hi = float(min(np.min(v) for v in lows)), float(max(np.max(v) for v in highs))
        for n in names:
            out[n] = [{"rmin": np.float32(lo), "rmax": np.float32(hi)}]
    del calibrator
    return out


class _NoPreProcessAdvice(logging.Filter):
    """Drops the quantizer's advice to pre-process (root logger, every build): measured, it
    gives the same model here (:data:`METHOD` ``pre_process``)."""
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Please consider")


def _reusable(model: Path, sidecar: Path, digest: str) -> dict | None:
    """The sidecar's record when ``model`` is the one it describes, else None."""
    if not (model.is_file() and sidecar.is_file()):
        return None
    try:
        rec = read_json(sidecar, max_bytes=1 << 20)
    except (OSError, ValueError, DataError):
        return None
    if (not isinstance(rec, dict) or rec.get("calibration_sha256") != digest
            or rec.get("model_sha256") != _sha256_file(model)):
        return None
    return rec


def build_int8(source_model: str | os.PathLike, inputs: Sequence[Path], input_shape: tuple,
               models_dir: str | os.PathLike, stem: str) -> dict:
    """The int8 model of ``source_model`` calibrated on ``inputs`` (``.bin`` files of uint8
    ``input_shape``), as ``models_dir/<stem>_int8_<hash[:12]>.onnx``, built unless that file
    is already there and matches its sidecar ``.json``.  Returns the quantize record's fields
    (model, model_sha256, source_model, source_model_sha256, method, calibration_images,
    calibration_sha256, version, excluded_nodes, seconds) and ``reused``."""
    t0 = time.perf_counter()
    source_model = Path(source_model)
    inputs = [Path(p) for p in inputs]
    shape = check_inputs(inputs, input_shape)
    name, excluded = _source_facts(source_model, shape)
    digest = calibration_hash(source_model, inputs)
    models_dir = Path(models_dir)
    dest = models_dir / f"{stem}_int8_{digest[:12]}.onnx"
    sidecar = dest.with_suffix(SIDECAR)
    rec = _reusable(dest, sidecar, digest)
    if rec is not None:
        return {**rec, "model": str(dest), "source_model": str(source_model),
                "seconds": round(time.perf_counter() - t0, 3), "reused": True}
    try:
        from onnxruntime import quantization
    except ImportError:
        raise BackendUnavailable("onnxruntime is not installed, and the int8 model is built "
                                 "with its quantizer: pip install onnxruntime") from None
    models_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{stem}_int8.", dir=models_dir))
    quiet = _NoPreProcessAdvice()
    logging.getLogger().addFilter(quiet)
    try:
        # prepared in the temp dir (ORT's shape inference writes an "-inferred" file beside
        # its input, its calibrator an augmented model)
        src = tmp / "fp32.onnx"
        _prepare(source_model, src)
        if METHOD["pre_process"]:
            from onnxruntime.quantization.shape_inference import quant_pre_process
            pre = tmp / "pre.onnx"
            quant_pre_process(str(src), str(pre))
            src = pre
        overrides = (_concat_overrides(quantization, src, _reader(quantization, name, inputs,
                                                                  shape), tmp)
                     if METHOD["concat_shared_range"] else {})
        out = tmp / "int8.onnx"
        quantization.quantize_static(
            str(src), str(out), _reader(quantization, name, inputs, shape),
            quant_format=getattr(quantization.QuantFormat, METHOD["format"]),
            per_channel=METHOD["per_channel"], reduce_range=METHOD["reduce_range"],
            activation_type=getattr(quantization.QuantType, METHOD["activation_type"]),
            weight_type=getattr(quantization.QuantType, METHOD["weight_type"]),
            nodes_to_exclude=list(excluded),
            calibrate_method=getattr(quantization.CalibrationMethod,
                                     METHOD["calibrate_method"]),
            extra_options={"WeightSymmetric": METHOD["weight_type"] == "QInt8",
                           "ActivationSymmetric": METHOD["activation_type"] == "QInt8",
                           "TensorQuantOverrides": overrides,
                           **({"CalibPercentile": METHOD["percentile"]}
                              if "percentile" in METHOD else {})})
        with writing(dest):
            os.replace(out, dest)       # the temp dir is in models_dir: an atomic rename
    finally:
        logging.getLogger().removeFilter(quiet)
        shutil.rmtree(tmp, ignore_errors=True)
    rec = {"model": str(dest), "model_sha256": _sha256_file(dest),
           "source_model": str(source_model), "source_model_sha256": _sha256_file(source_model),
           "method": method_sentence(), "calibration_images": len(inputs),
           "calibration_sha256": digest, "version": f"onnxruntime {_ort_version()}",
           "excluded_nodes": excluded, "seconds": round(time.perf_counter() - t0, 3)}
    atomic_write_json(sidecar, rec)     # last: a model without its sidecar is rebuilt
    return {**rec, "reused": False}


__all__ = ["METHOD", "build_int8", "calibration_hash", "check_inputs", "method_sentence",
           "select_calibration"]
