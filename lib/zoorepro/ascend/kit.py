"""``zoorepro kit``: a folder to copy to an NPU host, with one script that runs the recipe.

The kit holds what the recipe's NPU half needs and nothing else (zoorepro need not be
installed there)::

    kit/
      run_on_npu.sh          the one script: ATC, accuracy run, --loop sweep, collection
      model/squeezenet1_1.onnx
      aipp.config
      prep_dataset/*.bin     the recipe's preprocessed inputs (or made there, --no-bins)
      val_label.txt
      kit.json               what was sent: params, hashes, image keys, the exact commands;
                             its "export" and "preprocess" are records (records.ExportRecord,
                             records.PreprocessRecord) as a run folder holds them

``run_on_npu.sh`` writes ``npu_results/`` and prints the ``zoorepro ingest`` command that
turns it into a run folder and report back home.  Its ATC and ais_bench lines are built by
:mod:`zoorepro.ascend.atc` and :mod:`zoorepro.ascend.aiscommands`, so they are the recipe's
commands.
"""
from __future__ import annotations

import datetime as _dt
import os
import re
import shutil
from pathlib import Path

from zoorepro.errors import KitError  # noqa: F401  (raised here; defined in errors)
from zoorepro.recipe import aipp as aipp_mod
from zoorepro.ascend import aiscommands, aisformat, atc, shell
from zoorepro.recipe import data, export, preprocess
from zoorepro.run import provenance, records
from zoorepro.recipe.inputs import check_free_space, run_images
from zoorepro.config import RunConfig
from zoorepro.files import atomic_write_json, atomic_write_text, writing

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
SCRIPT_TEMPLATE = "run_on_npu.sh.j2"
AIS_BENCH_NAME = re.compile(r"[A-Za-z0-9_.-]+")   # ais_bench's path whitelist, for file names
KIT_FILES_BYTES = 8_000_000   # the ONNX model (5 MB), labels, aipp.config, kit.json, script


# ------------------------------------------------------------------ commands
def atc_argv(batch_size: int, extra=()) -> list:
    """The recipe's ATC command for the kit, as argv; the chip is ``"Ascend${chip_name}"``."""
    for a in extra:
        shell.check_word(a, "atc_extra_args")
    argv = atc.atc_command(ONNX_REL, batch_size, _CHIP, AIPP, OM_DIR, tuple(extra))
    recipe = len(argv) - len(tuple(extra))      # the recipe's own arguments come first
    out = []
    for i, a in enumerate(argv):
        if i < recipe and a == f"--soc_version=Ascend{_CHIP}":
            a = shell.Sh('--soc_version="Ascend${chip_name}"')
        elif i < recipe and a.startswith("--input_shape="):
            a = shell.Sh('--input_shape="image:%d,3,224,224"' % int(batch_size))
        out.append(a)
    return out


def atc_line(batch_size: int, extra=()) -> str:
    return shell.argv(atc_argv(batch_size, extra))


def om_path(batch_size: int) -> str:
    return f"{OM_DIR}/{atc.om_name(batch_size)}.om"


def _with_device(argv: list, variable: str) -> list:
    return [shell.Sh(f'"${{{variable}}}"') if a == _DEVICE else a for a in argv]


def accuracy_argv(batch_size: int, outfmt: str = "TXT") -> list:
    """The recipe's accuracy command; ``--device "${DEVICE_ID}"`` (one id or a list)."""
    argv = aiscommands.accuracy_argv(om_path(batch_size), batch_size, BIN_DIR,
                                  f"{RESULTS}/result", aisformat.result_dirname(batch_size),
                                  outfmt, _DEVICE)
    return _with_device(argv, "DEVICE_ID")


def accuracy_line(batch_size: int, outfmt: str = "TXT") -> str:
    return shell.argv(accuracy_argv(batch_size, outfmt))


def perf_argv(batch_size: int, loop: int = aisformat.PERF_LOOP) -> list:
    """The recipe's ``--loop`` command, on the first device of ``DEVICE_ID``."""
    argv = aiscommands.perf_argv(om_path(batch_size), batch_size, loop, _DEVICE,
                              f"{RESULTS}/perf", aisformat.perf_dirname(batch_size))
    return _with_device(argv, "FIRST_DEVICE")


def perf_line(batch_size: int, loop: int = aisformat.PERF_LOOP) -> str:
    return shell.argv(perf_argv(batch_size, loop))


# -------------------------------------------------------------------- script
def render_script(cfg: RunConfig, batch_sizes, acc_bs: int, images: int | None,
                  bins_included: bool, params_source: str = "") -> str:
    """The text of ``run_on_npu.sh`` (template ``templates/run_on_npu.sh.j2``).  Every value
    is checked for what it is, then quoted by the template's filters."""
    shell.check_soc_version(cfg.soc_version or "")
    shell.check_device_ids(cfg.device_id)
    if cfg.outfmt not in aisformat.FORMATS:
        raise KitError(f"outfmt: {cfg.outfmt!r} is not one of {', '.join(aisformat.FORMATS)}")
    return shell.render(
        SCRIPT_TEMPLATE, results=RESULTS, date=_dt.date.today().isoformat(),
        params_source=os.path.basename(params_source) if params_source else "",
        onnx=ONNX_REL, om_dir=OM_DIR, aipp=AIPP, labels=LABELS, manifest=MANIFEST,
        bin_dir=BIN_DIR, batch_sizes=[int(b) for b in batch_sizes], acc_bs=int(acc_bs),
        outfmt=cfg.outfmt, loop=aisformat.PERF_LOOP, soc_default=cfg.soc_version or "",
        device_id=str(cfg.device_id), cann_set_env=CANN_SET_ENV, bins_included=bins_included,
        images=int(images) if images else 0,
        atc=[{"bs": int(bs), "om": om_path(bs), "argv": atc_argv(bs, cfg.atc_extra_args)}
             for bs in batch_sizes],
        accuracy=accuracy_argv(acc_bs, cfg.outfmt),
        perf=[{"bs": int(bs), "argv": perf_argv(bs)} for bs in batch_sizes],
        result_dirname=aisformat.result_dirname(acc_bs),
        summaries=[aisformat.summary_path("", aisformat.perf_dirname(bs)).name
                   for bs in batch_sizes])


# ---------------------------------------------------------------------- kit
def make_kit(cfg: RunConfig, out_dir: str | os.PathLike, bins: bool = True,
             params_source: str = "", progress: bool = True) -> Path:
    """Write the kit into ``out_dir`` (new or empty); returns the script's path.  The inputs
    are checked before anything is written, and a kit that fails half-way is removed: the
    folder holds a complete kit or nothing."""
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise KitError(f"{out}: exists and is not empty; give a new folder for the kit")
    existed = out.exists()
    try:
        with writing(out):
            return _make_kit(cfg, out, bins, params_source, progress)
    except BaseException:
        if out.is_dir():       # new or empty before: everything in it is this kit's
            for child in out.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
            if not existed:
                out.rmdir()
        raise


def _make_kit(cfg: RunConfig, out: Path, bins: bool, params_source: str, progress: bool) -> Path:
    problems = []
    for check in (lambda: shell.check_soc_version(cfg.soc_version or ""),
                  lambda: shell.check_device_ids(cfg.device_id),
                  lambda: [shell.check_word(a, "atc_extra_args") for a in cfg.atc_extra_args],
                  lambda: shell.comment(os.path.basename(params_source))):
        try:
            check()
        except shell.ShellTemplateError as exc:
            problems.append(str(exc))
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
    if bins:   # the inputs, checked (same rules as a run) before anything is written
        images, unlabelled, missing = run_images(cfg)
        bad = [p.name for p in images if not AIS_BENCH_NAME.fullmatch(data.image_key(p.name))]
        if bad:
            raise KitError(f"{len(bad)} image name(s) hold characters ais_bench refuses in the "
                           f".bin paths on the NPU host (it accepts A-Z a-z 0-9 _ - . only), "
                           f"e.g. {', '.join(bad[:5])}; rename those images (and their "
                           f"val_label.txt lines) or leave them out")
        check_free_space(out / BIN_DIR, images, extra=((KIT_FILES_BYTES, "model and files"),))
    out.mkdir(parents=True, exist_ok=True)
    batch_sizes = cfg.om_batch_sizes
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
        result = preprocess.preprocess_folder(images, out / BIN_DIR, cfg.workers, progress)
        # the kit travels: leave out the local source manifest (this machine's paths)
        (out / BIN_DIR / preprocess.MANIFEST).unlink(missing_ok=True)
        if result.failed:
            raise KitError(preprocess.failure_message(result))
        manifest.update(images=len(images), keys=[data.image_key(p.name) for p in images],
                        unlabelled_images=len(unlabelled), unlabelled_examples=unlabelled[:20],
                        labels_without_image=len(missing),
                        image_list_sha256=data.image_list_hash(images),
                        preprocess=records.PreprocessRecord(**result.to_dict()).to_json())
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
        "export": records.ExportRecord(   # read back by ingest with the same class
            onnx=ONNX_REL, onnx_sha256=data.sha256_file(onnx_dst),
            weights=cfg.weights if weights_ok else None,
            weights_sha256=data.sha256_file(cfg.weights) if weights_ok else None,
            opset=cfg.opset, aipp=a.to_dict(),
            aipp_config_sha256=data.sha256_file(cfg.aipp_config)).to_json(),
        "atc_commands": [atc_line(bs, cfg.atc_extra_args) for bs in batch_sizes],
        "device_note": "DEVICE_ID may list several NPUs (e.g. 0,1): the accuracy run then "
                       "splits the images over them (--divide_input); the sweep uses the first",
        "accuracy_command": accuracy_line(acc_bs, cfg.outfmt),
        "perf_commands": [perf_line(bs) for bs in batch_sizes],
    }
    atomic_write_json(out / MANIFEST, manifest)
    script = atomic_write_text(out / SCRIPT, render_script(
        cfg, batch_sizes, acc_bs, manifest.get("images"), bins, params_source))
    os.chmod(script, 0o755)
    return script
