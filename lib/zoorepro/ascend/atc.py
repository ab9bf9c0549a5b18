"""Huawei ATC: the recipe's ONNX -> OM conversion with AIPP, driven exactly as its README does.

Each recipe's ``recipe.yaml`` holds its README's ATC line (``atc.command``), the OM name
(``atc.om``, e.g. ``resnet50_bs{bs}``) and the line's words as a template (``atc.argv``:
``{onnx}`` ``{om}`` ``{input}`` ``{bs}`` ``{size}`` ``{soc}`` ``{aipp}``); :func:`atc_command`
fills it for one batch size: one static-batch OM per batch size, with the recipe's ONNX
input name (``model.input``) and input size (``model.size``).  Where a README's spelling is
not ATC's documented one, the template writes ATC's and the recipe's ``notes`` say so.

``soc_version`` comes from params or from ``npu-smi info``.  When ``atc`` is not on PATH
nothing runs and the record says so.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

from zoorepro import recipebook
from zoorepro.ascend.aiscommands import template_argv
from zoorepro.errors import AtcError  # noqa: F401  (raised here; defined in errors)

# soc_version when the chip is not known here: the ModelZoo READMEs' own shell variable.
SOC_PLACEHOLDER = "${chip_name}"
# an --input_shape value the READMEs' double quotes may hold as it is (nothing the shell
# expands inside double quotes)
_PLAIN_SHAPE = re.compile(r"[A-Za-z0-9_.,:;/@%+=-]+")


def om_name(recipe: "recipebook.Recipe", batch_size: int) -> str:
    """The recipe's OM name for ``batch_size`` (``atc.om``), without ``.om``."""
    return recipe.om_name(batch_size)


def atc_command(recipe: "recipebook.Recipe", onnx: str, batch_size: int, soc_version: str,
                aipp_config: str, output_dir: str = "",
                extra: Sequence[str] = ()) -> list[str]:
    """The recipe's ATC command for one batch size, as an argv list (``soc_version`` may be
    :data:`SOC_PLACEHOLDER` to show the command before the chip is known); ``extra`` (the
    params' ``atc_extra_args``) comes last."""
    soc = soc_version if soc_version.startswith("Ascend") else f"Ascend{soc_version}"
    name = om_name(recipe, batch_size)
    out = os.path.join(output_dir, name) if output_dir else name
    return ["atc", *template_argv(recipe, recipe.atc.argv, "atc.argv", onnx=onnx, om=out,
                                  input=recipe.model.input, bs=int(batch_size),
                                  size=recipe.model.size, soc=soc, aipp=aipp_config),
            *extra]


# ATC's precision options -> the precision the .om model runs (CANN's ATC reference:
# --precision_mode, and --precision_mode_v2 from CANN 7/8; the two are exclusive).  Without
# either, inference models are compiled force_fp16 (precision_mode_v2 fp16 on newer CANN).
ATC_DEFAULT_PRECISION = ("fp16", "force_fp16 (ATC's default for inference)")
ATC_PRECISIONS = {
    "force_fp16": "fp16", "fp16": "fp16",
    "must_keep_origin_dtype": "fp32", "origin": "fp32", "force_fp32": "fp32",
    "allow_fp32_to_fp16": "mixed", "allow_mix_precision": "mixed",
    "mixed_float16": "mixed", "allow_mix_precision_fp16": "mixed",
    "mixed_bfloat16": "mixed", "allow_mix_precision_bf16": "mixed", "mixed_hif8": "mixed",
    "cube_fp16in_fp32out": "mixed", "force_lowerprecision": "mixed",
}
# the option that asks ATC for each precision a run may name (a refusal says which to add)
ATC_ASK = {"fp32": "--precision_mode=must_keep_origin_dtype", "fp16": "--precision_mode=force_fp16"}


def precision_of(argv: Sequence[str]) -> tuple[str, str]:
    """(precision, ATC's mode in words) of an ATC command (the recipe's argv and the params'
    extra args): ``fp16``, ``fp32``, ``mixed`` or ``unknown`` (a mode not in
    :data:`ATC_PRECISIONS`); no precision option is ATC's default."""
    mode = None
    for a in argv:
        for opt in ("--precision_mode=", "--precision_mode_v2="):
            if a.startswith(opt):
                mode = a[len(opt):]
    if mode is None:
        return ATC_DEFAULT_PRECISION
    return ATC_PRECISIONS.get(mode, "unknown"), mode


def shell_line(argv: Sequence[str]) -> str:
    """The command as the READMEs write it (``--input_shape`` in double quotes; the chip
    variable ``Ascend${chip_name}`` left for the shell)."""
    parts = []
    for a in argv:
        if a == f"--soc_version=Ascend{SOC_PLACEHOLDER}":
            parts.append(a)   # left for the shell to fill in, as in the recipe's README
        elif a.startswith("--input_shape=") and _PLAIN_SHAPE.fullmatch(a.split("=", 1)[1]):
            parts.append('--input_shape="' + a.split("=", 1)[1] + '"')
        else:
            parts.append(shlex.quote(a))
    return " ".join(parts)


_NPU_ROW = re.compile(r"^\|\s*(\d+)\s+([0-9A-Za-z]+)\s*\|\s*(\S+)\s*\|")


def parse_npu_smi(text: str) -> list[dict]:
    """Chips from ``npu-smi info``: ``[{npu, name, health, soc_version}]``."""
    chips = []
    for line in text.splitlines():
        m = _NPU_ROW.match(line.strip())
        if m and not m.group(2).isdigit():
            name = m.group(2)
            chips.append({"npu": int(m.group(1)), "name": name, "health": m.group(3),
                          "soc_version": name if name.startswith("Ascend") else f"Ascend{name}"})
    return chips


def detect_soc_version(runner=subprocess.run) -> str | None:
    if shutil.which("npu-smi") is None:
        return None
    try:
        out = runner(["npu-smi", "info"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    chips = parse_npu_smi(out)
    return chips[0]["soc_version"] if chips else None


def available() -> bool:
    return shutil.which("atc") is not None


def build_all(recipe: "recipebook.Recipe", onnx: str, batch_sizes: Sequence[int],
              soc_version: str, aipp_config: str, out_dir: Path,
              extra: Sequence[str] = ()) -> list[dict]:
    """Run the recipe's ATC command for every batch size, logs kept beside the models; raise
    on the first failure."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for bs in batch_sizes:
        argv = atc_command(recipe, onnx, bs, soc_version, aipp_config, str(out_dir), extra)
        log = out_dir / f"atc_bs{bs}.log"
        with open(log, "w", encoding="utf-8") as fh:
            proc = subprocess.run(argv, stdout=fh, stderr=subprocess.STDOUT)
        om = out_dir / f"{om_name(recipe, bs)}.om"
        if proc.returncode != 0 or not om.is_file():
            raise AtcError(f"atc failed for batch size {bs} (exit {proc.returncode}); see {log}. "
                           f"Check soc_version ({soc_version}) against 'npu-smi info' and that "
                           f"CANN's set_env.sh was sourced")
        results.append({"batch_size": bs, "om": str(om), "log": str(log),
                        "command": shell_line(argv)})
    return results


def npu_device_name(soc_version: str | None, cann_version: str | None) -> str:
    """How records name an NPU: ``npu: Ascend310P3 (CANN 6.0.RC1)``."""
    soc = soc_version or "Ascend (chip not recorded)"
    if soc and not soc.startswith("Ascend"):
        soc = f"Ascend{soc}"
    cann = f"CANN {cann_version}" if cann_version else "CANN version not recorded"
    return f"npu: {soc} ({cann})"


def parse_cann_version(text: str) -> str:
    """``version=6.0.RC1`` (ascend_toolkit_install.info, version.info) -> ``6.0.RC1``;
    otherwise the first non-empty line (trimmed)."""
    m = re.search(r"(?im)^\s*(?:toolkit_)?version\s*=\s*\"?([^\s\"]+)", text or "")
    if m:
        return m.group(1)
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()[:80]
    return ""


def cann_version_from_env() -> str:
    """The CANN version from the toolkit's install info, when set_env.sh was sourced."""
    home = os.environ.get("ASCEND_HOME_PATH") or os.environ.get("ASCEND_TOOLKIT_HOME") or ""
    if not home:
        return ""
    cands = sorted(Path(home).glob("*-linux/ascend_toolkit_install.info"))
    cands += [Path(home) / "version.cfg", Path(home) / "compiler" / "version.info"]
    for c in cands:
        if c.is_file():
            v = parse_cann_version(c.read_text(errors="replace"))
            if v:
                return v
    return ""
