"""Atomic writes: a failed write names the path and the real cause; long names fit."""
import resource

import pytest

from zoorepro import files
from zoorepro.errors import WriteError, ZooreproError


def test_a_name_that_fits_is_not_refused_for_its_temporary_name(tmp_path):
    name = "n" * 246 + ".bin"            # 250 bytes: fits; ".<name>.<pid>.<n>.part" would not
    path = files.atomic_write_bytes(tmp_path / name, b"x")
    assert path.read_bytes() == b"x" and [p.name for p in tmp_path.iterdir()] == [name]


def test_a_write_over_the_file_size_limit_names_the_path_and_the_cause(tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))   # Python ignores SIGXFSZ: EFBIG
    try:
        with pytest.raises(WriteError) as e:
            files.atomic_write_bytes(tmp_path / "big.bin", b"\0" * 10_000)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    msg = str(e.value)
    assert isinstance(e.value, ZooreproError) and isinstance(e.value, OSError)
    assert str(tmp_path / "big.bin") in msg and "file too large" in msg and "ulimit" in msg
    assert list(tmp_path.iterdir()) == []                   # no .part left behind


def test_write_errors_translate_each_cause():
    import errno
    for code, words in ((errno.ENOSPC, "disk full"), (errno.EROFS, "read-only"),
                        (errno.EACCES, "permission denied")):
        err = files.write_error("/x/y.bin", OSError(code, "raw"))
        assert str(err).startswith("/x/y.bin: cannot be written: ") and words in str(err)
        assert err.errno == code and err.filename == "/x/y.bin"


def test_links_outside_names_only_links_leaving_the_folder(tmp_path):
    inside, outside = tmp_path / "in", tmp_path / "out"
    inside.mkdir()
    outside.mkdir()
    (outside / "a_0.txt").write_text("x")
    (inside / "b_0.txt").write_text("x")
    (inside / "a_0.txt").symlink_to(outside / "a_0.txt")
    (inside / "c_0.txt").symlink_to(inside / "b_0.txt")       # a link inside: fine
    found = files.links_outside(inside, sorted(inside.iterdir()))
    assert found == [f"a_0.txt -> {outside / 'a_0.txt'}"]


def test_read_json_refuses_a_file_over_its_limit_before_reading(tmp_path):
    from zoorepro.errors import DataError
    p = tmp_path / "big.json"
    p.write_text('{"a": "' + "x" * 100 + '"}')
    assert files.read_json(p, max_bytes=1000) == {"a": "x" * 100}
    with pytest.raises(DataError, match=r"big\.json: 109 bytes, more than such a file ever "
                                         r"holds \(50\)"):
        files.read_json(p, max_bytes=50)


@pytest.mark.parametrize("text,want", [
    ("10", 10), ("-3", -3), ("+0", 0), ("0", 0), ("1e-1", 0.1), ("2e0", 2.0), ("1E3", 1000.0),
    (".5", 0.5), ("-1.5e+2", -150.0), ("1.", 1.0), (".inf", float("inf")),
    ("-.Inf", float("-inf")), ("true", True), ("FALSE", False), ("null", None), ("~", None),
    ("", None), ("010", "010"), ("0x10", "0x10"), ("0o10", "0o10"), ("1:30", "1:30"),
    ("1_000", "1_000"), ("yes", "yes"), ("no", "no"), ("on", "on"), ("off", "off"),
    ("y", "y"), ("2024-01-01", "2024-01-01"), ("'010'", "010"),
])
def test_load_yaml_reads_yaml_1_2_core_scalars(text, want):
    """YAML 1.1 (PyYAML's safe_load) read 010 as 8, 0x10 as 16, 1:30 as 90, yes as true and
    1e-1 as a string."""
    got = files.load_yaml(f"k: {text}\n")["k"]
    assert got == want and type(got) is type(want), (text, got)
    assert files.load_yaml(f"- {text}\n")[0] == want


def test_load_yaml_reads_nan_and_refuses_1_1_spellings_under_explicit_tags():
    import math

    import yaml
    assert math.isnan(files.load_yaml("k: .nan")["k"])
    assert files.load_yaml("k: !!int 12")["k"] == 12
    for text in ("!!int 010", "!!int 0x10", "!!float 1:30", "!!bool yes", "!!int 1_0"):
        with pytest.raises(yaml.YAMLError, match="YAML 1.2"):
            files.load_yaml(f"k: {text}\n")


def test_dump_yaml_quotes_every_string_that_reads_back_as_another_type():
    import yaml
    values = {"a": "1e3", "b": "1.5e3", "c": "yes", "d": "010", "e": "null", "f": "",
              "g": 0.2, "h": 1e-05, "i": 3, "j": True, "k": None, "l": float("inf"),
              "m": "2024-01-01", "n": ["1E3", 8]}
    text = files.dump_yaml(values)
    assert files.load_yaml(text) == values and yaml.safe_load(text) == values
