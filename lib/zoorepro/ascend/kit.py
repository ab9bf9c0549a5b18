"""``zoorepro kit``: a folder to copy to an NPU host, with one script that runs the recipe.

The kit holds what the recipe's NPU half needs and nothing else (zoorepro need not be
installed there)::

    kit/
      run_on_npu.sh          the one script: ATC, accuracy run, --loop sweep, collection
      model/<recipe>.onnx
      <the recipe's AIPP file>   under the name its ATC line gives it (e.g. aipp.config)
      recipe/<recipe>/       a copy of the recipe: recipe.yaml, its AIPP file, its .py files
      prep_dataset/*.bin     the recipe's preprocessed inputs (or made there, --no-bins, by
                             the recipe's upstream preprocessing script)
      val_label.txt
      kit.json               what was sent: params, the recipe (name, recipe.yaml sha256),
                             hashes, image keys, the exact commands; its "export" and
                             "preprocess" are records (records.ExportRecord,
                             records.PreprocessRecord) as a run folder holds them

``run_on_npu.sh`` writes ``npu_results/`` (with a copy of ``kit.json`` and ``recipe/``) and
prints the ``zoorepro ingest`` command that turns it into a run folder and report back home.
Its ATC and ais_bench lines are the recipe's (``recipe.yaml``'s templates, built by
:mod:`zoorepro.ascend.atc` and :mod:`zoorepro.ascend.aiscommands`); only the paths and
folder names are the kit's: the accuracy run's folder is ``result_bs<N>`` whatever the README
calls it, so that ingest reads the batch size from it.
"""
from __future__ import annotations

import datetime as _dt
import os
import re
import shlex
import shutil
from pathlib import Path

from zoorepro.errors import KitError  # noqa: F401  (raised here; defined in errors)
from zoorepro import recipebook
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
MODEL_DIR = "model"
OM_DIR = "om"
BIN_DIR = "prep_dataset"
LABELS = "val_label.txt"
RECIPE_DIR = "recipe"
CANN_SET_ENV = "/usr/local/Ascend/ascend-toolkit/set_env.sh"

_CHIP = "@CHIP@"          # placeholders replaced by shell variables in the script
_DEVICE = "@DEVICE_ID@"
SCRIPT_TEMPLATE = "run_on_npu.sh.j2"
AIS_BENCH_NAME = re.compile(r"[A-Za-z0-9_.-]+")   # ais_bench's path whitelist, for file names
KIT_FILES_BYTES = 3_000_000   # beside the ONNX model: labels, AIPP, recipe, kit.json, script


# ------------------------------------------------------------------ the kit's files
def onnx_rel(recipe: "recipebook.Recipe") -> str:
    """The ONNX model's path in the kit: ``model/<recipe>.onnx``."""
    return f"{MODEL_DIR}/{export.onnx_name(recipe)}"


def aipp_name(recipe: "recipebook.Recipe") -> str:
    """The AIPP file's name in the kit: the recipe's (the one its ATC line names)."""
    return shell.check_word(Path(recipe.aipp).name, f"{recipe.path}: aipp")


def om_path(recipe: "recipebook.Recipe", batch_size: int) -> str:
    return f"{OM_DIR}/{atc.om_name(recipe, batch_size)}.om"


def copy_recipe(recipe: "recipebook.Recipe", out: Path) -> str:
    """Copy the recipe's folder into ``out/recipe/<name>/`` as a run folder keeps it
    (:func:`zoorepro.recipebook.copy_folder`: recipe.yaml, its AIPP file, its .py files);
    returns the sha256 of the copied recipe.yaml, which must be the one the config read."""
    recipebook.copy_folder(recipe, out / RECIPE_DIR)
    sha = data.sha256_file(out / RECIPE_DIR / recipe.name / recipebook.RECIPE_FILE)
    if recipe.sha256 and sha != recipe.sha256:
        raise KitError(f"{recipe.path}: changed while the kit was written (its sha256 is no "
                       f"longer the one read); make the kit again")
    return sha


def onnx_input_problem(recipe: "recipebook.Recipe", path: str) -> str | None:
    """Why a given ONNX model cannot be the recipe's: its ATC line's ``--input_shape`` names
    the recipe's input (``model.input``), which the model must take."""
    import onnx
    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as exc:     # protobuf's errors: whatever they are, not an ONNX model
        return f"onnx_model: {path} is not a readable ONNX model ({exc}); give the .onnx file"
    fixed = {t.name for t in graph.initializer}
    names = [i.name for i in graph.input if i.name not in fixed]
    if recipe.model.input in names:
        return None
    return (f"onnx_model: {path} takes {', '.join(names) or 'no input'}, not the recipe's input "
            f"{recipe.model.input} (model.input in {recipe.path}), which its ATC line's "
            f"--input_shape names; give the ONNX model of recipe {recipe.name}")


# ------------------------------------------------------------------ commands
def _chip_word(word: str) -> str | shell.Sh:
    """A word holding ``Ascend@CHIP@`` with the chip as the script's variable."""
    before, _, after = word.partition(f"Ascend{_CHIP}")
    return shell.Sh("".join([shell.q(before) if before else "", '"Ascend${chip_name}"',
                             shell.q(after) if after else ""]))


def atc_argv(recipe: "recipebook.Recipe", batch_size: int, extra=()) -> list:
    """The recipe's ATC command for the kit, as argv; the chip is ``"Ascend${chip_name}"``."""
    for a in extra:
        shell.check_word(a, "atc_extra_args")
    argv = atc.atc_command(recipe, onnx_rel(recipe), batch_size, _CHIP, aipp_name(recipe),
                           OM_DIR, tuple(extra))
    own = len(argv) - len(tuple(extra))      # the recipe's own arguments come first
    out = []
    for i, a in enumerate(argv):
        if i < own and f"Ascend{_CHIP}" in a:
            a = _chip_word(a)
        elif i < own and a.startswith("--input_shape="):
            value = shell.check_word(a.split("=", 1)[1], f"{recipe.path}: atc --input_shape")
            a = shell.Sh(f'--input_shape="{value}"')     # as the READMEs write it
        out.append(a)
    return out


def atc_line(recipe: "recipebook.Recipe", batch_size: int, extra=()) -> str:
    return shell.argv(atc_argv(recipe, batch_size, extra))


def _with_device(argv: list, variable: str) -> list:
    return [shell.Sh(f'"${{{variable}}}"') if a == _DEVICE else a for a in argv]


def accuracy_argv(recipe: "recipebook.Recipe", batch_size: int, outfmt: str = "TXT") -> list:
    """The recipe's accuracy command; ``--device "${DEVICE_ID}"`` (one id or a list)."""
    argv = aiscommands.accuracy_argv(recipe, om_path(recipe, batch_size), batch_size, BIN_DIR,
                                     f"{RESULTS}/result", aisformat.result_dirname(batch_size),
                                     outfmt, _DEVICE)
    return _with_device(argv, "DEVICE_ID")


def accuracy_line(recipe: "recipebook.Recipe", batch_size: int, outfmt: str = "TXT") -> str:
    return shell.argv(accuracy_argv(recipe, batch_size, outfmt))


def perf_argv(recipe: "recipebook.Recipe", batch_size: int, loop: int | None = None) -> list:
    """The recipe's ``--loop`` command (its ``ais_bench.loop`` unless ``loop``), on the first
    device of ``DEVICE_ID``."""
    argv = aiscommands.perf_argv(recipe, om_path(recipe, batch_size), batch_size, loop, _DEVICE,
                                 f"{RESULTS}/perf", aisformat.perf_dirname(batch_size))
    return _with_device(argv, "FIRST_DEVICE")


def perf_line(recipe: "recipebook.Recipe", batch_size: int, loop: int | None = None) -> str:
    return shell.argv(perf_argv(recipe, batch_size, loop))


def preprocess_argv(recipe: "recipebook.Recipe") -> list:
    """The recipe's upstream preprocessing (``preprocess.command``: ``python3 <script>
    [fixed words] <image folder> <output folder>``, as the ModelZoo READMEs write it) with
    the script ``"$PREPROCESS_PY"``, the image folder ``"$DATA_DIR"`` (keeping the README's
    trailing ``/``) and the output folder the kit's ``prep_dataset``."""
    script = recipe.scripts.get("preprocess", "")
    command = recipe.preprocess.command
    if not script or not command:
        raise KitError(f"{recipe.path}: recipe {recipe.name} names no upstream preprocessing "
                       f"script (source.scripts.preprocess and preprocess.command), so the NPU "
                       f"host cannot make the .bin files; make the kit with them (leave out "
                       f"--no-bins)")
    try:
        words = shlex.split(command)
    except ValueError:
        words = []
    if len(words) < 4 or words[1] != script:
        raise KitError(f"{recipe.path}: preprocess.command {command!r} is not 'python3 "
                       f"{script} [words] <image folder> <output folder>'; write the README's "
                       f"line there (its script is source.scripts.preprocess)")
    what = f"{recipe.path}: preprocess.command"
    data_dir = '"$DATA_DIR/"' if words[-2].endswith("/") else '"$DATA_DIR"'
    return [shell.check_word(words[0], what), shell.Sh('"$PREPROCESS_PY"'),
            *(shell.check_word(w, what) for w in words[2:-2]), shell.Sh(data_dir), BIN_DIR]


def recipe_title(recipe: "recipebook.Recipe") -> str:
    """How the script names the recipe, e.g. "the ResNet-50 recipe" (its ``title``)."""
    return f"the {recipe.title} recipe"


# -------------------------------------------------------------------- script
def render_script(cfg: RunConfig, batch_sizes, acc_bs: int, images: int | None,
                  bins_included: bool, params_source: str = "") -> str:
    """The text of ``run_on_npu.sh`` (template ``templates/run_on_npu.sh.j2``).  Every value
    is checked for what it is, then quoted by the template's filters."""
    shell.check_soc_version(cfg.soc_version or "")
    shell.check_device_ids(cfg.device_id)
    if cfg.outfmt not in aisformat.FORMATS:
        raise KitError(f"outfmt: {cfg.outfmt!r} is not one of {', '.join(aisformat.FORMATS)}")
    recipe = cfg.recipe_spec
    pre = {} if bins_included else {
        "argv": preprocess_argv(recipe), "command": recipe.preprocess.command,
        "script": shell.check_word(recipe.scripts["preprocess"], f"{recipe.path}: scripts")}
    return shell.render(
        SCRIPT_TEMPLATE, results=RESULTS, date=_dt.date.today().isoformat(),
        params_source=os.path.basename(params_source) if params_source else "",
        title=recipe_title(recipe), source=recipe.source,
        om_pattern=recipe.atc.om.replace("{bs}", "<N>"),
        onnx=onnx_rel(recipe), om_dir=OM_DIR, aipp=aipp_name(recipe), labels=LABELS,
        manifest=MANIFEST, recipe_dir=RECIPE_DIR,
        bin_dir=BIN_DIR, batch_sizes=[int(b) for b in batch_sizes], acc_bs=int(acc_bs),
        outfmt=cfg.outfmt, loop=int(recipe.ais_bench.loop), soc_default=cfg.soc_version or "",
        device_id=str(cfg.device_id), cann_set_env=CANN_SET_ENV, bins_included=bins_included,
        images=int(images) if images else 0, preprocess=pre,
        atc=[{"bs": int(bs), "om": om_path(recipe, bs),
              "argv": atc_argv(recipe, bs, cfg.atc_extra_args)} for bs in batch_sizes],
        accuracy=accuracy_argv(recipe, acc_bs, cfg.outfmt),
        perf=[{"bs": int(bs), "argv": perf_argv(recipe, bs)} for bs in batch_sizes],
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
    recipe = cfg.recipe_spec
    for check in (lambda: shell.check_soc_version(cfg.soc_version or ""),
                  lambda: shell.check_device_ids(cfg.device_id),
                  lambda: [shell.check_word(a, "atc_extra_args") for a in cfg.atc_extra_args],
                  lambda: shell.comment(os.path.basename(params_source)),
                  lambda: shell.comment(recipe_title(recipe)),
                  lambda: aipp_name(recipe),
                  lambda: None if bins else preprocess_argv(recipe)):
        try:
            check()
        except (shell.ShellTemplateError, KitError) as exc:
            problems.append(str(exc))
    if not os.path.isfile(cfg.label_file):
        problems.append(f"label_file: {cfg.label_file} not found")
    om_precision, mode = atc.precision_of([*recipe.atc.argv, *cfg.atc_extra_args])
    if cfg.precision and cfg.precision != om_precision:   # what the NPU runs is ATC's
        ask = atc.ATC_ASK.get(cfg.precision)
        problems.append(f"precision {cfg.precision}: the kit's .om models run {om_precision} "
                        f"(ATC --precision_mode {mode}); " + (
                            f"add {ask} to atc_extra_args" if ask else
                            f"the kit builds no {cfg.precision} model") +
                        ", or leave precision '' (the recipe's)")
    if not os.path.isfile(cfg.aipp_config):
        problems.append(f"aipp_config: {cfg.aipp_config} not found")
    if not cfg.onnx_model and not os.path.isfile(cfg.weights):
        problems.append(f"weights: {cfg.weights} not found (or give onnx_model)")
    if cfg.onnx_model and not os.path.isfile(cfg.onnx_model):
        problems.append(f"onnx_model: {cfg.onnx_model} not found")
    elif cfg.onnx_model and onnx_input_problem(recipe, cfg.onnx_model):
        problems.append(onnx_input_problem(recipe, cfg.onnx_model))
    if bins and not os.path.isdir(cfg.data_dir):
        problems.append(f"data_dir: {cfg.data_dir} not found (or use --no-bins to make the "
                        f".bin files on the NPU host)")
    if problems:
        raise KitError("cannot write the kit:\n  - " + "\n  - ".join(problems))
    a = aipp_mod.load(cfg.aipp_config)
    export.check_aipp(recipe, a)      # it takes the recipe's .bin images, gives its input
    # the ONNX model: the file given, or the exported weights (float32, 4 bytes a parameter)
    model_bytes = os.path.getsize(cfg.onnx_model) if cfg.onnx_model else \
        4 * recipe.model.parameters
    if bins:   # the inputs, checked (same rules as a run) before anything is written
        images, unlabelled, missing = run_images(cfg)
        bad = [p.name for p in images if not AIS_BENCH_NAME.fullmatch(data.image_key(p.name))]
        if bad:
            raise KitError(f"{len(bad)} image name(s) hold characters ais_bench refuses in the "
                           f".bin paths on the NPU host (it accepts A-Z a-z 0-9 _ - . only), "
                           f"e.g. {', '.join(bad[:5])}; rename those images (and their "
                           f"val_label.txt lines) or leave them out")
        check_free_space(out / BIN_DIR, images, recipe.preprocess,
                         extra=((KIT_FILES_BYTES + model_bytes, "model and files"),))
    out.mkdir(parents=True, exist_ok=True)
    batch_sizes = cfg.om_batch_sizes
    acc_bs = cfg.accuracy_batch_size

    # the model, the AIPP file under the recipe's name, the labels, the recipe
    onnx_dst = out / onnx_rel(recipe)
    onnx_dst.parent.mkdir(parents=True, exist_ok=True)
    if cfg.onnx_model:
        shutil.copyfile(cfg.onnx_model, onnx_dst)
    else:
        export.export_onnx(recipe, cfg.weights, onnx_dst, cfg.opset)
    shutil.copyfile(cfg.aipp_config, out / aipp_name(recipe))
    shutil.copyfile(cfg.label_file, out / LABELS)
    recipe_sha = copy_recipe(recipe, out)

    # the inputs
    manifest: dict = {}
    if bins:
        result = preprocess.preprocess_folder(images, out / BIN_DIR, recipe.preprocess,
                                              cfg.workers, progress)
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
                        bins_note=f"{BIN_DIR}/ is made on the NPU host by the recipe's "
                                  f"{recipe.scripts['preprocess']}")

    weights_ok = bool(cfg.weights) and os.path.isfile(cfg.weights) and not cfg.onnx_model
    manifest = {
        "kit": "zoorepro kit", "created": _dt.datetime.now().isoformat(timespec="seconds"),
        "zoorepro_git_commit": provenance.git_commit(),
        "recipe": recipe.name, "recipe_sha256": recipe_sha,   # ingest reads recipe/<name>/
        "params": cfg.to_dict(), "params_source": params_source or None,
        "data_dir": cfg.data_dir, "max_images": cfg.max_images,
        "batch_sizes": batch_sizes, "accuracy_batch_size": acc_bs,
        "soc_version": cfg.soc_version or None, "device_id": cfg.device_id,
        "bins": "included" if bins else "made on the NPU host",
        **manifest,
        "label_file_sha256": data.sha256_file(cfg.label_file),
        "export": records.ExportRecord(   # read back by ingest with the same class
            onnx=onnx_rel(recipe), onnx_sha256=data.sha256_file(onnx_dst),
            weights=cfg.weights if weights_ok else None,
            weights_sha256=data.sha256_file(cfg.weights) if weights_ok else None,
            opset=cfg.opset, aipp=a.to_dict(),
            aipp_config_sha256=data.sha256_file(cfg.aipp_config)).to_json(),
        "atc_commands": [atc_line(recipe, bs, cfg.atc_extra_args) for bs in batch_sizes],
        "device_note": "DEVICE_ID may list several NPUs (e.g. 0,1): the accuracy run then "
                       "splits the images over them (--divide_input); the sweep uses the first",
        "accuracy_command": accuracy_line(recipe, acc_bs, cfg.outfmt),
        "perf_commands": [perf_line(recipe, bs) for bs in batch_sizes],
    }
    atomic_write_json(out / MANIFEST, manifest)
    script = atomic_write_text(out / SCRIPT, render_script(
        cfg, batch_sizes, acc_bs, manifest.get("images"), bins, params_source))
    os.chmod(script, 0o755)
    return script
