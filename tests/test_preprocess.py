"""Preprocessing bytes against an independent computation (torchvision's PIL transforms),
for each recipe's spec; the recipes' own scripts: test_upstream_preprocess."""
import dataclasses

import numpy as np
import pytest
from PIL import Image
from torchvision import transforms

import jpegs
from zoorepro import recipebook
from zoorepro.recipe import data, decode, preprocess

SQUEEZENET = recipebook.load("squeezenet1_1").preprocess      # pil, 256 -> 224, bilinear
RESNET = recipebook.load("resnet50").preprocess               # pil, 256 -> 256
MOBILENET = recipebook.load("mobilenet_v2").preprocess        # opencv, class folders
LITE0 = recipebook.load("efficientnet_lite0").preprocess      # pil, bicubic
SPEC = SQUEEZENET


def torchvision_reference(path, spec=SPEC) -> bytes:
    """Independent: torchvision Resize(resize, interpolation) + CenterCrop(crop) on PIL
    (opened by PIL, or cv2.imread + BGR->RGB for an OpenCV recipe), as uint8."""
    mode = getattr(transforms.InterpolationMode, spec.interpolation.upper())
    t = transforms.Compose([transforms.Resize(spec.resize, interpolation=mode),
                            transforms.CenterCrop(spec.crop)])
    if spec.decoder == "opencv":
        import cv2
        img = Image.fromarray(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB))
        return np.asarray(t(img), dtype=np.uint8).tobytes()
    with Image.open(path) as im:
        return np.asarray(t(im.convert("RGB")), dtype=np.uint8).tobytes()


def test_demo_images_match_torchvision_bytes(demo_images):
    for p in demo_images:
        got = preprocess.preprocess_bytes(p, SPEC)
        assert len(got) == 150528
        assert got == torchvision_reference(p), p.name


@pytest.mark.parametrize("spec", [RESNET, LITE0, MOBILENET],
                         ids=["resnet50", "efficientnet_lite0", "mobilenet_v2"])
def test_each_recipes_numbers_come_from_its_spec(tmp_path, demo_images, spec):
    """Crop 256 (196,608 bytes), bicubic, OpenCV: each as its recipe.yaml says."""
    if spec.decoder == "opencv":
        pytest.importorskip("cv2")
    for p in demo_images[:5] + jpegs.make_all(tmp_path):
        got = preprocess.preprocess_bytes(p, spec)
        assert len(got) == spec.bin_bytes == spec.crop * spec.crop * 3
        assert got == torchvision_reference(p, spec), p.name
    assert RESNET.bin_bytes == 196608


def test_int8_as_upstream_casts_is_the_same_bytes(demo_images):
    """The recipes write ``np.array(pil, dtype=np.int8)`` (PIL ones) or a float tensor cast
    ``astype(np.int8)`` (MobileNetV2): on this machine the same bytes as our uint8 pixels."""
    import torch
    every = np.arange(256, dtype=np.uint8).reshape(16, 16)
    assert torch.from_numpy(every).float().numpy().astype(np.int8).tobytes() == every.tobytes()
    for p in demo_images[:3]:
        ours = preprocess.preprocess_array(p, SPEC)
        pil_cast = np.array(Image.fromarray(ours), dtype=np.int8)
        tensor = torch.unsqueeze(torch.from_numpy(np.array(Image.fromarray(ours))), 0).float()
        float_cast = tensor.cpu().numpy().astype(np.int8)
        assert pil_cast.tobytes() == float_cast.tobytes() == ours.tobytes()
        assert (ours > 127).any()      # the values where the cast wraps are there


@pytest.mark.parametrize("size,mode", [((256, 300), "RGB"), ((300, 256), "RGB"),
                                       ((257, 411), "RGB"), ((500, 333), "L"),
                                       ((333, 500), "CMYK"), ((225, 225), "RGB"),
                                       ((1000, 301), "P")])
def test_synthetic_sizes_and_modes(tmp_path, size, mode):
    rng = np.random.default_rng(sum(size))
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    img = Image.fromarray(arr).convert(mode)
    path = tmp_path / "x.jpeg"
    img.save(path, format="JPEG" if mode in ("RGB", "L", "CMYK") else "PNG")
    assert preprocess.preprocess_bytes(path, SPEC) == torchvision_reference(path)


def test_crop_offsets_follow_int_round():
    img = Image.fromarray(
        np.arange(257 * 300 * 3, dtype=np.uint32).reshape(300, 257, 3).astype(np.uint8))
    out = preprocess.center_crop(img, 224)
    # (257-224)/2 = 16.5 -> round() = 16 (banker's rounding, as torchvision's legacy code)
    assert np.array_equal(np.asarray(out), np.asarray(img)[38:262, 16:240])


def test_shorter_side_at_the_resize_left_alone():
    img = Image.new("RGB", (256, 400))
    assert preprocess.resize_shorter(img, 256, "bilinear") is img
    assert preprocess.resize_shorter(Image.new("RGB", (500, 375)), 256,
                                     "bilinear").size == (341, 256)
    assert preprocess.resize_shorter(img, 300, Image.BICUBIC).size == (300, 468)


def test_every_interpolation_a_recipe_may_name_has_its_pillow_filter():
    assert set(preprocess.FILTERS) == set(recipebook.INTERPOLATIONS)
    assert preprocess.FILTERS["bicubic"] == Image.BICUBIC


def test_the_spec_is_required_and_named_when_wrong(demo_images, tmp_path):
    with pytest.raises(TypeError, match="spec must be a recipe's Preprocess"):
        preprocess.preprocess_folder(demo_images[:1], tmp_path, 1, False)
    with pytest.raises(TypeError, match="cfg.recipe_spec.preprocess"):
        preprocess.check_images(demo_images[:1], 1)
    assert not any(hasattr(preprocess, n) for n in ("RESIZE", "CROP", "BIN_BYTES"))


def test_folder_parallel_resume_and_failures_by_name(tmp_path, demo_images):
    src = tmp_path / "src"
    src.mkdir()
    for p in demo_images[:6]:
        (src / p.name).write_bytes(p.read_bytes())
    (src / "broken.JPEG").write_bytes(b"not a jpeg at all")
    images = data.list_images(src)
    out = tmp_path / "bin"
    r = preprocess.preprocess_folder(images, out, SPEC, workers=2, progress=False)
    assert r.written == 6 and r.reused == 0
    assert [n for n, _ in r.failed] == ["broken.JPEG"]
    assert "UnidentifiedImageError" in r.failed[0][1]
    assert "broken.JPEG" in preprocess.failure_message(r)
    bins = sorted(out.glob("*.bin"))
    assert len(bins) == 6 and all(b.stat().st_size == 150528 for b in bins)
    assert not list(out.glob(".*part"))
    # a half-written file (wrong size) is redone; complete ones are reused
    bins[0].write_bytes(b"\0" * 1000)
    r2 = preprocess.preprocess_folder(images, out, SPEC, workers=1, progress=False)
    assert r2.reused == 5 and r2.written == 1
    assert bins[0].read_bytes() == preprocess.preprocess_bytes(src / (bins[0].stem + ".JPEG"),
                                                               SPEC)
    d = r2.to_dict()
    assert list(d) == ["out_dir", "decoder", "total", "written", "reused", "ok", "failed",
                       "non_rgb", "not_jpeg", "bin_bytes"]
    assert d["bin_bytes"] == 150528 and d["decoder"] == preprocess.decoder_note(SPEC)


def test_every_bin_is_exactly_the_recipes_size(tmp_path, demo_images):
    assert SPEC.bin_bytes == 224 * 224 * 3 == 150528
    assert len(preprocess.preprocess_bytes(demo_images[0], SPEC)) == SPEC.bin_bytes
    r = preprocess.preprocess_folder(demo_images[:2], tmp_path, RESNET, 1, False)
    assert r.to_dict()["bin_bytes"] == 196608
    assert all(p.stat().st_size == 196608 for p in tmp_path.glob("*.bin"))


def _bad_images(folder, good):
    """Real files of each bad kind, made here."""
    folder.mkdir(parents=True, exist_ok=True)
    data = good.read_bytes()
    (folder / "random.JPEG").write_bytes(np.random.default_rng(1).bytes(5000))
    (folder / "truncated.JPEG").write_bytes(data[: len(data) // 2])
    (folder / "empty.JPEG").write_bytes(b"")
    with Image.open(good) as im:
        im.convert("CMYK").save(folder / "cmyk.JPEG", format="JPEG")
        im.convert("L").save(folder / "gray.JPEG", format="JPEG")
        im.save(folder / "png_inside.JPEG", format="PNG")
    (folder / "good.JPEG").write_bytes(data)


def test_every_bad_kind_is_named_with_reason_and_fix(tmp_path, demo_images):
    _bad_images(tmp_path / "src", demo_images[0])
    r = preprocess.preprocess_folder(data.list_images(tmp_path / "src"), tmp_path / "bin", SPEC,
                                     1, False)
    failed = dict(r.failed)
    assert set(failed) == {"random.JPEG", "truncated.JPEG", "empty.JPEG"}
    assert "not a decodable image" in failed["random.JPEG"] and "remove it" in failed["random.JPEG"]
    assert "truncated" in failed["truncated.JPEG"] and "copy it again" in failed["truncated.JPEG"]
    assert failed["empty.JPEG"].startswith("empty file (0 bytes)")
    assert dict(r.non_rgb) == {"cmyk.JPEG": "CMYK", "gray.JPEG": "L"}
    assert dict(r.not_jpeg) == {"png_inside.JPEG": "PNG"}
    assert r.written == 4
    # CMYK / grayscale are converted as the recipe does
    assert ((tmp_path / "bin" / "gray.bin").read_bytes()
            == torchvision_reference(tmp_path / "src" / "gray.JPEG"))
    # on resume the lists stay complete
    r2 = preprocess.preprocess_folder(data.list_images(tmp_path / "src"), tmp_path / "bin", SPEC,
                                      1, False)
    assert r2.reused == 4 and dict(r2.non_rgb) == dict(r.non_rgb)
    assert dict(r2.not_jpeg) == dict(r.not_jpeg)


def test_opencv_names_every_bad_kind_too(tmp_path, demo_images):
    """cv2.imread returns None for what it cannot decode, and decodes a cut JPEG without a
    word: both are failures named with a reason here."""
    pytest.importorskip("cv2")
    _bad_images(tmp_path / "src", demo_images[0])
    r = preprocess.preprocess_folder(data.list_images(tmp_path / "src"), tmp_path / "bin",
                                     MOBILENET, 1, False)
    failed = dict(r.failed)
    assert set(failed) == {"random.JPEG", "truncated.JPEG", "empty.JPEG"}
    assert failed["random.JPEG"].startswith("OpenCV cannot decode it (cv2.imread returned None)")
    assert "replace or remove it" in failed["random.JPEG"]
    assert "truncated" in failed["truncated.JPEG"] and "copy it again" in failed["truncated.JPEG"]
    assert failed["empty.JPEG"].startswith("empty file (0 bytes)")
    assert dict(r.non_rgb) == {"cmyk.JPEG": "CMYK", "gray.JPEG": "L"}
    assert dict(r.not_jpeg) == {"png_inside.JPEG": "PNG"}
    assert r.written == 4 and r.to_dict()["decoder"].startswith("OpenCV ")
    for name in ("good", "gray", "cmyk", "png_inside"):
        assert ((tmp_path / "bin" / f"{name}.bin").read_bytes()
                == torchvision_reference(tmp_path / "src" / f"{name}.JPEG", MOBILENET)), name
    assert decode._jpeg_complete(demo_images[0])
    assert not decode._jpeg_complete(tmp_path / "src" / "truncated.JPEG")


def test_opencv_turns_an_exif_6_jpeg_and_pil_does_not(tmp_path):
    """The two decoders differ where their recipes' scripts differ (each side byte-identical
    to its upstream script: test_upstream_preprocess)."""
    pytest.importorskip("cv2")
    exif6 = jpegs.make("exif6", tmp_path)
    assert preprocess.load_rgb(exif6, SQUEEZENET)[0].size == (500, 375)      # as stored
    assert preprocess.load_rgb(exif6, MOBILENET)[0].size == (375, 500)       # turned
    with Image.open(exif6) as im:
        turned = im.convert("RGB").transpose(Image.Transpose.ROTATE_270)
    assert np.array_equal(np.asarray(preprocess.load_rgb(exif6, MOBILENET)[0]),
                          np.asarray(turned))


def test_a_missing_opencv_says_what_to_install(tmp_path, demo_images, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "cv2", None)        # import cv2 -> ImportError
    with pytest.raises(preprocess.RecipeError, match=r"pip install 'zoorepro\[opencv\]'"):
        preprocess.preprocess_folder(demo_images[:1], tmp_path, MOBILENET, 1, False)
    with pytest.raises(preprocess.RecipeError, match="opencv-python-headless"):
        preprocess.check_images(demo_images[:1], MOBILENET, 1)
    assert not list(tmp_path.iterdir())


def test_same_key_twice_is_a_named_failure(tmp_path, demo_images):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.JPEG").write_bytes(demo_images[0].read_bytes())
    (src / "a.jpg").write_bytes(demo_images[1].read_bytes())
    r = preprocess.preprocess_folder(data.list_images(src), tmp_path / "bin", SPEC, 1, False)
    assert len(r.failed) == 1 and "same key 'a'" in r.failed[0][1]


@pytest.mark.parametrize("kind", ["444", "422", "420", "progressive", "L", "CMYK", "png"])
def test_fast_decoder_gives_the_same_bytes_as_pil(tmp_path, kind):
    """simplejpeg is used only where it yields PIL's exact pixels; everything else goes to PIL."""
    rng = np.random.default_rng(7)
    arr = rng.integers(0, 256, (333, 500, 3), dtype=np.uint8)
    arr[:, :250] = 128  # flat areas and noise: exercises upsampling and IDCT
    img = Image.fromarray(arr)
    path = tmp_path / "x.JPEG"
    if kind in ("444", "422", "420"):
        img.save(path, format="JPEG", quality=85, subsampling={"444": 0, "422": 1, "420": 2}[kind])
    elif kind == "progressive":
        img.save(path, format="JPEG", quality=90, progressive=True)
    elif kind == "png":
        img.save(path, format="PNG")
    else:
        img.convert(kind).save(path, format="JPEG")
    fast = preprocess.preprocess_bytes(path, SPEC, fast=True)
    slow = preprocess.preprocess_bytes(path, SPEC, fast=False)
    assert fast == slow == torchvision_reference(path)


def test_fast_decoder_used_on_demo_images(demo_images):
    if decode._simplejpeg is None:
        pytest.skip("simplejpeg not installed: PIL decodes everything")
    data = demo_images[0].read_bytes()
    assert decode._fast_jpeg(data) is not None
    assert decode._fast_jpeg(data[: len(data) // 2]) is None   # truncated: PIL explains
    assert "simplejpeg" in preprocess.decoder_note(SPEC)


def test_shared_bin_folder_never_reuses_another_images_bin(tmp_path, demo_images):
    """Same file name, other content (another data_dir): redone, not reused."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x.JPEG").write_bytes(demo_images[0].read_bytes())
    (b / "x.JPEG").write_bytes(demo_images[1].read_bytes())
    out = tmp_path / "bin"
    assert preprocess.preprocess_folder(data.list_images(a), out, SPEC, 1, False).written == 1
    r = preprocess.preprocess_folder(data.list_images(b), out, SPEC, 1, False)
    assert r.written == 1 and r.reused == 0
    assert (out / "x.bin").read_bytes() == preprocess.preprocess_bytes(b / "x.JPEG", SPEC)
    # the same image again: reused
    assert preprocess.preprocess_folder(data.list_images(b), out, SPEC, 1, False).reused == 1


def test_a_bin_dir_shared_by_two_recipes_never_reuses_the_others_bins(tmp_path, demo_images):
    """Same images, same .bin size (224 x 224 x 3), another preprocessing (OpenCV, or
    bicubic): redone each time the recipe changes, reused only after its own."""
    pytest.importorskip("cv2")
    out, images = tmp_path / "bin", demo_images[:3] + jpegs.make_all(tmp_path / "j", ["cmyk"])
    assert SQUEEZENET.bin_bytes == MOBILENET.bin_bytes == LITE0.bin_bytes
    assert preprocess.preprocess_folder(images, out, SQUEEZENET, 1, False).written == 4
    for spec in (MOBILENET, LITE0, SQUEEZENET, MOBILENET):
        r = preprocess.preprocess_folder(images, out, spec, 1, False)
        assert (r.written, r.reused) == (4, 0), spec
        assert all((out / f"{p.stem}.bin").read_bytes() == preprocess.preprocess_bytes(p, spec)
                   for p in images)
        assert preprocess.preprocess_folder(images, out, spec, 1, False).reused == 4
    # the cmyk image decodes differently under OpenCV: the bytes show the redo was needed
    cmyk = images[-1]
    assert preprocess.preprocess_bytes(cmyk, SQUEEZENET) != preprocess.preprocess_bytes(
        cmyk, MOBILENET)


def test_a_redo_first_withdraws_the_old_manifest_line(tmp_path, demo_images, monkeypatch):
    """A run stopped after writing a .bin but before its manifest line must not leave the
    old line vouching for the new bytes (the next run of the old recipe would reuse them)."""
    out = tmp_path / "bin"
    preprocess.preprocess_folder(demo_images[:2], out, SQUEEZENET, 1, False)
    other = dataclasses.replace(SQUEEZENET, interpolation="bicubic")

    def stop(outcomes, result, bar, record):      # the .bin files are written, then: killed
        list(outcomes)
        raise KeyboardInterrupt
    monkeypatch.setattr(preprocess, "_collect", stop)
    with pytest.raises(KeyboardInterrupt):
        preprocess.preprocess_folder(demo_images[:2], out, other, 1, False)
    monkeypatch.undo()
    r = preprocess.preprocess_folder(demo_images[:2], out, SQUEEZENET, 1, False)
    assert (r.written, r.reused) == (2, 0)
    assert (out / f"{demo_images[0].stem}.bin").read_bytes() == preprocess.preprocess_bytes(
        demo_images[0], SQUEEZENET)


# ------------------------------------------------------------ limits and resources
def test_the_pixel_limit_is_applied_before_the_fast_decoder(tmp_path, demo_images, monkeypatch):
    """A huge colour JPEG went through simplejpeg, which has no pixel limit (6.2 GB for
    30000x30000); now Pillow's limit applies from the header, on every decoder."""
    assert decode._simplejpeg is not None
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)      # the demo JPEGs are larger
    decoded = []
    monkeypatch.setattr(decode._simplejpeg, "decode_jpeg",
                        lambda *a, **k: decoded.append(1) or np.zeros((1, 1, 3), np.uint8))
    with pytest.raises(Image.DecompressionBombError, match="exceeds the limit of 20,000 pixels"):
        preprocess.load_rgb(demo_images[0], SPEC)
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.JPEG").write_bytes(demo_images[0].read_bytes())
    r = preprocess.preprocess_folder(data.list_images(src), tmp_path / "bin", SPEC, 1, False)
    assert not decoded and r.failed[0][0] == "big.JPEG"
    assert r.failed[0][1].startswith("image too large: ") and "decompression-bomb" in r.failed[0][1]


def test_a_16_bit_image_is_converted_and_its_squashed_range_said(tmp_path):
    """The recipe's convert('RGB') clips 16-bit values: kept, but named in the notes."""
    src = tmp_path / "src"
    src.mkdir()
    ramp = (np.arange(256 * 256, dtype=np.uint32).reshape(256, 256) % 65536).astype(np.uint16)
    Image.fromarray(ramp).save(src / "depth.png")                     # mode I;16
    r = preprocess.preprocess_folder(data.list_images(src), tmp_path / "bin", SPEC, 1, False)
    assert r.written == 1 and dict(r.non_rgb) == {"depth.png": "I;16"}
    note = preprocess.conversion_note("I;16")
    assert "16-bit values were squashed into 0..255" in note and "mostly white" in note
    assert preprocess.conversion_note("L") == "L image converted to RGB (as the recipe does)"
    assert "scaled into 0..255" in preprocess.conversion_note("I;16", "opencv")


def test_a_write_error_stops_with_the_path_and_cause_not_blaming_images(tmp_path, demo_images):
    """Under a file-size limit every image used to fail with advice to fix the images; now
    the first write error stops the work, naming the .bin file and the real cause."""
    import resource
    src = tmp_path / "src"
    src.mkdir()
    for p in demo_images[:6]:
        (src / p.name).write_bytes(p.read_bytes())
    preprocess.preprocess_folder(data.list_images(src)[:2], tmp_path / "bin", SPEC, 1, False)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, hard))     # a .bin is 150,528 bytes
    try:
        r = preprocess.preprocess_folder(data.list_images(src), tmp_path / "bin", SPEC, 1,
                                         False)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert r.reused == 2 and r.written == 0 and len(r.failed) == 2      # one error + the rest
    name, reason = r.failed[0]
    assert name == demo_images[2].name
    assert reason.startswith(str(tmp_path / "bin" / (demo_images[2].stem + ".bin")))
    assert "file too large" in reason and "ulimit" in reason
    assert r.failed[1][0] == "3 image(s) not done"
    msg = preprocess.failure_message(r)
    assert msg.startswith("preprocessing stopped after 2 of 6 image(s)") and "file too large" in msg
    assert "Fix or remove these files" not in msg and "bin_dir" in msg
    assert len(list((tmp_path / "bin").glob("*.bin"))) == 2                # the work is kept


def test_a_killed_worker_stops_the_work_instead_of_waiting_forever(tmp_path, demo_images,
                                                                   monkeypatch):
    """A worker SIGKILLed (as the OOM killer does) left the pool waiting forever for its
    images; now preprocessing returns, saying why, with the .bin files written kept."""
    import os
    import signal
    import threading
    victim, parent = demo_images[20].name, os.getpid()
    load = preprocess.load_rgb

    def dying(path, spec, fast=True):
        if os.path.basename(str(path)) == victim and os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)
        return load(path, spec, fast)
    monkeypatch.setattr(preprocess, "load_rgb", dying)     # forked workers inherit it
    out = []
    t = threading.Thread(target=lambda: out.append(preprocess.preprocess_folder(
        demo_images[:40], tmp_path / "bin", SPEC, 2, False)), daemon=True)
    t.start()
    t.join(120)
    assert out, "preprocessing hung after a worker died"
    r = out[0]
    assert r.stopped.startswith("a preprocessing process died (killed by signal 9")
    assert 0 < r.ok < 40 and r.failed[-1][0] == f"{40 - r.ok} image(s) not done"
    assert preprocess.failure_message(r).startswith(f"preprocessing stopped after {r.ok} of 40")
    assert len(list((tmp_path / "bin").glob("*.bin"))) >= r.ok
