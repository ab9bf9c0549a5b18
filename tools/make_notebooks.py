"""Regenerate notebooks/*.ipynb: documents that explain each step of the recipe, call the
library and show tables (pandas) and figures (matplotlib); committed without outputs.

    python tools/make_notebooks.py

Each ``parameters`` cell holds only the keys its notebook uses (``stages.notebook_keys``),
written ``key: type = value  # meaning`` so that ``papermill --help-notebook`` explains them.
"""
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from zoorepro.config import notebook_parameters_source
from zoorepro.run.stages import NOTEBOOKS, notebook_keys

ROUTES = """
**How to run it.** `zoorepro run params/demo.yaml` runs every notebook in order into a new
run folder. With papermill's own CLI, pass the same folder to each notebook:
`papermill notebooks/01_preprocess.ipynb out.ipynb -f params/demo.yaml -p run_dir reports/my-run`
(then `02_export`, ... with `-p run_dir reports/my-run`, and `zoorepro render reports/my-run`).
Opened alone in JupyterLab, a notebook continues the newest unfinished run with the same
parameters, or starts a new one and runs the stages before it first; it says which.
Relative paths resolve against the working directory (or its `notebooks/`) for every key,
given or default, and the notebook prints the paths it used. Parameters given beside an
existing `run_dir` must be that run's own (the notebook stops and names the others), and a
run another process is executing (`zoorepro run`) is refused until that process ends."""


def setup(stage: str | None) -> str:
    return ("%matplotlib inline\n"
            "from IPython.display import HTML, Markdown, display\n"
            "import zoorepro\n"
            "import zoorepro.scale.shards   # not 'from ... import shards': a parameter's name\n"
            "from zoorepro import report, runner, stages, tables\n\n"
            f"run = runner.open_from_notebook(globals(), stage={stage!r})\n"
            "executor = zoorepro.scale.shards.executor(run)   # Dask tasks if the run has shards\n"
            "print('run folder:', run.root)")


def recipe_says(step: str) -> str:
    """The cell that shows what the run's own recipe does in ``step`` (from its recipe file)."""
    return f"display(Markdown(report.step_markdown(run.recipe, {step!r})))"


def stage(name: str) -> str:
    """The one call that runs a stage (and the stages before it whose records are missing);
    a stage whose record is there is kept, never run again."""
    return (f"ran = stages.ensure(run, {name!r}, executor)\n"
            "if ran[:-1]:\n"
            "    print('ran first, their records were missing:', ', '.join(ran[:-1]))\n"
            "if not ran:\n"
            f"    print('{name}: its record is there; kept, not run again')\n")


class Markdown(str):
    """A markdown cell's text; every other entry of a notebook's body is a code cell."""


def md(text: str) -> Markdown:
    return Markdown(text)


BODY = {
    "01_preprocess.ipynb": ("preprocess", [
        "# 1 · Preprocess: JPEG → raw `.bin` tensors\n"
        "A recipe's preprocess script turns each validation JPEG into the bytes the NPU model "
        "reads: decode to RGB, resize the shorter side, crop the centre, and write the HWC "
        "uint8 pixels as `<image>.bin`. No normalisation here: the model does it (AIPP, next "
        "notebook). The numbers and the decoder are the recipe's (its `recipe.yaml`), shown "
        "below with the command the recipe runs on the NPU host.\n\n"
        "zoorepro produces the same bytes (tested against each recipe's own script, image by "
        "image), in parallel, natural order, never overwriting a finished `.bin`; an image "
        "that cannot be read is named with the reason and the fix, and the run stops before "
        "inference." + ROUTES,
        recipe_says("preprocess"),
        stage("preprocess") + "display(HTML(report.preprocess_section(report.load(run))))",
        md("## What the model receives\nThe first image as a JPEG and as its `.bin`, decoded: "
        "the shorter side scaled, then the centre crop."),
        "tables.bin_beside_jpeg(run, 0)",
        md("## The images of this run\nOne row per image, in the order ais_bench reads them "
        "(natural sort). `zoorepro.load_run(run.root).images` gives the same table later."),
        "tables.load_run(run).images.head(10)",
    ]),
    "02_export.ipynb": ("export", [
        md("# 2 · Export: `.pth` → ONNX, and ATC with AIPP\n"
        "A recipe exports the framework's network to ONNX, then compiles one static-batch "
        "model per batch size with Huawei's ATC, which inserts the normalisation (and, for "
        "some recipes, a crop) described by its AIPP config in front of the network (AIPP). "
        "The recipe's names, batch axis, opset and ATC line:"),
        recipe_says("export"),
        md("Without ATC (no CANN here), zoorepro builds the portable equivalent: the same AIPP "
        "config prepended to the ONNX graph as nodes, taking the `.bin` bytes (uint8 NHWC) "
        "directly. We check that the export matches PyTorch on real images, and that AIPP "
        "equals the framework's normalisation."),
        stage("export") +
        "display(HTML(report.export_section(report.load(run))))",
        md("## ATC\nWhere `atc` is on PATH (CANN's `set_env.sh` sourced) the recipe's commands "
        "run and the `.om` models land in the run's `model/`; otherwise the exact commands are "
        "shown and nothing pretends to have run."),
        "display(HTML(report.atc_section(report.load(run))))",
    ]),
    "03_infer.ipynb": ("infer", [
        md("# 3 · Inference and the batch-size sweep\n"
        "On the NPU host a recipe runs ais_bench twice: once over the `.bin` folder for "
        "accuracy, once in pure-inference mode per batch size for throughput. This run's "
        "recipe:"),
        recipe_says("infer"),
        md("Each backend here reads the folder the way ais_bench does (natural order, the last "
        "batch padded with its first file, padding not saved) and writes ais_bench's layout "
        "(`result_bs<N>/<image>_0.txt`, `result_bs<N>_summary.json`). Throughput uses "
        "ais_bench's formula, 1000 × batch / mean compute ms; end-to-end figures add reading, "
        "batching and writing."),
        stage("infer") + "data = report.load(run)\n"
        "display(HTML(report.e2e_table(data)))",
        md("## Throughput by batch size\nA matplotlib figure: the recipe's published NPU "
        "series are dashed; red crosses mark points whose timing spread was too large to "
        "trust."),
        "tables.throughput_figure(run)",
        md("## The raw sweep\nEvery timed point (the same table as `records/bench.csv`)."),
        "sweep = tables.load_run(run).bench\n"
        "sweep[['backend', 'batch_size', 'throughput', 'e2e_throughput', 'median_ms', "
        "'p90_ms', 'iterations', 'validity']]",
    ]),
    "04_evaluate.ipynb": ("evaluate", [
        md("# 4 · Evaluate: top-1 … top-5\n"
        "A recipe's postprocess script reads the first line of each result file, ranks the "
        "scores and counts a hit when the label (0-based; +1 for 1001-class models) is among "
        "the first k. This run's recipe:"),
        recipe_says("evaluate"),
        md("zoorepro scores the same way (ties go to the lower class index, so the result is "
        "deterministic), refuses non-finite scores and outputs of images that are not this "
        "run's, and writes the result file in the recipe's format."),
        stage("evaluate") + "data = report.load(run)\n"
        "display(HTML(report.accuracy_table(data)))",
        md("## Per image\nOne row per image and backend: the label, the five best classes and "
        "whether the label is first or among them (`results/<backend>/predictions.csv`)."),
        "preds = tables.load_run(run).predictions\npreds.head(10)",
        md("## Where the headline backend is wrong"),
        "wrong = preds[(preds['backend'] == preds['backend'].iloc[0]) "
        "& (preds['correct@1'] == 0)]\n"
        "wrong[['image', 'label', 'top1', 'top2', 'top3', 'correct@5']]",
    ]),
    "05_ladder.ipynb": ("ladder", [
        md("# 5 · Where accuracy goes: the precision ladder\n"
        "The recipe publishes its accuracy on the NPU; the framework publishes the same "
        "weights' fp32 accuracy; they differ. This notebook measures each step between the "
        "two on this run's images, with the same weights: (a) the framework's own float "
        "pipeline, (b) the recipe's uint8 `.bin` + AIPP in fp32 (the result scored in step 4), "
        "(c) AIPP's output rounded to fp16, (d) the network in fp16 as ATC's default "
        "`force_fp16` compiles it, (e) int8 (ONNX Runtime QDQ static quantization, calibrated "
        "on images named below), and (f) the NPU itself when its results are ingested. Every "
        "row is compared with row b image by image."),
        stage("ladder") + "data = report.load(run)\n"
        "display(HTML(report.ladder_section(data)))",
        md("## Per image\nEach image's top-1 class on every row, and whether it differs from "
        "row b (`ladder.csv` in the run folder)."),
        "per_image = tables.ladder(run)\nper_image[per_image.filter(like='differs').any(axis=1)]"
        ".head(20)",
        md("## On other images\nThe same ladder (this run's recipe, weights and settings) on "
        "another folder of JPEGs with its `val_label.txt`: set the two paths and rerun this "
        "cell. It makes a new run folder beside this one (a finished run is never changed)."),
        "other_images = ''   # e.g. '/data/imagenet/val'\n"
        "other_labels = ''   # its val_label.txt\n"
        "if other_images:\n"
        "    other = stages.ladder_on_images(run, other_images, other_labels, max_images=500)\n"
        "    print('ladder on other images:', other.root)\n"
        "    display(HTML(report.ladder_section(report.load(other))))",
    ]),
    "06_report.ipynb": (None, [
        md("*A zoorepro reproducibility report: one run of one recipe, what it measured against "
        "what the recipe publishes. Its title and every figure below come from the run's "
        "records.*"),
        "stages.ensure_for_report(run, executor)\ndata = report.load(run)\n"
        "display(Markdown(report.title_markdown(data.recipe)))\n"
        "display(HTML(report.verdict(data)))",
        md("## Accuracy\nTop-k of every backend beside the recipe's published figures and "
        "the framework's; a sample of predictions with class names."),
        "display(HTML(report.accuracy_table(data)))\ndisplay(HTML(report.predictions_sample(data)))",
        md("## Throughput by batch size\nThe sweep of every backend, with the recipe's NPU "
        "series for reference; the tables give each point's timing and validity."),
        "display(tables.throughput_figure(run), "
        "metadata={'image/png': {'alt': 'Throughput by batch size'}})",
        "display(HTML(report.throughput_table(data)))\ndisplay(HTML(report.e2e_table(data)))",
        md("### Against the recipe's published throughput\nOur compute img/s beside the recipe's "
        "NPU figures at each of its batch sizes, with the ratio."),
        "display(HTML(report.recipe_ratio_table(data)))",
        md("## Where accuracy goes\nThe precision ladder: each step from the framework's "
        "float pipeline to the NPU on this run's images, compared with the recipe's fp32 "
        "path image by image, with what produced each row."),
        "display(HTML(report.ladder_section(data)))",
        md("## Ascend NPU path\nWhat ran on an NPU (ATC, ais_bench), or why it did not."),
        "display(HTML(report.npu_section(data)))",
        md("## Warnings and unusual inputs\nImages converted or decoded by content, stray files, "
        "notes from reading the results."),
        "display(HTML(report.warnings_section(data)))",
        md("## Cross-backend parity\nHow often backends agree on each image's top-1 class, and "
        "how far their scores differ."),
        "display(HTML(report.parity_section(data)))",
        md("## Export parity and AIPP check\nONNX against PyTorch on real images; AIPP against "
        "the framework's normalisation."),
        "display(HTML(report.export_section(data)))",
        md("## Preprocessing\nWhat the first step wrote and reused."),
        "display(HTML(report.preprocess_section(data)))",
        md("## Recipe\nThe recipe this run followed, where it comes from, and its file as the "
        "run kept it."),
        "display(HTML(report.recipe_section(data)))",
        md("## Environment\nThe machine, the packages and their versions."),
        "display(HTML(report.environment_section(data)))",
        md("## Provenance\nHashes of the weights, models, labels and images, and the parameters "
        "as run."),
        "display(HTML(report.provenance_section(data)))",
        md("## Executed notebooks\nEach step's notebook with its outputs, kept in the run folder."),
        "display(HTML(report.notebook_links(data)))\nrunner.finish_hint(run)",
    ]),
}


def build(name: str):
    stage, body = BODY[name]          # body[0]: the title cell (markdown)
    cells = [new_markdown_cell(body[0])]
    params = new_code_cell(notebook_parameters_source(notebook_keys(name)))
    params.metadata["tags"] = ["parameters"]
    cells.append(params)
    cells.append(new_code_cell(setup(stage)))
    for text in body[1:]:
        cells.append(new_markdown_cell(text) if isinstance(text, Markdown)
                     else new_code_cell(text))
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def main():
    out = Path(__file__).resolve().parents[1] / "notebooks"
    for name in NOTEBOOKS:
        nb = build(name)
        for i, cell in enumerate(nb.cells):
            cell["id"] = f"{name[:2]}-{i:02d}"
        nbformat.write(nb, str(out / name))
        print("wrote", out / name)


if __name__ == "__main__":
    main()
