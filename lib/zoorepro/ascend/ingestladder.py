"""Row f of the precision ladder ("Where accuracy goes"): the NPU's ingested results compared
image by image with row b of a local run of the same recipe (``zoorepro ingest ...
--ladder-from RUN_DIR``).

Rows a-e are measured on a CPU by a local run (:mod:`zoorepro.run.precision`); an NPU host only
gives its outputs.  :func:`prepare` checks the local run against the ingested results before
anything is written (the recipe and its sha256, the weights and AIPP config hashes of the kit's
export record, the image names, the labels, row b's result folder against the ladder's own
per-image table) and computes row f; :func:`write` puts the ladder record, rows a-e copied from
the local run unchanged and row f added, and its per-image CSV into the ingested run.  Every
disagreement is an :class:`IngestError` naming both sides and the fix.
"""
from __future__ import annotations

import csv
import dataclasses
import shlex
from pathlib import Path

import numpy as np

from zoorepro.ascend.atc import precision_of
from zoorepro.errors import IngestError, ZooreproError
from zoorepro.files import atomic_write_text
from zoorepro.outputs import read_prediction
from zoorepro.recipe import ladder as ladder_mod
from zoorepro.run import records
from zoorepro.run.folder import Run
from zoorepro.run.precision import LADDER_CSV, NAMES, STEPS, result_logits

OPT = "--ladder-from"
FRESH = "measure the ladder again in a local run (zoorepro run with ladder: true)"


@dataclasses.dataclass
class Prepared:
    """What :func:`write` puts into the ingested run: the ladder record and its CSV."""
    record: records.LadderRecord
    csv_text: str
    quantize: records.QuantizeRecord | None


def _open_local(path) -> Run:
    root = Path(path).resolve()
    if not root.is_dir():
        raise IngestError(f"{OPT} {path}: folder not found; give the folder of a local "
                          f"'zoorepro run' of the same recipe whose ladder was measured")
    try:
        run = Run.open(root)
    except ZooreproError as exc:
        raise IngestError(f"{OPT} {path}: {exc}") from None
    if run.origin != "run":
        raise IngestError(f"{OPT} {root}: results {run.origin} there, not a local run; rows "
                          f"a-e are measured by 'zoorepro run': give that run's folder")
    return run


def _read(run: Run, kind, why: str):
    """The local run's record ``kind``; missing or damaged is an error saying ``why``."""
    path = run.record_path(kind)
    if not run.has(kind):
        raise IngestError(f"{OPT} {run.root}: no {path.relative_to(run.root)} ({why}); give "
                          f"the folder of a local run that got past that stage, or {FRESH}")
    try:
        return run.read(kind)
    except ZooreproError as exc:
        raise IngestError(f"{OPT} {run.root}: {exc}") from None


def check_recipe(local: Run, recipe) -> None:
    """The ingested results' recipe (the kit's, or ``--recipe``) is the local run's."""
    if recipe is None:
        raise IngestError(f"{OPT} {local.root}: the ingested results name no recipe (no "
                          f"kit.json naming one and no --recipe), so the local run's cannot be "
                          f"checked against them; give --manifest kit.json or --recipe NAME")
    kept = _read(local, records.RecipeRecord, "the recipe it followed")
    if kept.name != recipe.name:
        raise IngestError(f"{OPT} {local.root}: that run followed recipe {kept.name}, the "
                          f"ingested results recipe {recipe.name}; give a local run of "
                          f"{recipe.name} (or the kit of {kept.name})")
    if kept.sha256 and recipe.sha256 and kept.sha256 != recipe.sha256:
        raise IngestError(f"{OPT} {local.root}: that run's recipe {kept.name} has recipe.yaml "
                          f"sha256 {kept.sha256[:12]}..., the ingested results' "
                          f"{recipe.sha256[:12]}...; the recipe changed between the two: "
                          f"{FRESH} with the kit's recipe, or make a new kit")


def check_export(local: Run, kit_export: dict | None, manifest) -> list[str]:
    """The kit's weights and AIPP config hashes are the local run's; notes on what the kit
    does not record."""
    if not kit_export:
        return ["the weights and the AIPP config were not cross-checked with the local run "
                "(no kit.json export record)"]
    exp = _read(local, records.ExportRecord, "the weights and AIPP config it used")
    notes = []
    for field, what in (("weights_sha256", "weights"), ("aipp_config_sha256", "AIPP config")):
        theirs, mine = kit_export.get(field), getattr(exp, field)
        if theirs is None:
            notes.append(f"the kit records no {what} sha256: the local run's {what} were not "
                         f"cross-checked")
        elif mine != theirs:
            raise IngestError(
                f"{OPT} {local.root}: records/export.json has {what} sha256 "
                f"{str(mine)[:12]}..., the kit {manifest} {theirs[:12]}...; rows a-e and row f "
                f"would be of different models: give a local run made with the kit's {what} "
                f"(or ingest the kit made from that run's params)")
    return notes


def check_keys(local: Run, npu_keys: list, kit: dict) -> list:
    """The NPU's image names, all among the local run's, in the NPU's order."""
    ds = _read(local, records.DatasetRecord, "the images it scored")
    have = set(ds.keys)
    out = [k for k in npu_keys if k not in have]
    if out:
        raise IngestError(
            f"{OPT} {local.root}: {len(out)} of the NPU's {len(npu_keys)} images are not among "
            f"that run's {len(ds.keys)} (e.g. {', '.join(out[:5])}); row f is compared with "
            f"row b image by image: give a local run of the same images (the kit's data_dir, "
            f"max_images at least the kit's)")
    if (set(npu_keys) == have and kit.get("image_list_sha256") and ds.image_list_sha256
            and kit["image_list_sha256"] != ds.image_list_sha256):
        raise IngestError(
            f"{OPT} {local.root}: the same {len(have)} image names, but the image list sha256 "
            f"(names and sizes) is {ds.image_list_sha256[:12]}... there and "
            f"{kit['image_list_sha256'][:12]}... in the kit: files of the same names differ; "
            f"give a local run of the kit's images")
    return list(npu_keys)


def check_ladder(local: Run) -> records.LadderRecord:
    rec = _read(local, records.LadderRecord, "its precision ladder, rows a-e")
    where = local.record_path(records.LadderRecord)
    if rec.status != "ok":
        raise IngestError(f"{where}: the ladder was not measured ({rec.status}: {rec.reason}); "
                          f"{FRESH}")
    base = rec.row(rec.base)
    if rec.base != "b" or base is None or base.status != "ok":
        raise IngestError(f"{where}: row b (the recipe's fp32 path, which row f is compared "
                          f"with) is " + ("missing" if base is None or rec.base != "b" else
                                          f"not run ({base.reason})") + f"; {FRESH}")
    if not base.source:
        raise IngestError(f"{where}: row b names no result folder (it was computed during "
                          f"the ladder, not read from one), so its logits cannot be read back "
                          f"for row f; {FRESH} with an fp32 CPU backend (onnxruntime)")
    if rec.row("f") is not None and rec.row("f").status == "ok":   # "not run": none ran there
        raise IngestError(f"{where}: already holds a row f; give the local run's folder, not an "
                          f"ingested one's copy")
    return rec


def row_b_folder(local: Run, source: str) -> tuple[Path, list]:
    """Row b's result folder: where the record says, else (the run folder was moved) the same
    ``results/<backend>/<folder>`` inside ``local``."""
    p = Path(source)
    if p.is_dir():
        return p, []
    moved = local.root / "results" / p.parent.name / p.name
    if p.parent.parent.name == "results" and moved.is_dir():
        return moved, [f"row b's logits read from {moved} (the ladder record names {p}: the "
                       f"run folder was moved)"]
    raise IngestError(f"{local.record_path(records.LadderRecord)}: row b's result folder {p} "
                      f"is gone; copy the whole run folder (results/ included), or {FRESH}")


def read_local_csv(local: Run, rec: records.LadderRecord, keys: list) -> tuple[dict, dict]:
    """({key: label}, {step: top-1 array over ``keys``}) from the local ladder's CSV."""
    path = local.root / (rec.csv or LADDER_CSV)
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError) as exc:
        raise IngestError(f"{path}: the ladder's per-image table cannot be read "
                          f"({getattr(exc, 'strerror', None) or exc}); copy the whole run "
                          f"folder, or {FRESH}") from None
    head = rows[0] if rows else []
    steps = [h[5:] for h in head if h.startswith("top1_")]
    if head[:2] != ["image", "label"] or "b" not in steps:
        raise IngestError(f"{path}: not a ladder table (its header is "
                          f"{','.join(head[:6]) or 'empty'}); copy the whole run folder, or "
                          f"{FRESH}")
    col = {s: head.index(f"top1_{s}") for s in steps}
    by_key = {r[0]: r for r in rows[1:] if len(r) == len(head)}
    missing = [k for k in keys if k not in by_key]
    if missing:
        raise IngestError(f"{path}: {len(missing)} of the NPU's images are not in the ladder's "
                          f"table (e.g. {', '.join(missing[:5])}): the local run had no label "
                          f"for them, or the table is damaged; give a local run with the "
                          f"kit's val_label.txt, or {FRESH}")
    try:
        labels = {k: int(by_key[k][1]) for k in keys}
        top1 = {s: np.array([ladder_mod.parse_class(by_key[k][c]) for k in keys])
                for s, c in col.items()}
    except ValueError:
        raise IngestError(f"{path}: a label or class that is not a number; copy the whole run "
                          f"folder, or {FRESH}") from None
    return labels, top1


def _how(soc: str | None, man: dict) -> str:
    chip = soc or "the NPU (chip not recorded)"
    cmds = man.get("atc_commands") or []
    if cmds:
        precision, mode = precision_of(shlex.split(cmds[0]))
        said = f"the kit's ATC command: precision {precision}, {mode}"
    else:
        said = "no kit's ATC command to read them from; ATC's default is force_fp16"
    return (f"ais_bench on {chip} running the .om model ATC built with the recipe's options "
            f"({said}); its outputs read from the ingested result folder")


def prepare(ladder_from, *, recipe, man: dict, manifest, pred, labels: dict, labels_path,
            result_dir, soc: str | None, engine: str, sweep: list) -> Prepared:
    """Every check of ``ladder_from`` against the ingested results, and row f computed:
    nothing is written here (:func:`write` does)."""
    local = _open_local(ladder_from)
    check_recipe(local, recipe)
    notes = check_export(local, man.get("export"), manifest)
    rec = check_ladder(local)
    keys = [k for k in pred.keys if k in labels]
    if len(keys) < len(pred.keys):
        notes.append(f"row f: {len(pred.keys) - len(keys)} NPU output(s) without a label in "
                     f"{labels_path} are left out")
    if not keys:
        raise IngestError(f"{result_dir}: no NPU output has a label in {labels_path}, so row f "
                          f"has no image to compare; give the kit's val_label.txt")
    keys = check_keys(local, keys, man)
    their_labels, top1 = read_local_csv(local, rec, keys)
    differ = [k for k in keys if their_labels[k] != labels[k]]
    if differ:
        k = differ[0]
        raise IngestError(f"{OPT} {local.root}: {len(differ)} image(s) have another label there "
                          f"than in {labels_path} (e.g. {k}: {their_labels[k]} there, "
                          f"{labels[k]} here); give the label file both were made with")
    base = rec.row("b")
    folder, moved = row_b_folder(local, base.source)
    notes += moved
    try:
        base_logits = result_logits(folder, keys)
    except ZooreproError as exc:
        raise IngestError(f"{OPT} {local.root}: row b: {exc}") from None
    changed = int((ladder_mod.top1(base_logits) != top1["b"]).sum())
    if changed:
        raise IngestError(f"{folder}: {changed} of the {len(keys)} images have another top-1 "
                          f"there than in {local.root / (rec.csv or LADDER_CSV)}'s top1_b: row "
                          f"b's result folder changed after the ladder was measured; {FRESH}")
    npu = np.stack([read_prediction(pred.paths[k]) for k in keys])
    y = np.array([labels[k] for k in keys], dtype=np.int64)
    try:
        metrics = ladder_mod.compare(npu, base_logits, y, keys)
    except ZooreproError as exc:
        raise IngestError(f"{result_dir}: row f: {exc}") from None
    point = next((s for s in sweep if s["batch_size"] == rec.batch_size), None)
    row_f = records.LadderRow(
        "f", NAMES["f"], _how(soc, man), "ok", engine=engine, source=str(result_dir), **metrics,
        throughput=point["throughput"] if point else None,
        throughput_batch=rec.batch_size if point else None,
        throughput_definition=point["throughput_definition"] if point else None,
        throughput_validity=point.get("validity") if point else None)
    if point is None:
        notes.append(f"row f: no img/s (the ingested sweep has no batch size {rec.batch_size}, "
                     f"the ladder's)")
    if len(keys) != rec.images:
        notes.append(f"row f's Acc@1 is on its {len(keys)} images, rows a–e's on "
                     f"{rec.images}: its Δ Acc@1, agreement and changed counts are image by "
                     f"image with row b on its {len(keys)}")
    notes.insert(0, f"rows a–e: measured in run {local.root.name} on {rec.images} images "
                    f"(this run's {len(keys)} among them), copied unchanged; row f: the NPU's "
                    f"results ingested here, compared with that run's row b image by image")
    top1["f"] = ladder_mod.top1(npu)
    csv_text = ladder_mod.ladder_csv(keys, y, top1, base="b")
    # the local run's own row f says no NPU ran there: the ingested NPU replaces it
    rows = sorted([*(r for r in rec.rows if r.step != "f"), row_f],
                  key=lambda r: STEPS.index(r.step))
    new = dataclasses.replace(rec, rows=rows, csv=LADDER_CSV, notes=[*rec.notes, *notes])
    new.check(writing=True)
    quant = (_read(local, records.QuantizeRecord, "row e's int8 model")
             if local.has(records.QuantizeRecord) else None)
    return Prepared(new, csv_text, quant)


def write(run: Run, prepared: Prepared | None) -> None:
    """The ladder record and its CSV (and the local run's int8 record, row e's) in ``run``."""
    if prepared is None:
        return
    atomic_write_text(run.root / LADDER_CSV, prepared.csv_text)
    if prepared.quantize is not None:
        run.write(prepared.quantize)
    run.write(prepared.record)


__all__ = ["OPT", "Prepared", "prepare", "write"]
