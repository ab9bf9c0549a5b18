import pytest

from zoorepro.recipe import data

from conftest import DEMO_IMAGES, DEMO_LABELS


def test_natural_sort_like_ais_bench():
    names = ["img10.bin", "img2.bin", "img1.bin", "IMG3.bin"]
    assert data.natural_sorted(names) == ["img1.bin", "img2.bin", "IMG3.bin", "img10.bin"]


def test_image_key_is_name_up_to_first_dot():
    assert data.image_key("ILSVRC2012_val_00000001.JPEG") == "ILSVRC2012_val_00000001"
    assert data.image_key("/x/y/a.b.c") == "a"


def test_read_demo_labels_and_match(demo_images):
    labels = data.read_labels(DEMO_LABELS)
    assert len(labels) == 100 and labels["n01440764_tench"] == 0
    m = data.match_labels(demo_images, labels)
    assert len(m.images) == 100 and not m.unlabelled and not m.missing_images


@pytest.mark.parametrize("text,needle", [
    ("a.JPEG\n", "expected '<file name> <class index>'"),
    ("a.JPEG 1000\n", "outside 0..999"),
    ("a.JPEG 1\na.JPEG 2\n", "labelled twice"),
    ("", "empty"),
])
def test_bad_label_files_name_the_line(tmp_path, text, needle):
    assert_refused_naming_file(tmp_path, text.encode("utf-8"), needle)


def assert_refused_naming_file(tmp_path, raw: bytes, needle: str):
    p = tmp_path / "val_label.txt"
    p.write_bytes(raw)
    with pytest.raises(data.DataError, match=needle) as e:
        data.read_labels(p)
    assert str(p) in str(e.value)


def test_write_labels_round_trip(tmp_path):
    labels = {"ILSVRC2012_val_00000010": 3, "ILSVRC2012_val_00000002": 970}
    p = data.write_labels(labels, tmp_path / "val_label.txt")
    assert p.read_text().splitlines() == ["ILSVRC2012_val_00000002.JPEG 970",
                                          "ILSVRC2012_val_00000010.JPEG 3"]
    assert data.read_labels(p) == labels


def test_class_names_from_torchvision():
    """torchvision's ImageNet list, named by no model: the very names (and order) every
    ImageNet weights' metadata gives, the ones this function read from a model before."""
    from torchvision.models import (MobileNet_V2_Weights, ResNet50_Weights,
                                    SqueezeNet1_1_Weights)
    names = data.class_names()
    assert len(names) == 1000 and names[0] == "tench" and names[-1] == "toilet tissue"
    for weights in (SqueezeNet1_1_Weights, ResNet50_Weights, MobileNet_V2_Weights):
        assert names == list(weights.IMAGENET1K_V1.meta["categories"]), weights.__name__
    import inspect
    assert "Weights" not in inspect.getsource(data.class_names)


def test_list_images_errors(tmp_path):
    with pytest.raises(data.DataError, match="not found"):
        data.list_images(tmp_path / "missing")
    with pytest.raises(data.DataError, match="no image files"):
        data.list_images(tmp_path)
    assert len(data.list_images(DEMO_IMAGES, max_images=5)) == 5


def test_official_labels_from_package(tmp_path):
    labels = data.official_val_labels()
    assert len(labels) == 50000
    assert [labels[f"ILSVRC2012_val_{i:08d}"] for i in range(1, 6)] == [65, 970, 230, 809, 516]
    p = data.write_labels(labels, tmp_path / "val_label.txt")
    assert p.read_text().splitlines()[0] == "ILSVRC2012_val_00000001.JPEG 65"


# ------------------------------------------------------------ label files as people save them
def test_a_utf8_byte_order_mark_is_not_part_of_the_first_name(tmp_path):
    p = tmp_path / "val_label.txt"
    p.write_bytes("\ufeffn01440764_tench.JPEG 0\nb.JPEG 1\n".encode("utf-8"))
    assert data.read_labels(p) == {"n01440764_tench": 0, "b": 1}


@pytest.mark.parametrize("raw,needle", [
    ("a.JPEG 0\n".encode("utf-16"), "UTF-16 text; the label file must be UTF-8"),
    (b"a.JPEG 0\nb\xff.JPEG 1\n", r":2: not UTF-8 text \(byte 0xff\)"),
    ("a.JPEG \u00b2\n".encode("utf-8"), r":1: expected '<file name> <class index>' \(the index "
                                        r"in ASCII digits\), got 'a.JPEG \u00b2'"),
], ids=["utf-16", "not-utf-8", "superscript-digit"])
def test_encodings_and_odd_digits_are_errors_naming_the_file(tmp_path, raw, needle):
    assert_refused_naming_file(tmp_path, raw, needle)


def test_every_bad_label_line_is_listed_at_once(tmp_path):
    p = tmp_path / "val_label.txt"
    p.write_text("a.JPEG 1\nb.JPEG\nc.JPEG 5000\nd.JPEG x\n")
    with pytest.raises(data.DataError, match=r"3 bad line\(s\)") as e:
        data.read_labels(p)
    assert all(f"{p}:{n}:" in str(e.value) for n in (2, 3, 4))


def test_entries_named_like_images_that_are_not_images_are_named(tmp_path):
    """A folder x.JPEG, a symlink loop and a broken link: errors naming each, never skipped."""
    (tmp_path / "a.JPEG").write_bytes(b"\xff\xd8")
    (tmp_path / "x.JPEG").mkdir()
    (tmp_path / "loop.JPEG").symlink_to(tmp_path / "loop.JPEG")
    (tmp_path / "gone.png").symlink_to(tmp_path / "nowhere.png")
    with pytest.raises(data.DataError) as e:
        data.list_images(tmp_path)
    msg = str(e.value)
    assert "x.JPEG is a folder" in msg and "loop.JPEG is a symlink loop" in msg
    assert "gone.png is a symlink to nothing" in msg and "a.JPEG" not in msg.replace("x.JPEG", "")
    images, odd = data.scan_images(tmp_path)
    assert [p.name for p in images] == ["a.JPEG"] and len(odd) == 3


# ------------------------------------------------------------ layouts and extensions
def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8")
    return path


def test_class_folders_are_read_one_level_down_in_name_order(tmp_path):
    """val/<class>/<image>, as MobileNetV2's preprocess reads it: sorted by file name across
    classes (the order the flat layout gives the same files); hidden folders and files and
    other suffixes skipped (upstream takes only ``*.jpeg``); deeper folders not read."""
    for rel in ["n02/img10.JPEG", "n02/img2.jpeg", "n01/img1.JPEG", "n01/img3.jpg",
                "n01/notes.txt", "n01/.hidden.JPEG", ".cache/img0.JPEG", "n03/deep/img4.JPEG"]:
        _touch(tmp_path / rel)
    (tmp_path / "val_label.txt").write_text("img1.JPEG 0\n")           # beside them: ignored
    images, odd = data.scan_images(tmp_path, layout="class_folders", extensions=(".jpeg",))
    assert [str(p.relative_to(tmp_path)) for p in images] == [
        "n01/img1.JPEG", "n02/img2.jpeg", "n02/img10.JPEG"]
    assert odd == []
    every = data.list_images(tmp_path, layout="class_folders")          # () = any image suffix
    assert [p.name for p in every] == ["img1.JPEG", "img2.jpeg", "img3.jpg", "img10.JPEG"]
    assert [p.name for p in data.list_images(tmp_path, 2, "class_folders")] == [
        "img1.JPEG", "img2.jpeg"]


def test_flat_folders_filter_by_the_recipes_extensions(tmp_path):
    for name in ["a.JPEG", "b.jpeg", "c.jpg", "d.png"]:
        _touch(tmp_path / name)
    assert [p.name for p in data.list_images(tmp_path, extensions=(".jpeg",))] == [
        "a.JPEG", "b.jpeg"]
    assert len(data.list_images(tmp_path)) == 4
    with pytest.raises(data.DataError, match=r"no image files \(.bmp\) found"):
        data.list_images(tmp_path, extensions=(".BMP",))


def test_the_same_key_in_two_class_folders_is_an_error_naming_both(tmp_path):
    _touch(tmp_path / "n01" / "img1.JPEG")
    _touch(tmp_path / "n02" / "img1.JPEG")
    _touch(tmp_path / "n02" / "img2.JPEG")
    with pytest.raises(data.DataError) as e:
        data.list_images(tmp_path, layout="class_folders")
    msg = str(e.value)
    assert msg.startswith(f"{tmp_path}: 1 pair(s) of images have the same key")
    assert "n01/img1.JPEG and n02/img1.JPEG (key 'img1')" in msg and "rename or remove" in msg
    assert len(data.list_images(tmp_path, 1, "class_folders")) == 1    # not among those run


def test_class_folder_problems_are_named(tmp_path):
    """An image outside the class folders, a folder named like an image, a broken link: each
    named with its class folder; no class folder at all says which layout was expected."""
    with pytest.raises(data.DataError, match=r"no image files .* as class folders "
                                             r"\(<class>/<image>\)"):
        data.list_images(tmp_path, layout="class_folders")
    _touch(tmp_path / "loose.JPEG")
    (tmp_path / "n01" / "x.JPEG").mkdir(parents=True)
    (tmp_path / "n01" / "gone.JPEG").symlink_to(tmp_path / "nowhere.JPEG")
    _touch(tmp_path / "n01" / "ok.JPEG")
    with pytest.raises(data.DataError) as e:
        data.list_images(tmp_path, layout="class_folders")
    msg = str(e.value)
    assert "1 image(s) outside the class folders (loose.JPEG)" in msg
    assert "move them into their class folders" in msg
    assert "n01/x.JPEG is a folder" in msg and "n01/gone.JPEG is a symlink to nothing" in msg
    images, odd = data.scan_images(tmp_path, layout="class_folders")
    assert [p.name for p in images] == ["ok.JPEG"] and len(odd) == 3
    with pytest.raises(data.DataError, match="layout 'nested': one of flat, class_folders"):
        data.scan_images(tmp_path, layout="nested")


def test_a_flat_folder_given_to_a_class_folder_recipe_says_so_once(tmp_path):
    for i in range(7):
        _touch(tmp_path / f"img{i}.JPEG")
    with pytest.raises(data.DataError) as e:
        data.list_images(tmp_path, layout="class_folders")
    msg = str(e.value)
    assert msg.startswith(f"{tmp_path}: 7 images lie directly in it and it has no class "
                          f"folders; this recipe (preprocess.layout: class_folders) reads")
    assert "img3.JPEG" not in msg                   # one sentence, not an entry per image
