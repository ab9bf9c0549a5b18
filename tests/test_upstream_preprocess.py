"""zoorepro's .bin files against the ModelZoo recipes' own preprocess scripts, byte for byte.

Each upstream script (``shared/third_party/modelzoo/<recipe>/``, never edited) is copied to a
temporary folder and run there in a subprocess on the same images; every .bin it writes must
equal zoorepro's, file for file.  The one shim its README allows is MobileNetV2's
``transforms.Scale = transforms.Resize`` (a ``sitecustomize.py`` on the child's PYTHONPATH).
Inputs: the JPEGs of ``tests/jpegs.py`` (every kind) and the 100 shared images (each recipe
about 1-4 s on two cores: no e2e mark).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import jpegs
from conftest import SHARED
from zoorepro import recipebook
from zoorepro.recipe import data, preprocess

ZOO = SHARED / "third_party" / "modelzoo"
SAMPLE = SHARED / "data" / "imagenet-sample-100"

# recipe: (the script in ZOO, its arguments before SRC and DST, SRC needs a trailing "/")
UPSTREAM = {
    "squeezenet1_1": ("squeezenet1_1/squeezenet1_1_preprocess.py", [], False),
    "resnet50": ("resnet50/imagenet_torch_preprocess.py", ["resnet"], False),
    "mobilenet_v2": ("mobilenet_v2/preprocess.py", [], True),
}
SHIM = ("# the shim shared/third_party/modelzoo/README.md allows: torchvision renamed\n"
        "# transforms.Scale to transforms.Resize (same behaviour)\n"
        "import torchvision.transforms as _t\n_t.Scale = _t.Resize\n")

pytestmark = pytest.mark.skipif(
    not ZOO.is_dir(), reason=f"{ZOO} is absent: the upstream recipes live in ../shared "
                             f"(a checkout beside this one); nothing to compare with")


def needs(recipe: str) -> None:
    if recipebook.load(recipe).preprocess.decoder == "opencv":
        pytest.importorskip("cv2", reason="the recipe decodes with OpenCV: "
                                          "pip install opencv-python-headless")


def run_upstream(recipe: str, src: Path, work: Path) -> Path:
    """The recipe's own script on ``src``, run from ``work``; returns its output folder."""
    rel, first, slash = UPSTREAM[recipe]
    work.mkdir(parents=True)
    script = work / Path(rel).name
    shutil.copyfile(ZOO / rel, script)
    env = {**os.environ, "TQDM_DISABLE": "1"}
    if recipe == "mobilenet_v2":
        (work / "shim").mkdir()
        (work / "shim" / "sitecustomize.py").write_text(SHIM)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(work / "shim"),
                                                          env.get("PYTHONPATH")]))
    dst = work / "out"
    argv = [sys.executable, script.name, *first, str(src) + ("/" if slash else ""), str(dst)]
    proc = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{rel} failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return dst


def run_ours(recipe: str, src: Path, out: Path) -> preprocess.PreprocessResult:
    spec = recipebook.load(recipe).preprocess
    images = data.list_images(src, layout=spec.layout, extensions=spec.extensions)
    result = preprocess.preprocess_folder(images, out, spec, workers=1, progress=False)
    assert not result.failed, result.failed
    return result


def lay_out(recipe: str, images: list[Path], labels: dict, src: Path) -> Path:
    """``images`` copied into ``src`` as the recipe reads them: flat, or one folder per label."""
    class_folders = recipebook.load(recipe).preprocess.layout == "class_folders"
    for p in images:
        folder = src / str(labels.get(data.image_key(p.name), 0)) if class_folders else src
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, folder / p.name)
    return src


def compare(recipe: str, theirs: Path, ours: Path) -> dict:
    """{bin name: why it differs}; {} when every file is byte-identical."""
    size = recipebook.load(recipe).preprocess.bin_bytes
    a = {p.name: p for p in theirs.glob("*.bin")}
    b = {p.name: p for p in ours.glob("*.bin")}
    bad = {n: "only upstream wrote it" for n in a.keys() - b.keys()}
    bad.update({n: "upstream wrote none (its pool swallows errors)" for n in b.keys() - a.keys()})
    for n in a.keys() & b.keys():
        x, y = a[n].read_bytes(), b[n].read_bytes()
        if len(y) != size:
            bad[n] = f"ours is {len(y)} bytes, the recipe's .bin is {size}"
        elif x != y:
            diff = sum(i != j for i, j in zip(x, y))
            bad[n] = f"{diff} of {len(x)} bytes differ (upstream {len(x)} bytes)"
    return bad


# ------------------------------------------------------------ quick: every kind of JPEG
@pytest.fixture(scope="module")
def made_jpegs(tmp_path_factory):
    return jpegs.make_all(tmp_path_factory.mktemp("jpegs"))


@pytest.fixture(scope="module", params=sorted(UPSTREAM))
def both(request, made_jpegs, tmp_path_factory):
    """(recipe, upstream's .bin folder, ours) on every kind of test JPEG."""
    recipe = request.param
    needs(recipe)
    tmp = tmp_path_factory.mktemp(recipe)
    src = lay_out(recipe, made_jpegs, {}, tmp / "src")
    ours = run_ours(recipe, src, tmp / "ours")
    assert ours.written == len(jpegs.KINDS)
    return recipe, run_upstream(recipe, src, tmp / "upstream"), tmp / "ours"


@pytest.mark.parametrize("kind", sorted(jpegs.KINDS))
def test_each_kind_of_jpeg_is_byte_identical_to_upstream(both, kind):
    recipe, theirs, ours = both
    name = f"k_{kind}.bin"
    assert (theirs / name).is_file(), f"{recipe}: upstream wrote no {name}"
    got, want = (ours / name).read_bytes(), (theirs / name).read_bytes()
    assert len(got) == recipebook.load(recipe).preprocess.bin_bytes
    assert got == want, f"{recipe} {kind}: {compare(recipe, theirs, ours).get(name)}"


def test_upstream_wrote_nothing_we_did_not(both):
    recipe, theirs, ours = both
    assert sorted(p.name for p in theirs.iterdir()) == sorted(p.name for p in ours.glob("*.bin"))


# ------------------------------------------------------------ the 100 shared images
@pytest.mark.parametrize("recipe", sorted(UPSTREAM))
def test_the_100_shared_images_are_byte_identical_to_upstream(tmp_path, recipe):
    if not (SAMPLE / "images").is_dir():
        pytest.skip(f"{SAMPLE} is absent")
    needs(recipe)
    images = data.list_images(SAMPLE / "images")
    assert len(images) == 100
    labels = data.read_labels(SAMPLE / "val_label.txt")
    src = lay_out(recipe, images, labels, tmp_path / "src")
    if recipebook.load(recipe).preprocess.layout == "class_folders":
        assert len([d for d in src.iterdir() if d.is_dir()]) == 100     # one per label
    assert run_ours(recipe, src, tmp_path / "ours").written == 100
    theirs = run_upstream(recipe, src, tmp_path / "upstream")
    assert len(list(theirs.glob("*.bin"))) == 100
    assert compare(recipe, theirs, tmp_path / "ours") == {}
