"""The recipe in words: what each notebook says about the step its recipe takes, and the
report's "Recipe" section -- all read from the recipe the run kept, none written here.

The notebooks are documents for every recipe: their markdown says what a step is; a cell
shows :func:`step_markdown` for the run's own recipe (its numbers, its upstream command).
"""
from __future__ import annotations

from zoorepro.report.core import RunData, render

DECODERS = {"pil": "PIL `open().convert('RGB')`",
            "opencv": "OpenCV `cv2.imread` (BGR, EXIF orientation applied) then RGB"}
LAYOUTS = {"flat": "the JPEGs in one folder", "class_folders": "`val/<class>/<image>` folders"}
KINDS = {"modelzoo": "an Ascend ModelZoo recipe", "own": "zoorepro's own recipe (no zoo entry)"}


def _code(text: str) -> str:
    return f"\n\n```\n{text}\n```\n" if text else ""


def title_markdown(recipe) -> str:
    """The report's title and its first line."""
    if recipe is None:
        return ("# Reproducibility report\nThe run kept no recipe; every figure below comes "
                "from this run's records and names what produced it.")
    return (f"# {recipe.title} on ImageNet — reproducibility report\nRecipe: `{recipe.source}`"
            f", rebuilt by zoorepro. Every figure below comes from this run's records and "
            f"names what produced it.")


def step_markdown(recipe, step: str) -> str:
    """What the recipe does in ``step`` (preprocess, export, infer, evaluate), in markdown."""
    if recipe is None:
        return "The run kept no recipe."
    r, pp, m = recipe, recipe.preprocess, recipe.model
    who = f"**{r.title}** ({KINDS.get(r.kind, r.kind)}, `{r.name}`)"
    script = r.scripts.get({"export": "pth2onnx"}.get(step, step), "")
    by = f" with `{script}`" if script else ""
    if step == "preprocess":
        cast = (f"; upstream casts to {pp.dtype}, which on x86 writes the same bytes"
                if pp.dtype != "uint8" else "")
        return (f"This run's recipe: {who}. Its preprocessing{by}: {LAYOUTS[pp.layout]}, "
                f"decoded with {DECODERS[pp.decoder]}; the shorter side to {pp.resize} "
                f"({pp.interpolation}; the long side `int({pp.resize} * long / short)`, an image "
                f"whose shorter side already is {pp.resize} untouched); the centre "
                f"{pp.crop}×{pp.crop} cropped; the HWC uint8 pixels written as `<image>.bin` "
                f"({pp.bin_bytes:,} bytes){cast}." + _code(pp.command))
    if step == "export":
        batch = ("dynamic batch" if m.batch == "dynamic"
                 else f"static batch {m.export_batch}, which ATC's --input_shape re-fixes")
        return (f"This run's recipe: {who}. It exports `{m.builder}` to ONNX{by} (opset "
                f"{m.opset}, input `{m.input}`, output `{m.output}`, {batch}), then ATC "
                f"compiles one model per batch size with AIPP from `{r.aipp}` in front "
                f"(its command as the recipe writes it):" + (_code(r.atc.command) or
                                                              " zoorepro's own, below."))
    if step == "infer":
        lines = "\n".join(x for x in (r.ais_bench.accuracy_command,
                                      r.ais_bench.perf_command) if x)
        return (f"This run's recipe: {who}. Accuracy at batch size "
                f"{r.ais_bench.accuracy_batch_size}, pure-inference throughput with --loop "
                f"{r.ais_bench.loop}" + (" (the recipe's commands):" + _code(lines) if lines
                                         else " (the recipe gives no ais_bench command)."))
    if step == "evaluate":
        return (f"This run's recipe: {who}. It scores{by} into `{r.scoring.result_file}`"
                + (":" + _code(r.scoring.command) if r.scoring.command else "."))
    raise ValueError(f"no such step: {step}")


def recipe_section(data: RunData) -> str:
    """The report's "Recipe" section: what the run followed, its source, and its file."""
    r = data.recipe
    if r is None:
        return render("report/recipe_section.html.j2", recipe=None, rows=[], text="")
    rows = [["recipe", f"{r.name}: {r.title} ({KINDS.get(r.kind, r.kind)})"],
            ["source", r.source], ["revision", r.revision],
            ["recipe.yaml sha256", r.sha256], ["kept in the run folder", r.folder],
            ["published figures", r.published.source or "none: no NPU has run this recipe"],
            ["reference", f"{r.reference.label}: Acc@1 {r.reference.top1}"
                          + (f", Acc@5 {r.reference.top5}" if r.reference.top5 is not None
                             else " (no Acc@5 published)") + f" ({r.reference.source})"]]
    rows += [["note", n] for n in r.notes]
    text = (r.path.read_text(encoding="utf-8") if r.path.is_file() else "")
    return render("report/recipe_section.html.j2", recipe=r, rows=rows, text=text)
