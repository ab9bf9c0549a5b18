"""Regenerate notebooks/*.ipynb (thin: calls into zoorepro, no outputs).

    python tools/make_notebooks.py

The ``parameters`` cell of each notebook is ``zoorepro.config.notebook_parameters_source()``:
the run config's signature with the demo's defaults.
"""
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from zoorepro.config import notebook_parameters_source
from zoorepro.stages import NOTEBOOKS

SETUP = """from IPython.display import HTML, display
from zoorepro import report, runner, stages

run = runner.open_from_notebook(globals())
print("run folder:", run.root)"""


def first(stage: str) -> str:
    """A notebook run alone runs the stages before it when their records are missing."""
    return (f"earlier = stages.ensure(run, {stage!r})\n"
            f"if earlier:\n    print('ran first, their records were missing:', ', '.join(earlier))\n")

BODY = {
    "01_preprocess.ipynb": [
        "# 1 · Preprocess\nThe recipe's `squeezenet1_1_preprocess.py`, byte for byte: RGB, shorter "
        "side to 256 (BILINEAR), centre crop 224, raw HWC uint8 `.bin` (150,528 bytes). "
        "Every image, natural order, in parallel; failures are reported by name.",
        "stages.run_preprocess(run)\ndisplay(HTML(report.preprocess_section(report.load(run.root))))",
    ],
    "02_export.ipynb": [
        "# 2 · Export\n`.pth` → ONNX (opset 11, input `image`, output `class`, dynamic batch) as "
        "`squeezenet1_1_pth2onnx.py` does; then the portable stand-in for the ATC model: "
        "`aipp.config` prepended as graph nodes (uint8 NHWC input). Parity with PyTorch on real images.",
        first("preprocess") + "stages.run_export(run)\ndisplay(HTML(report.export_section(report.load(run.root))))",
        "stages.run_atc(run)\ndisplay(HTML(report.atc_section(report.load(run.root))))",
    ],
    "03_infer.ipynb": [
        "# 3 · Inference\nEach backend reads the `.bin` folder the way ais_bench does and writes its "
        "layout (`result_bs<N>/<stem>_0.txt`, `result_bs<N>_summary.json`); then the batch-size "
        "throughput sweep.",
        first("export") + "stages.run_infer(run)\ndata = report.load(run.root)\n"
        "display(HTML(report.e2e_table(data)))\ndisplay(HTML(report.throughput_table(data)))",
    ],
    "04_evaluate.ipynb": [
        "# 4 · Evaluate\nTop-1…top-5 against `val_label.txt`, as `squeezenet1_1_postprocess.py` "
        "scores (1001-class outputs: label + 1; ties: lower class first). Writes `result.json` "
        "(recipe format) and `metrics.json`.",
        first("infer") + "stages.run_evaluate(run)\ndata = report.load(run.root)\n"
        "display(HTML(report.accuracy_table(data)))\ndisplay(HTML(report.predictions_sample(data)))",
    ],
    "05_report.ipynb": [
        "# SqueezeNet 1.1 on ImageNet — reproducibility report\nRecipe: Ascend ModelZoo "
        "`ACL_PyTorch/contrib/cv/classfication/Squeezenet1_1`, rebuilt by zoorepro.",
        "stages.ensure_for_report(run)\ndata = report.load(run.root)\n"
        "display(HTML(report.verdict(data)))",
        "## Accuracy",
        "display(HTML(report.accuracy_table(data)))\ndisplay(HTML(report.predictions_sample(data)))",
        "## Throughput by batch size",
        "display(HTML(report.throughput_plot(data)))",
        "display(HTML(report.throughput_table(data)))\ndisplay(HTML(report.e2e_table(data)))",
        "## Ascend NPU path",
        "display(HTML(report.npu_section(data)))",
        "## Warnings and unusual inputs",
        "display(HTML(report.warnings_section(data)))",
        "## Cross-backend parity",
        "display(HTML(report.parity_section(data)))",
        "## Export parity and AIPP check",
        "display(HTML(report.export_section(data)))",
        "## Preprocessing",
        "display(HTML(report.preprocess_section(data)))",
        "## Environment",
        "display(HTML(report.environment_section(data)))",
        "## Provenance",
        "display(HTML(report.provenance_section(data)))",
        "## Executed notebooks",
        "display(HTML(report.notebook_links(data)))",
    ],
}


def build(name: str):
    cells = []
    body = BODY[name]
    cells.append(new_markdown_cell(body[0]))
    params = new_code_cell(notebook_parameters_source())
    params.metadata["tags"] = ["parameters"]
    cells.append(params)
    cells.append(new_code_cell(SETUP))
    for text in body[1:]:
        if text.startswith("#"):
            cells.append(new_markdown_cell(text))
        else:
            cells.append(new_code_cell(text))
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
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
