"""What ``zoorepro ingest`` records about the NPU host, each clue against the others: the
``npu-smi info`` text (text with a chip table, or the one line ``run_on_npu.sh`` saves when
npu-smi is missing) and the chip: ``--soc-version`` and the kit's ``soc_version`` checked by
:class:`zoorepro.config.RunConfig`'s own rule, then against the chip npu-smi names for the
device that ran; a disagreement is an :class:`IngestError` or a note, never a silent choice.
And the kit it ran: its copy of the recipe, checked against ``kit.json`` (:func:`kit_recipe`).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from zoorepro import config, recipebook
from zoorepro.ascend.atc import parse_npu_smi
from zoorepro.errors import ConfigError, IngestError, RecipeError
from zoorepro.ascend.ingestchecks import MAX_TEXT_BYTES
from zoorepro.names import name_problem

NPU_SMI_MISSING = "npu-smi not found on PATH"     # what run_on_npu.sh saves without npu-smi
# NUL, other control characters (tab, newlines and ESC aside) and undecodable bytes
_NOT_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f\ufffd]")
SMI_FIX = "give the npu-smi.txt run_on_npu.sh saved, or leave --npu-smi out"


def npu_smi_chips(text: str | None, where: str) -> tuple[list[dict], str | None]:
    """(chips, note) from ``npu-smi info`` text (None: not given); text that is not
    npu-smi's output is refused, naming ``where`` and never quoting it."""
    if text is None:
        return [], None
    if len(text) > MAX_TEXT_BYTES:
        raise IngestError(f"{where}: {len(text):,} characters is no npu-smi info text (at "
                          f"most {MAX_TEXT_BYTES:,}); {SMI_FIX}")
    if _NOT_TEXT.search(text):
        raise IngestError(f"{where}: not text (it holds NUL, control or non-UTF-8 bytes), so "
                          f"not the output of 'npu-smi info' (its content is not shown); "
                          f"{SMI_FIX}")
    if text.strip() == NPU_SMI_MISSING:
        return [], (f"npu-smi was not on the NPU host's PATH ({where} says "
                    f"'{NPU_SMI_MISSING}', as run_on_npu.sh saves it): no chip list")
    chips = parse_npu_smi(text)
    if not chips:
        raise IngestError(f"{where}: no chip table (rows such as '| 0  310P3  | OK  |' as "
                          f"'npu-smi info' prints them), so not the output of npu-smi info; "
                          f"{SMI_FIX}")
    return chips, None


def check_soc(soc, what: str) -> None:
    """``soc`` by the rule :class:`zoorepro.config.RunConfig` holds ``soc_version`` to."""
    if soc is None:
        return
    try:
        config.from_mapping({"soc_version": soc}, check_paths=False)
    except ConfigError as exc:
        raise IngestError(f"{what}: " + str(exc).split("soc_version: ", 1)[-1].strip()
                          .replace("leave it empty to read it from npu-smi",
                                   "leave it out to take the chip from --npu-smi")) from None


def _chip(soc: str) -> str:
    return re.sub(r"(?i)^ascend", "", soc).upper()


def _named(soc: str) -> str:
    return "Ascend" + re.sub(r"(?i)^ascend", "", soc)


def chip_for(chips: list, device_id: int | None, given: str | None, kit_soc: str | None,
             where: str) -> tuple[str | None, list[str]]:
    """(the soc_version recorded, notes): the chip npu-smi lists for ``device_id`` (else its
    first), which ``--soc-version`` (``given``) must name too; the kit's is noted if it
    differs (SOC_VERSION may be set on the NPU host)."""
    check_soc(given, "--soc-version")
    check_soc(kit_soc, "kit.json soc_version")
    notes = []
    pick = next((c for c in chips if c["npu"] == device_id), chips[0] if chips else None)
    if chips and pick["npu"] != device_id and len({_chip(c["soc_version"]) for c in chips}) > 1:
        notes.append(f"npu-smi info ({where}) lists no NPU {device_id} and chips of several "
                     f"kinds: the chip recorded is NPU {pick['npu']}'s, {pick['soc_version']}")
    detected = pick["soc_version"] if pick else None
    if given and detected and _chip(given) != _chip(detected):
        raise IngestError(f"--soc-version {given}, but npu-smi info ({where}) names "
                          f"{_named(detected)} for NPU {pick['npu']}: which chip ran the model "
                          f"cannot be told; give the chip of the host that ran it as "
                          f"--soc-version (or leave it out to take npu-smi's), or that host's "
                          f"npu-smi.txt")
    soc = detected or given or kit_soc or None
    soc = _named(soc) if soc else None
    if kit_soc and soc and _chip(kit_soc) != _chip(soc):
        notes.append(f"the kit was made for {_named(kit_soc)} (kit.json soc_version) but the "
                     f"results name {soc} (SOC_VERSION set on the NPU host?): {soc} is recorded")
    return soc, notes


def kit_recipe(man: dict, path: str | os.PathLike | None) -> "recipebook.Recipe | None":
    """The recipe the kit carried (``recipe/<name>/`` beside ``kit.json``, copied there by
    run_on_npu.sh), read and checked against the kit.json's ``recipe_sha256``: the recipe the
    kit was made with, or an error naming the file and the fix.  None for a kit.json that
    names no recipe (a kit from before recipes were data)."""
    name, sha = man.get("recipe"), man.get("recipe_sha256")
    if name is None and sha is None:
        return None
    if name is None or sha is None or name_problem(name, "recipe"):
        raise IngestError(f"{path}: names its recipe only in part (recipe {name!r}, "
                          f"recipe_sha256 {sha!r}); give the kit.json of the kit that was run")
    folder = Path(path).resolve().parent / "recipe" / name
    yaml_path = folder / recipebook.RECIPE_FILE
    if not yaml_path.is_file():
        raise IngestError(f"{yaml_path}: the kit's recipe is missing (kit.json names recipe "
                          f"{name}); copy the recipe/ folder run_on_npu.sh put beside kit.json "
                          f"(npu_results/recipe/) with it")
    try:
        recipe = recipebook.load(str(folder))
    except RecipeError as exc:
        raise IngestError(f"{yaml_path}: the kit's recipe cannot be read ({exc}); copy the "
                          f"recipe/ folder of the kit again") from None
    if recipe.sha256 != sha:
        raise IngestError(f"{yaml_path}: not the recipe the kit was made with (its sha256 "
                          f"{recipe.sha256[:12]}... differs from kit.json's recipe_sha256 "
                          f"{sha[:12]}...); copy the recipe/ folder run_on_npu.sh wrote "
                          f"beside kit.json again")
    return recipe


def ingest_recipe(man: dict, path, given: str | None) -> "recipebook.Recipe | None":
    """The recipe of ingested results: the kit's (:func:`kit_recipe`), or the one named with
    ``--recipe`` for results made without a kit; both given and differing is an error (one
    figure, two recipes to judge it by).  None when neither names one: the report then
    compares with no published figure."""
    kept = kit_recipe(man, path)
    if not given:
        return kept
    try:
        named = recipebook.load(given)
    except RecipeError as exc:
        raise IngestError(f"--recipe {given}: {exc}") from None
    if kept is not None and (kept.name, kept.sha256) != (named.name, named.sha256):
        raise IngestError(f"--recipe {given}: the kit {path} was made with recipe {kept.name} "
                          f"(recipe.yaml sha256 {kept.sha256[:12]}...), not this one "
                          f"({named.name}, {named.sha256[:12]}...); leave --recipe out to use "
                          f"the kit's")
    return named
