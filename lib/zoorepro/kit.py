"""``zoorepro kit``: a folder to copy to an NPU host, with one script that runs the recipe.

The kit holds what the recipe's NPU half needs and nothing else (zoorepro need not be
installed there)::

    kit/
      run_on_npu.sh          the one script: ATC, accuracy run, --loop sweep, collection
      model/squeezenet1_1.onnx
      aipp.config
      prep_dataset/*.bin     the recipe's preprocessed inputs (or made there, --no-bins)
      val_label.txt
      kit.json               what was sent: params, hashes, image keys, the exact commands

``run_on_npu.sh`` writes ``npu_results/`` and prints the ``zoorepro ingest`` command that
turns it into a run folder and report back home.  Its ATC and ais_bench lines are built by
:mod:`zoorepro.atc` and :mod:`zoorepro.aisbench`, so they are the recipe's commands.
"""
from __future__ import annotations

import datetime as _dt
import os
import shutil
from pathlib import Path

from . import aipp as aipp_mod
from . import aisbench, atc, data, export, pipeline, preprocess, provenance
from .config import RunConfig
from .data import DataError
from .files import atomic_write_json, atomic_write_text

SCRIPT = "run_on_npu.sh"
MANIFEST = "kit.json"
RESULTS = "npu_results"
ONNX_REL = f"model/{export.ONNX_NAME}"
OM_DIR = "om"
BIN_DIR = "prep_dataset"
LABELS = "val_label.txt"
AIPP = "aipp.config"
CANN_SET_ENV = "/usr/local/Ascend/ascend-toolkit/set_env.sh"

_CHIP = "@CHIP@"          # placeholders replaced by shell variables in the script
_DEVICE = "@DEVICE_ID@"


class KitError(DataError):
    """The kit cannot be written; the message says why and what to do."""


# ------------------------------------------------------------------ commands
def atc_line(batch_size: int, extra=()) -> str:
    """The recipe's ATC command for the kit, with the chip as ``"Ascend${chip_name}"``."""
    argv = atc.atc_command(ONNX_REL, batch_size, _CHIP, AIPP, OM_DIR, tuple(extra))
    return atc.shell_line(argv).replace(f"--soc_version=Ascend{_CHIP}",
                                        '--soc_version="Ascend${chip_name}"')


def om_path(batch_size: int) -> str:
    return f"{OM_DIR}/{atc.om_name(batch_size)}.om"


def accuracy_line(batch_size: int, outfmt: str = "TXT") -> str:
    argv = aisbench.accuracy_argv(om_path(batch_size), batch_size, BIN_DIR,
                                  f"{RESULTS}/result", aisbench.result_dirname(batch_size),
                                  outfmt, _DEVICE)
    return aisbench.shell_line(argv).replace(_DEVICE, '"${DEVICE_ID}"')


def perf_line(batch_size: int, loop: int = aisbench.PERF_LOOP) -> str:
    argv = aisbench.perf_argv(om_path(batch_size), batch_size, loop, _DEVICE,
                              f"{RESULTS}/perf", aisbench.perf_dirname(batch_size))
    return aisbench.shell_line(argv).replace(_DEVICE, '"${DEVICE_ID}"')


# -------------------------------------------------------------------- script
def render_script(cfg: RunConfig, batch_sizes, acc_bs: int, images: int | None,
                  bins_included: bool, params_source: str = "") -> str:
    """The text of ``run_on_npu.sh``."""
    bss = " ".join(map(str, batch_sizes))
    soc_default = cfg.soc_version or ""
    L = []
    add = L.append
    add("#!/usr/bin/env bash")
    add("# run_on_npu.sh: the Ascend ModelZoo SqueezeNet 1.1 recipe on this NPU host, run the way")
    add("# its README runs it, collecting everything 'zoorepro ingest' needs into npu_results/.")
    add(f"# Written by zoorepro kit on {_dt.date.today().isoformat()}"
        + (f" from {os.path.basename(params_source)}" if params_source else "") + ".")
    add("#")
    add("#   1. source CANN's set_env.sh; record 'npu-smi info' and the CANN version; find the chip")
    add(f"#   2. ATC: {ONNX_REL} -> {OM_DIR}/squeezenet1_1_bs<N>.om with {AIPP}, N in {bss}")
    add(f"#   3. accuracy: ais_bench on {BIN_DIR}/ at batch size {acc_bs}, {cfg.outfmt} outputs")
    add(f"#   4. performance: ais_bench pure inference, --loop={aisbench.PERF_LOOP}, every batch size")
    add("#   5. print the 'zoorepro ingest' command to run where zoorepro is installed")
    add("#")
    add("# Needs: the CANN toolkit (atc), python3 with the ais_bench and aclruntime wheels")
    add("# (Ascend/tools ais-bench_workload/tool/ais_bench), an Ascend NPU.")
    add("# Settings (environment variables):")
    add("#   SOC_VERSION   chip for ATC, e.g. Ascend310P3 (default: "
        + (soc_default if soc_default else "read from 'npu-smi info'") + ")")
    add(f"#   DEVICE_ID     NPU device id for ais_bench (default {cfg.device_id})")
    add(f"#   CANN_SET_ENV  CANN's set_env.sh (default {CANN_SET_ENV})")
    if not bins_included:
        add("#   DATA_DIR      the ImageNet val folder (JPEGs) on this host; needed to make prep_dataset/")
        add("#   PREPROCESS_PY the recipe's squeezenet1_1_preprocess.py (default: ./squeezenet1_1_preprocess.py)")
    add("# Usage: bash run_on_npu.sh")
    add("set -euo pipefail")
    add("")
    add('cd "$(dirname "${BASH_SOURCE[0]}")"')
    add(f"OUT={RESULTS}")
    add(f'DEVICE_ID="${{DEVICE_ID:-{cfg.device_id}}}"')
    add(f'SOC_VERSION="${{SOC_VERSION:-{soc_default}}}"')
    add(f'CANN_SET_ENV="${{CANN_SET_ENV:-{CANN_SET_ENV}}}"')
    add("")
    add('die() { echo "error: $*" >&2; exit 1; }')
    add("")
    add("# run_logged LOG COMMAND...: show the command, run it, keep command and output in LOG")
    add("run_logged() {")
    add('    local log="$1"')
    add("    shift")
    add('    echo "+ $*" | tee "$log"')
    add('    "$@" 2>&1 | tee -a "$log"')
    add("}")
    add("")
    add('if [[ -e "$OUT" ]]; then')
    add('    die "$OUT/ exists from an earlier run; move it away first"')
    add("fi")
    add('mkdir -p "$OUT/logs"')
    add("")
    add("# ---- 1. environment")
    add('if [[ -f "$CANN_SET_ENV" ]]; then')
    add("    set +u  # set_env.sh reads variables that may be unset")
    add("    # shellcheck source=/dev/null")
    add('    source "$CANN_SET_ENV"')
    add("    set -u")
    add("else")
    add('    echo "note: $CANN_SET_ENV not found; using the environment as it is" >&2')
    add("fi")
    add("if command -v npu-smi >/dev/null 2>&1; then")
    add('    npu-smi info | tee "$OUT/npu-smi.txt"')
    add("else")
    add('    echo "npu-smi not found on PATH" | tee "$OUT/npu-smi.txt"')
    add("fi")
    add('cann_home="${ASCEND_HOME_PATH:-${ASCEND_TOOLKIT_HOME:-/usr/local/Ascend/ascend-toolkit/latest}}"')
    add(': > "$OUT/cann_version.txt"')
    add('for f in "$cann_home"/*-linux/ascend_toolkit_install.info "$cann_home"/version.cfg \\')
    add('         "$cann_home"/compiler/version.info; do')
    add('    if [[ -f "$f" ]]; then')
    add('        { echo "# $f"; cat "$f"; } >> "$OUT/cann_version.txt"')
    add("    fi")
    add("done")
    add("CANN_VERSION=$(grep -m1 -iE '^[[:space:]]*(toolkit_)?version[[:space:]]*=' \"$OUT/cann_version.txt\" \\")
    add("               | cut -d= -f2 | tr -d ' \"' || true)")
    add('CANN_VERSION="${CANN_VERSION:-unknown}"')
    add('if [[ -z "$SOC_VERSION" ]]; then')
    add("    # first chip row of npu-smi info: '| 0       310P3     | OK  |...'")
    add("    chip=$(awk -F'|' '{ split($2, f, \" \") } f[1] ~ /^[0-9]+$/ && f[2] ~ /[A-Za-z]/ { print f[2]; exit }' \\")
    add('           "$OUT/npu-smi.txt")')
    add('    [[ -n "$chip" ]] || die "no chip found in npu-smi info; set SOC_VERSION, e.g. SOC_VERSION=Ascend310P3"')
    add('    SOC_VERSION="Ascend${chip#Ascend}"')
    add("fi")
    add('chip_name="${SOC_VERSION#Ascend}"')
    add('echo "chip: Ascend${chip_name}, CANN: ${CANN_VERSION}, device: ${DEVICE_ID}"')
    add("")
    add(f"# ---- the inputs: {BIN_DIR}/ holds the recipe's preprocessed .bin files")
    add(f"if [[ ! -d {BIN_DIR} ]]; then")
    if bins_included:
        add(f'    die "{BIN_DIR}/ is missing: copy the whole kit folder"')
    else:
        add('    : "${DATA_DIR:?set DATA_DIR to the ImageNet val folder (the JPEGs) on this host}"')
        add('    PREPROCESS_PY="${PREPROCESS_PY:-squeezenet1_1_preprocess.py}"')
        add('    [[ -f "$PREPROCESS_PY" ]] || die "$PREPROCESS_PY not found: set PREPROCESS_PY to the '
            'ModelZoo recipe\'s squeezenet1_1_preprocess.py"')
        add("    # the recipe's preprocessing: python3 squeezenet1_1_preprocess.py ${data_dir} ${save_dir}")
        add(f'    python3 "$PREPROCESS_PY" "$DATA_DIR" {BIN_DIR}')
    add("fi")
    add(f"n_bins=$(find {BIN_DIR} -maxdepth 1 -name '*.bin' | wc -l)")
    expected = f" (the kit holds {images})" if images else ""
    add(f'echo "{BIN_DIR}: $n_bins .bin files{expected}"')
    add('[[ "$n_bins" -gt 0 ]] || die "no .bin files in ' + BIN_DIR + '/"')
    add("")
    add(f"# ---- 2. ATC, the recipe's command for every batch size ({bss})")
    add(f"mkdir -p {OM_DIR}")
    for bs in batch_sizes:
        add(f'run_logged "$OUT/logs/atc_bs{bs}.log" {atc_line(bs, cfg.atc_extra_args)}')
        add(f'[[ -f {om_path(bs)} ]] || die "ATC wrote no {om_path(bs)}; see $OUT/logs/atc_bs{bs}.log"')
    add("")
    add(f"# ---- 3. accuracy run (batch size {acc_bs}), the recipe's ais_bench command")
    add('mkdir -p "$OUT/result"')
    add(f'run_logged "$OUT/logs/ais_bench_result_bs{acc_bs}.log" {accuracy_line(acc_bs, cfg.outfmt)}')
    add("")
    add(f"# ---- 4. pure-inference sweep, the recipe's --loop={aisbench.PERF_LOOP} command; --output "
        "makes ais_bench write each summary")
    add('mkdir -p "$OUT/perf"')
    for bs in batch_sizes:
        add(f'run_logged "$OUT/logs/ais_bench_perf_bs{bs}.log" {perf_line(bs)}')
    add("")
    add("# ---- 5. collect what 'zoorepro ingest' needs")
    add(f'cp {MANIFEST} {AIPP} {LABELS} "$OUT/"')
    add(f'sha256sum {OM_DIR}/*.om > "$OUT/om_sha256.txt"')
    add('python3 -m pip show ais_bench aclruntime > "$OUT/ais_bench_version.txt" 2>&1 || true')
    add(f'ingest_cmd=(zoorepro ingest "$OUT/result/{aisbench.result_dirname(acc_bs)}" '
        f'--labels "$OUT/{LABELS}")')
    for bs in batch_sizes:
        add(f'ingest_cmd+=(--summary "$OUT/perf/{aisbench.perf_dirname(bs)}_summary.json")')
    add('ingest_cmd+=(--npu-smi "$OUT/npu-smi.txt" --cann-version "$CANN_VERSION" '
        f'--soc-version "Ascend${{chip_name}}" --manifest "$OUT/{MANIFEST}")')
    add("printf '%q ' \"${ingest_cmd[@]}\" > \"$OUT/ingest_command.txt\"")
    add('echo >> "$OUT/ingest_command.txt"')
    add("")
    add('echo')
    add('echo "Done: $(du -sh "$OUT" | cut -f1) in $PWD/$OUT"')
    add('echo "Copy $OUT/ to the machine with zoorepro (e.g. scp -r this-host:$PWD/$OUT .) and run there:"')
    add('echo "  $(cat "$OUT/ingest_command.txt")"')
    return "\n".join(L) + "\n"


# ---------------------------------------------------------------------- kit
def make_kit(cfg: RunConfig, out_dir: str | os.PathLike, bins: bool = True,
             params_source: str = "", progress: bool = True) -> Path:
    """Write the kit into ``out_dir`` (new or empty); returns the script's path."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise KitError(f"{out}: exists and is not empty; give a new folder for the kit")
    problems = []
    if not os.path.isfile(cfg.label_file):
        problems.append(f"label_file: {cfg.label_file} not found")
    if not os.path.isfile(cfg.aipp_config):
        problems.append(f"aipp_config: {cfg.aipp_config} not found")
    if not cfg.onnx_model and not os.path.isfile(cfg.weights):
        problems.append(f"weights: {cfg.weights} not found (or give onnx_model)")
    if cfg.onnx_model and not os.path.isfile(cfg.onnx_model):
        problems.append(f"onnx_model: {cfg.onnx_model} not found")
    if bins and not os.path.isdir(cfg.data_dir):
        problems.append(f"data_dir: {cfg.data_dir} not found (or use --no-bins to make the "
                        f".bin files on the NPU host)")
    if problems:
        raise KitError("cannot write the kit:\n  - " + "\n  - ".join(problems))
    a = aipp_mod.load(cfg.aipp_config)
    out.mkdir(parents=True, exist_ok=True)
    batch_sizes = pipeline.om_batch_sizes(cfg)
    acc_bs = cfg.accuracy_batch_size

    # the model
    onnx_dst = out / ONNX_REL
    onnx_dst.parent.mkdir(parents=True, exist_ok=True)
    if cfg.onnx_model:
        shutil.copyfile(cfg.onnx_model, onnx_dst)
    else:
        export.export_onnx(cfg.weights, onnx_dst, cfg.opset)
    shutil.copyfile(cfg.aipp_config, out / AIPP)
    shutil.copyfile(cfg.label_file, out / LABELS)

    # the inputs
    manifest: dict = {}
    if bins:
        images, unlabelled, missing = pipeline.run_images(cfg)   # same rules as a run
        pipeline.check_free_space(out / BIN_DIR, images)
        result = preprocess.preprocess_folder(images, out / BIN_DIR, cfg.workers, progress)
        # the kit travels: leave out the local source manifest (this machine's paths)
        (out / BIN_DIR / preprocess.MANIFEST).unlink(missing_ok=True)
        if result.failed:
            raise KitError(preprocess.failure_message(result))
        manifest.update(images=len(images), keys=[data.image_key(p.name) for p in images],
                        unlabelled_images=len(unlabelled), unlabelled_examples=unlabelled[:20],
                        labels_without_image=len(missing),
                        image_list_sha256=data.image_list_hash(images),
                        preprocess=result.to_dict())
    else:
        manifest.update(images=None, keys=None, image_list_sha256=None,
                        bins_note="prep_dataset/ is made on the NPU host by the recipe's "
                                  "squeezenet1_1_preprocess.py")

    weights_ok = bool(cfg.weights) and os.path.isfile(cfg.weights) and not cfg.onnx_model
    manifest = {
        "kit": "zoorepro kit", "created": _dt.datetime.now().isoformat(timespec="seconds"),
        "zoorepro_git_commit": provenance.git_commit(),
        "params": cfg.to_dict(), "params_source": params_source or None,
        "data_dir": cfg.data_dir, "max_images": cfg.max_images,
        "batch_sizes": batch_sizes, "accuracy_batch_size": acc_bs,
        "soc_version": cfg.soc_version or None, "device_id": cfg.device_id,
        "bins": "included" if bins else "made on the NPU host",
        **manifest,
        "label_file_sha256": data.sha256_file(cfg.label_file),
        "export": {
            "onnx": ONNX_REL, "onnx_sha256": data.sha256_file(onnx_dst),
            "weights": cfg.weights if weights_ok else None,
            "weights_sha256": data.sha256_file(cfg.weights) if weights_ok else None,
            "opset": cfg.opset, "aipp": a.to_dict(),
            "aipp_config_sha256": data.sha256_file(cfg.aipp_config),
        },
        "atc_commands": [atc_line(bs, cfg.atc_extra_args) for bs in batch_sizes],
        "accuracy_command": accuracy_line(acc_bs, cfg.outfmt),
        "perf_commands": [perf_line(bs) for bs in batch_sizes],
    }
    atomic_write_json(out / MANIFEST, manifest)
    script = atomic_write_text(out / SCRIPT, render_script(
        cfg, batch_sizes, acc_bs, manifest.get("images"), bins, params_source))
    os.chmod(script, 0o755)
    return script
