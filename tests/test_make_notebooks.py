"""The committed notebooks are tools/make_notebooks.py's output, cell for cell: a notebook
edited by hand (or a generator changed without regenerating) fails here."""
import importlib.util
import json

import nbformat
import pytest

from conftest import ROOT

from zoorepro.run.stages import NOTEBOOKS, STAGES


@pytest.fixture(scope="module")
def maker():
    spec = importlib.util.spec_from_file_location("make_notebooks",
                                                  ROOT / "tools" / "make_notebooks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def generated(maker, name: str) -> dict:
    nb = maker.build(name)
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{name[:2]}-{i:02d}"
    return json.loads(nbformat.writes(nb))


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_the_committed_notebook_is_the_generators_output(maker, name):
    committed = json.loads((ROOT / "notebooks" / name).read_text(encoding="utf-8"))
    assert committed == generated(maker, name), (
        f"notebooks/{name} differs from tools/make_notebooks.py's output: run "
        f"'python tools/make_notebooks.py' (and edit the generator, not the notebook)")


def test_a_code_cell_may_start_with_a_comment(maker):
    """Cells are markdown only when marked so, never by their first character."""
    maker.BODY["zz.ipynb"] = (None, [maker.md("# Title"), "# a comment\nx = 1",
                                     maker.md("## Section")])
    try:
        nb = maker.build("zz.ipynb")
    finally:
        del maker.BODY["zz.ipynb"]
    kinds = [c.cell_type for c in nb.cells]
    assert kinds[0] == "markdown" and kinds[-2:] == ["code", "markdown"]
    assert nb.cells[-2].source.startswith("# a comment")


@pytest.mark.parametrize("name", [s.notebook for s in STAGES.values()])
def test_each_stage_notebook_runs_its_stage_once_through_ensure(maker, name):
    """A stage is defined once (stages.STAGES); its notebook calls stages.ensure for it and
    calls no stage function of its own."""
    stage = next(s for s in STAGES.values() if s.notebook == name)
    code = "\n".join(c.source for c in maker.build(name).cells if c.cell_type == "code")
    assert f"stages.ensure(run, {stage.name!r}, executor)" in code
    assert "stages.run_" not in code
