"""Static AIPP, as ATC bakes it into the model, read from the repo's ``aipp.config``.

Per the ATC docs, for an ``RGB888_U8`` input the hardware does, in order:
channel swap (``rbuv_swap_switch``) -> crop -> CSC (YUV only) -> normalise
``(x - mean_chn - min_chn) * var_reci_chn`` per channel -> padding.

This module parses the file (every value comes from it, nothing is duplicated by hand),
gives a numpy reference of the computation, and builds an ONNX model that takes the
ATC model's input -- uint8 NHWC ``[N, H, W, 3]`` -- with those steps prepended as graph
nodes, so the recipe's ``.bin`` files feed every portable backend unchanged.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from zoorepro.errors import AippError  # noqa: F401  (raised here; defined in errors)

# Fields this portable implementation computes.
SUPPORTED = {
    "aipp_mode", "related_input_rank", "input_format", "src_image_size_w", "src_image_size_h",
    "crop", "load_start_pos_w", "load_start_pos_h", "crop_size_w", "crop_size_h",
    "rbuv_swap_switch", "csc_switch", "padding",
    *(f"{p}_chn_{i}" for p in ("mean", "min", "var_reci") for i in range(4)),
}
# Valid ATC fields that only matter for modes we do not implement (YUV/CSC, padding, dynamic).
KNOWN_UNSUPPORTED = {
    *(f"matrix_r{r}c{c}" for r in range(3) for c in range(3)),
    *(f"input_bias_{i}" for i in range(3)), *(f"output_bias_{i}" for i in range(3)),
    "left_padding_size", "right_padding_size", "top_padding_size", "bottom_padding_size",
    "padding_value", "ax_swap_switch", "single_line_mode", "max_src_image_size",
    "support_rotation", "resize", "resize_output_w", "resize_output_h", "cpadding_value",
}
BOOL_FIELDS = {"crop", "rbuv_swap_switch", "csc_switch", "padding", "ax_swap_switch",
               "single_line_mode", "support_rotation", "resize"}
INT_FIELDS = {"related_input_rank", "src_image_size_w", "src_image_size_h", "load_start_pos_w",
              "load_start_pos_h", "crop_size_w", "crop_size_h"}


@dataclass(frozen=True)
class Aipp:
    """One parsed static AIPP block (RGB888_U8)."""
    path: str
    src_w: int
    src_h: int
    crop: bool
    crop_x: int
    crop_y: int
    crop_w: int
    crop_h: int
    swap_rb: bool
    mean: tuple   # mean_chn_0..2
    min: tuple    # min_chn_0..2
    var_reci: tuple

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """What the model takes per image, the ``.bin``: uint8 HWC at the source size."""
        return (self.src_h, self.src_w, 3)

    @property
    def out_hw(self) -> tuple[int, int]:
        return (self.crop_h, self.crop_w) if self.crop else (self.src_h, self.src_w)

    @property
    def offset(self) -> np.ndarray:
        """``mean_chn + min_chn`` per channel, float32 (what is subtracted)."""
        return (np.asarray(self.mean, np.float32)
                + np.asarray(self.min, np.float32)).astype(np.float32)

    @property
    def scale(self) -> np.ndarray:
        return np.asarray(self.var_reci, np.float32)

    def check_model_input(self, height: int, width: int) -> None:
        """The AIPP output must equal the model's ``--input_shape`` H and W."""
        if self.out_hw != (height, width):
            which = "crop_size_h/crop_size_w" if self.crop else "src_image_size_h/src_image_size_w"
            raise AippError(f"{self.path}: AIPP output is {self.out_hw[0]}x{self.out_hw[1]} "
                            f"({which}) but the model takes {height}x{width}; set {which} to "
                            f"{height}/{width}")

    def to_dict(self) -> dict:
        return {"path": self.path, "src_image_size": [self.src_w, self.src_h], "crop": self.crop,
                "crop_box": [self.crop_x, self.crop_y, self.crop_w, self.crop_h],
                "rbuv_swap_switch": self.swap_rb, "mean_chn": list(self.mean),
                "min_chn": list(self.min), "var_reci_chn": list(self.var_reci)}


_LINE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*(.*?)\s*$")


def _parse_value(path, lineno, key, text):
    if key in BOOL_FIELDS:
        low = text.lower()
        if low not in ("true", "false"):
            raise AippError(f"{path}:{lineno}: {key} must be true or false, got {text!r}")
        return low == "true"
    if key in ("aipp_mode", "input_format"):
        return text
    try:
        value = int(text) if key in INT_FIELDS else float(text)
    except ValueError:
        value = None
    if value is None or not np.isfinite(value) or abs(value) > 1e9:
        kind = "an integer" if key in INT_FIELDS else "a number"
        raise AippError(f"{path}:{lineno}: {key} must be {kind} (finite, at most 1e9 in size), "
                        f"got {text[:40]!r}")
    return value


def parse_blocks(text: str, path: str = "aipp.config") -> list[dict]:
    """Parse ``aipp_op { key : value ... }`` blocks into ``[{key: (value, lineno)}]``."""
    blocks: list[dict] = []
    current: dict | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        while line:
            if current is None:
                m = re.match(r"^aipp_op\s*\{", line)
                if not m:
                    raise AippError(f"{path}:{lineno}: expected 'aipp_op {{', got {raw.strip()!r}")
                current = {}
                line = line[m.end():].strip()
                continue
            if line.startswith("}"):
                blocks.append(current)
                current = None
                line = line[1:].strip()
                continue
            body, sep, rest = line.partition("}")
            m = _LINE.match(body)
            if not m:
                raise AippError(f"{path}:{lineno}: expected 'field : value', got {body.strip()!r}")
            key, value = m.group(1), m.group(2)
            if key in current:
                raise AippError(f"{path}:{lineno}: field {key} given twice "
                                f"(first on line {current[key][1]})")
            if key not in SUPPORTED and key not in KNOWN_UNSUPPORTED:
                raise AippError(f"{path}:{lineno}: unknown AIPP field {key!r}; "
                                f"valid static RGB fields: {', '.join(sorted(SUPPORTED))}")
            current[key] = (_parse_value(path, lineno, key, value), lineno)
            line = (sep + rest).strip() if sep else ""
    if current is not None:
        raise AippError(f"{path}: 'aipp_op {{' is never closed with '}}'")
    if not blocks:
        raise AippError(f"{path}: no 'aipp_op {{ ... }}' block found")
    return blocks


def parse(text: str, path: str = "aipp.config") -> Aipp:
    blocks = parse_blocks(text, path)
    if len(blocks) > 1:
        raise AippError(f"{path}: {len(blocks)} aipp_op blocks; the model has one input, "
                        f"so give exactly one")
    b = blocks[0]

    def get(key, default):
        return b[key][0] if key in b else default

    def where(key):
        return f"{path}:{b[key][1]}" if key in b else path

    for key in sorted(b):
        if key in KNOWN_UNSUPPORTED:
            raise AippError(f"{where(key)}: field {key} is valid ATC AIPP but not supported by "
                            f"zoorepro's portable AIPP (static RGB888_U8 only); remove it")
    mode = get("aipp_mode", None)
    if mode is None:
        raise AippError(f"{path}: aipp_mode is missing; add 'aipp_mode : static'")
    if mode != "static":
        raise AippError(f"{where('aipp_mode')}: aipp_mode {mode!r} is not supported "
                        f"(dynamic AIPP sets values at run time); use 'aipp_mode : static'")
    fmt = get("input_format", None)
    if fmt is None:
        raise AippError(f"{path}: input_format is missing (it is mandatory); add "
                        f"'input_format : RGB888_U8'")
    if fmt != "RGB888_U8":
        raise AippError(f"{where('input_format')}: input_format {fmt} is not supported by the "
                        f"portable path; the recipe's .bin files are RGB888_U8")
    if get("related_input_rank", 0) != 0:
        raise AippError(f"{where('related_input_rank')}: related_input_rank must be 0 "
                        f"(the model has one input)")
    if get("csc_switch", False):
        raise AippError(f"{where('csc_switch')}: csc_switch true converts YUV; with RGB888_U8 "
                        f"input set it to false")
    if get("padding", False):
        raise AippError(f"{where('padding')}: AIPP padding is not supported; set padding false")
    src_w, src_h = get("src_image_size_w", 0), get("src_image_size_h", 0)
    if src_w <= 0 or src_h <= 0:
        raise AippError(f"{path}: src_image_size_w and src_image_size_h must be set (> 0): "
                        f"the size of the recipe's .bin images (its preprocess.crop)")
    crop = get("crop", False)
    cx, cy = get("load_start_pos_w", 0), get("load_start_pos_h", 0)
    cw, ch = get("crop_size_w", 0), get("crop_size_h", 0)
    if crop:
        cw, ch = cw or src_w - cx, ch or src_h - cy
        if cx < 0 or cy < 0 or cx + cw > src_w or cy + ch > src_h or cw <= 0 or ch <= 0:
            raise AippError(f"{where('crop')}: crop box ({cx},{cy}) size {cw}x{ch} does not fit "
                            f"in the {src_w}x{src_h} source image")
    mean = tuple(float(get(f"mean_chn_{i}", 0.0)) for i in range(3))
    mins = tuple(float(get(f"min_chn_{i}", 0.0)) for i in range(3))
    var = tuple(float(get(f"var_reci_chn_{i}", 1.0)) for i in range(3))
    return Aipp(path=str(path), src_w=src_w, src_h=src_h, crop=crop, crop_x=cx, crop_y=cy,
                crop_w=cw if crop else src_w, crop_h=ch if crop else src_h,
                swap_rb=get("rbuv_swap_switch", False), mean=mean, min=mins, var_reci=var)


def load(path: str | os.PathLike) -> Aipp:
    p = Path(path)
    if not p.is_file():
        raise AippError(f"{p}: aipp.config not found (set aipp_config to the recipe's aipp.config)")
    if p.stat().st_size > 1 << 20:
        raise AippError(f"{p}: {p.stat().st_size:,} bytes is no aipp.config (the recipe's takes "
                        f"1 kB); set aipp_config to the recipe's aipp.config")
    try:
        return parse(p.read_bytes().decode("utf-8-sig"), str(p))
    except UnicodeDecodeError as exc:
        raise AippError(f"{p}: not UTF-8 text (byte {exc.start}); set aipp_config to the "
                        f"recipe's aipp.config") from None


# --------------------------------------------------------------- computation
def apply_numpy(aipp: Aipp, x: np.ndarray) -> np.ndarray:
    """Reference: uint8 NHWC ``[N, H, W, 3]`` -> float32 NCHW, exactly the AIPP steps."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[None]
    if x.shape[1:] != (aipp.src_h, aipp.src_w, 3):
        raise AippError(f"{aipp.path}: input is {x.shape[1:]}, AIPP expects "
                        f"({aipp.src_h}, {aipp.src_w}, 3)")
    y = x.astype(np.float32)
    if aipp.swap_rb:
        y = y[..., ::-1]
    if aipp.crop:
        y = y[:, aipp.crop_y:aipp.crop_y + aipp.crop_h, aipp.crop_x:aipp.crop_x + aipp.crop_w]
    y = (y - aipp.offset) * aipp.scale
    return np.ascontiguousarray(y.transpose(0, 3, 1, 2), dtype=np.float32)


def prepend_to_onnx(model, aipp: Aipp, input_name: str = "image"):
    """Return a copy of ``model`` whose input is uint8 NHWC, with AIPP as the first nodes."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    old = graph.input[0]
    old_name = old.name
    inner = "aipp_output"
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old_name:
                node.input[i] = inner
    batch = old.type.tensor_type.shape.dim[0]
    nodes, inits = [], []
    src = input_name   # free again: nothing reads the old input any more
    # Layout first, on uint8 (4x less memory traffic than on float), then the per-element
    # arithmetic -- the same float32 operations in the same order as the hardware's.
    nodes.append(helper.make_node("Transpose", [src], ["aipp_nchw_u8"], perm=[0, 3, 1, 2],
                                  name="aipp_to_nchw"))
    cur = "aipp_nchw_u8"
    if aipp.swap_rb:
        inits.append(numpy_helper.from_array(np.array([2, 1, 0], np.int64), "aipp_swap_idx"))
        nodes.append(helper.make_node("Gather", [cur, "aipp_swap_idx"], ["aipp_swapped"], axis=1,
                                      name="aipp_rbuv_swap"))
        cur = "aipp_swapped"
    if aipp.crop:
        for nm, val in (("aipp_crop_starts", [aipp.crop_y, aipp.crop_x]),
                        ("aipp_crop_ends", [aipp.crop_y + aipp.crop_h, aipp.crop_x + aipp.crop_w]),
                        ("aipp_crop_axes", [2, 3])):
            inits.append(numpy_helper.from_array(np.array(val, np.int64), nm))
        nodes.append(helper.make_node("Slice", [cur, "aipp_crop_starts", "aipp_crop_ends",
                                                "aipp_crop_axes"], ["aipp_cropped"],
                                      name="aipp_crop"))
        cur = "aipp_cropped"
    nodes.append(helper.make_node("Cast", [cur], ["aipp_float"], to=TensorProto.FLOAT,
                                  name="aipp_cast"))
    inits.append(numpy_helper.from_array(aipp.offset.reshape(1, 3, 1, 1), "aipp_offset"))
    inits.append(numpy_helper.from_array(aipp.scale.reshape(1, 3, 1, 1), "aipp_scale"))
    nodes.append(helper.make_node("Sub", ["aipp_float", "aipp_offset"], ["aipp_centred"],
                                  name="aipp_sub"))
    nodes.append(helper.make_node("Mul", ["aipp_centred", "aipp_scale"], [inner], name="aipp_mul"))
    new_nodes = nodes + list(graph.node)
    del graph.node[:]
    graph.node.extend(new_nodes)
    graph.initializer.extend(inits)
    new_input = helper.make_tensor_value_info(src, TensorProto.UINT8,
                                              [None, aipp.src_h, aipp.src_w, 3])
    d0 = new_input.type.tensor_type.shape.dim[0]
    if batch.dim_param:
        d0.dim_param = batch.dim_param
    elif batch.dim_value:
        d0.dim_value = batch.dim_value
    graph.input.remove(old)
    graph.input.insert(0, new_input)
    return model


def torch_module(aipp: Aipp):
    """The same computation as a ``torch.nn.Module`` (for the PyTorch reference backend)."""
    import torch

    class AippModule(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("offset", torch.from_numpy(aipp.offset.copy()))
            self.register_buffer("scale", torch.from_numpy(aipp.scale.copy()))

        def forward(self, x):  # uint8 NHWC
            y = x.float()
            if aipp.swap_rb:
                y = y.flip(-1)
            if aipp.crop:
                y = y[:, aipp.crop_y:aipp.crop_y + aipp.crop_h,
                      aipp.crop_x:aipp.crop_x + aipp.crop_w]
            y = (y - self.offset) * self.scale
            return y.permute(0, 3, 1, 2).contiguous()

    return AippModule()
