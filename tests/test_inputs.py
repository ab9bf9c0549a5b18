"""What a run reads, checked before any work: free space (images and labels: test_stages)."""
import pytest

from zoorepro import recipebook
from zoorepro.recipe import inputs

SPEC = recipebook.load("squeezenet1_1").preprocess


def test_disk_space_credits_finished_bins_and_counts_outputs(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple
    imgs = [tmp_path / f"img{i}.JPEG" for i in range(10)]
    bins = tmp_path / "bins"
    bins.mkdir()
    for p in imgs[:6]:   # six finished .bin files, one truncated
        (bins / f"{p.stem}.bin").write_bytes(b"\0" * SPEC.bin_bytes)
    (bins / "img6.bin").write_bytes(b"\0" * 10)
    Usage = namedtuple("Usage", "total used free")
    need_bins = 4 * (SPEC.bin_bytes + inputs.MANIFEST_LINE_BYTES)
    need_txt = 2 * 10 * (inputs.OUTPUT_BYTES["TXT"] + inputs.LISTING_BYTES) + inputs.RUN_FILES_BYTES
    monkeypatch.setattr(shutil, "disk_usage",
                        lambda p: Usage(0, 0, int((need_bins + need_txt) * 1.06)))
    inputs.check_free_space(bins, imgs, SPEC, tmp_path / "results", 2, "TXT")   # just enough
    monkeypatch.setattr(shutil, "disk_usage", lambda p: Usage(0, 0, int(need_bins * 1.06)))
    inputs.check_free_space(bins, imgs, SPEC)                                 # bins only: fits
    with pytest.raises(Exception, match=r"4 .bin file\(s\) x 150528 bytes \(6 already there\) \+ "
                                        r"2 backend\(s\) x 10 TXT output\(s\)"):
        inputs.check_free_space(bins, imgs, SPEC, tmp_path / "results", 2, "TXT")
    # another recipe's size: the 150,528-byte files are not its .bin files, all ten to write
    resnet = recipebook.load("resnet50").preprocess
    with pytest.raises(Exception, match=r"\(10 .bin file\(s\) x 196608 bytes\)"):
        inputs.check_free_space(bins, imgs, resnet)
    with pytest.raises(TypeError, match="cfg.recipe_spec.preprocess"):
        inputs.check_free_space(bins, imgs, tmp_path / "results")


def test_free_space_counts_models_notebooks_and_report(tmp_path, monkeypatch):
    """A 20 MB disk passed a check of .bin files and outputs alone (100 images: 17.5 MB),
    then filled up writing the models; the check now counts everything the run writes."""
    import shutil
    from collections import namedtuple
    imgs = [tmp_path / f"img{i}.JPEG" for i in range(100)]
    run = tmp_path / "run"
    monkeypatch.setattr(shutil, "disk_usage",
                        lambda p: namedtuple("U", "total used free")(0, 0, 20_000_000))
    with pytest.raises(Exception, match=r"0\.02 GiB free.*models, notebooks, records and report"):
        inputs.check_free_space(run / "bin", imgs, SPEC, run / "results", 2, "TXT")


def _unshare_works() -> bool:
    import shutil
    import subprocess
    return bool(shutil.which("unshare")) and subprocess.run(
        ["unshare", "-rm", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _unshare_works(), reason="needs unshare -rm (user and mount namespaces)")
def test_a_read_only_bin_dir_is_named_before_any_work(tmp_path):
    """A read-only file system (a tmpfs mounted ro in a private namespace): a clear error
    naming the folder and the cause, not a raw Errno 30."""
    import subprocess
    import sys
    ro = tmp_path / "ro"
    ro.mkdir()
    code = ("from pathlib import Path; from zoorepro import recipebook; "
            "from zoorepro.recipe import inputs; "
            f"inputs.check_free_space(Path({str(ro)!r}) / 'bin', [Path('a.JPEG')], "
            "recipebook.load('squeezenet1_1').preprocess)")
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", 'mount -t tmpfs -o ro tmpfs "$0" && '
                           'exec "$1" -c "$2"', str(ro), sys.executable, code],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("zoorepro.errors.DataError: checked before any work: ")
    assert f"{ro / 'bin'}: cannot be written: read-only file system" in last
    assert "set bin_dir / output_root to a writable folder" in last


def test_every_problem_of_the_input_is_reported_at_once(tmp_path):
    """An image without a label AND a corrupt image: one error lists both (the corrupt file
    no longer surfaces only on the next attempt), still before any work."""
    import shutil
    from zoorepro import config
    from conftest import DEMO_IMAGES, small_params
    src = tmp_path / "images"
    src.mkdir()
    names = sorted(p.name for p in DEMO_IMAGES.iterdir())[:3]
    for n in names:
        shutil.copy(DEMO_IMAGES / n, src / n)
    (src / names[1]).write_bytes((src / names[1]).read_bytes()[:2000])     # truncated
    shutil.copy(DEMO_IMAGES / names[0], src / "stray.JPEG")                   # no label
    labels = tmp_path / "val_label.txt"
    labels.write_text("".join(f"{n} {i}\n" for i, n in enumerate(names)))
    cfg = config.from_mapping(small_params(tmp_path, data_dir=str(src), label_file=str(labels)))
    with pytest.raises(inputs.DataError) as e:
        inputs.run_images(cfg)
    msg = str(e.value)
    assert "stopped before inference" in msg and "e.g. stray.JPEG" in msg
    assert f"1 of 4 image(s) cannot be preprocessed: {names[1]}: truncated image data" in msg
    assert not (tmp_path / "reports").exists() or not list((tmp_path / "reports").rglob("*.bin"))


def test_a_class_folder_recipe_reads_its_layout_and_suffixes(tmp_path):
    """MobileNetV2's recipe: data_dir/<class>/<image>, only *.jpeg; its images are checked
    with its own decoder (OpenCV) when the input stops the run."""
    import shutil
    from zoorepro import config
    from conftest import DEMO_IMAGES, small_params
    pytest.importorskip("cv2")
    names = sorted(p.name for p in DEMO_IMAGES.iterdir())[:4]
    src = tmp_path / "val"
    for i, n in enumerate(names):
        (src / str(i)).mkdir(parents=True)
        shutil.copy(DEMO_IMAGES / n, src / str(i) / n)
    shutil.copy(DEMO_IMAGES / names[0], src / "0" / "skipped.jpg")       # not *.jpeg: skipped
    labels = tmp_path / "val_label.txt"
    labels.write_text("".join(f"{n} {i}\n" for i, n in enumerate(names)))
    params = small_params(tmp_path, recipe="mobilenet_v2", data_dir=str(src),
                          label_file=str(labels), max_images=0)
    cfg = config.from_mapping(params)
    images, unlabelled, missing = inputs.run_images(cfg)
    assert [p.name for p in images] == names and unlabelled == [] and missing == []
    assert all(p.parent.parent == src for p in images)
    (src / "1" / names[1]).write_bytes(b"junk")                         # OpenCV's reason
    shutil.copy(DEMO_IMAGES / names[0], src / "2" / "stray.JPEG")       # no label
    with pytest.raises(inputs.DataError) as e:
        inputs.run_images(cfg)
    assert f"{names[1]}: OpenCV cannot decode it" in str(e.value) and "stray.JPEG" in str(e.value)
