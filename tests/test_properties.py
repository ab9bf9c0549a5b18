"""Property-based tests over every reader of outside input: ``val_label.txt``, params YAML,
ais_bench TXT/NPY/BIN outputs and summaries, ``aipp.config`` and the kit's ``kit.json``.
Whatever the bytes, a reader gives a result or one of zoorepro's errors (a ZooreproError
naming the file): never a traceback, never a hang.

Inputs are random and also near-valid (a real file with one part replaced), so that the
checks past the first line are reached. How many examples each test draws is the hypothesis
profile's (tests/conftest.py: 'ci' 100 for 'make test', 'dev' 10 for 'make quick')."""
from __future__ import annotations

import json
import math
import signal
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from zoorepro.recipe import aipp, data
from zoorepro.ascend import aisformat, ingest
from zoorepro.backends import bench
from zoorepro import config
from zoorepro.errors import ZooreproError

from conftest import AIPP_CONFIG
from npu_fixtures import perf_args, summary

WORK = Path(tempfile.mkdtemp(prefix="zoorepro-properties-"))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner,
                                                                 max_size=5),
    max_leaves=20)


def write(name: str, content: bytes | str) -> Path:
    path = WORK / name
    path.write_bytes(content.encode("utf-8", "surrogatepass") if isinstance(content, str)
                     else content)
    return path


HANG_S = 20   # one read of a small file taking this long is a hang


def _hang(signum, frame):
    raise TimeoutError(f"a reader took more than {HANG_S} s: a hang")


def result_or_our_error(fn, *args):
    old = signal.signal(signal.SIGALRM, _hang)
    signal.alarm(HANG_S)
    try:
        return fn(*args)
    except ZooreproError as exc:
        assert str(exc), "an error without a message"
        return None
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# ------------------------------------------------------------ val_label.txt
label_lines = st.lists(st.one_of(
    st.tuples(st.text(max_size=12), st.sampled_from([" ", "\t", "  "]),
              st.one_of(st.integers(-5, 1005).map(str), st.text(max_size=4)))
    .map(lambda t: "".join(t)),
    st.text(max_size=30)), max_size=8).map("\n".join)


@given(st.one_of(st.binary(max_size=200), label_lines,
                 label_lines.map(lambda t: "\ufeff" + t),
                 label_lines.map(lambda t: t.encode("utf-16"))))
def test_label_files(content):
    if isinstance(content, str) and any(0xD800 <= ord(c) <= 0xDFFF for c in content):
        content = content.encode("utf-8", "surrogatepass")
    labels = result_or_our_error(data.read_labels, write("val_label.txt", content))
    if labels is not None:
        assert labels and all(isinstance(k, str) and 0 <= v < 1000 for k, v in labels.items())


# ------------------------------------------------------------ params YAML
yaml_scalars = st.one_of(st.integers(), st.floats(), st.booleans(), st.none(),
                         st.text(max_size=15), st.just(".inf"), st.just(".nan"),
                         st.just("*alias"), st.just("&a [1, *a]"),
                         st.just("!!python/object:os.system"))
yaml_values = st.one_of(yaml_scalars, st.lists(yaml_scalars, max_size=4).map(
    lambda xs: "[" + ", ".join(json.dumps(x) if not isinstance(x, str) else x for x in xs) + "]"))


@given(st.one_of(
    st.text(max_size=200),
    st.dictionaries(st.sampled_from(config.FIELD_NAMES + ("unknown", "1")), yaml_values,
                    max_size=6).map(
        lambda d: "".join(f"{k}: {v if isinstance(v, str) else json.dumps(v)}\n"
                          for k, v in d.items()))))
def test_params_yaml(text):
    path = write("params.yaml", text.encode("utf-8", "surrogatepass"))
    cfg = result_or_our_error(lambda: config.load(path, check_paths=False))
    if cfg is not None:
        assert isinstance(cfg, config.RunConfig) and max(cfg.batch_sizes) <= 4096
        assert math.isfinite(cfg.bench_min_seconds) and cfg.bench_min_seconds <= 3600


@given(st.sampled_from(config.FIELD_NAMES), st.text(max_size=40))
def test_params_overrides(key, text):
    k, value = config.parse_override(key, text)
    result_or_our_error(lambda: config.load(None, {k: value}, check_paths=False))


@given(st.dictionaries(st.one_of(st.sampled_from(config.FIELD_NAMES), st.text(max_size=5)),
                       json_values, max_size=6))
def test_params_from_any_mapping(raw):
    result_or_our_error(lambda: config.from_mapping(raw, check_paths=False))


# ------------------------------------------------------------ ais_bench outputs
def txt_of(scores) -> str:
    return "".join(f"{v:f} " for v in scores) + "\n"


@given(st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300),
    st.lists(st.floats(width=32), min_size=1000, max_size=1001).map(txt_of),
    st.tuples(st.lists(st.floats(0, 1, width=32), min_size=1000, max_size=1000),
              st.integers(0, 999), st.text(max_size=8)).map(
        lambda t: txt_of(t[0]).replace(f"{t[0][t[1]]:f}", t[2], 1))))
def test_txt_outputs(content):
    if isinstance(content, str):
        content = content.encode("utf-8", "surrogatepass")
    vec = result_or_our_error(aisformat.read_prediction, write("img_0.txt", content))
    if vec is not None:
        assert vec.dtype == np.float32 and vec.size in aisformat.CLASSES


@given(st.one_of(
    st.binary(max_size=5000),
    st.sampled_from([np.float32, np.float16, np.int8, np.float64, np.complex64, "U3",
                     bool]).flatmap(
        lambda dt: st.integers(0, 1100).map(lambda n: np.zeros((1, n), dtype=dt))),
))
def test_npy_and_bin_outputs(content):
    import io
    if isinstance(content, np.ndarray):
        buf = io.BytesIO()
        np.save(buf, content)
        npy, raw = buf.getvalue(), content.tobytes()
    else:
        npy = raw = content
    for name, blob in (("img_0.npy", npy), ("img_0.bin", raw)):
        vec = result_or_our_error(aisformat.read_prediction, write(name, blob))
        if vec is not None:
            assert vec.dtype == np.float32 and vec.size in aisformat.CLASSES


# ------------------------------------------------------------ ais_bench summaries
SUMMARY_KEYS = ("NPU_compute_time", "H2D_latency", "D2H_latency", "throughput",
                "npu_compute_time_list", "args", "batchsize")
STAT_FIELDS = ("min", "max", "mean", "median", "percentile(99%)", "count")


def read_and_use(path: Path):
    s = aisformat.read_summary(path)
    times, mean, _ = aisformat.compute_times(s, path)
    bs = aisformat.summary_batch_size(s, path)
    rec = bench.bench_record(s, path, "npu: test")
    assert 1 <= bs <= 65536 and rec["batch_size"] == bs
    assert mean is None or (math.isfinite(mean) and mean > 0)
    assert rec["throughput"] is None or (math.isfinite(rec["throughput"]) and rec["throughput"] > 0)
    assert all(math.isfinite(t) and t >= 0 for t in times)


@given(st.one_of(
    json_values,
    st.dictionaries(st.sampled_from(SUMMARY_KEYS), json_values, max_size=4),
    st.tuples(st.sampled_from(SUMMARY_KEYS[:3]), st.sampled_from(STAT_FIELDS), json_values),
    st.lists(st.one_of(st.floats(), st.integers(), st.text(max_size=3),
                       st.lists(st.floats(), max_size=3)), max_size=6),
))
def test_summaries(change):
    base = summary(perf_args(8), [0.4, 0.5, 0.45], 8, [0.1], [0.1])
    if isinstance(change, tuple):                   # one statistic replaced
        base[change[0]][change[1]] = change[2]
        obj = base
    elif isinstance(change, dict):                  # some keys replaced
        obj = {**base, **change}
    elif isinstance(change, list):                  # the time list replaced
        obj = {**base, "npu_compute_time_list": change}
    else:
        obj = change
    path = write("perf_bs8_summary.json", json.dumps(obj))
    result_or_our_error(read_and_use, path)


@given(st.binary(max_size=200))
def test_summary_bytes(raw):
    result_or_our_error(read_and_use, write("perf_bs8_summary.json", raw))


# ------------------------------------------------------------ aipp.config
AIPP_TEXT = AIPP_CONFIG.read_text()
AIPP_LINES = AIPP_TEXT.splitlines()


@given(st.one_of(
    st.text(max_size=300),
    st.tuples(st.integers(0, len(AIPP_LINES) - 1), st.text(max_size=30)).map(
        lambda t: "\n".join(AIPP_LINES[:t[0]] + [t[1]] + AIPP_LINES[t[0] + 1:])),
    st.tuples(st.integers(0, len(AIPP_LINES) - 1), st.text(max_size=12)).map(
        lambda t: "\n".join(AIPP_LINES[:t[0]] + [AIPP_LINES[t[0]].split(":")[0] + ": " + t[1]]
                            + AIPP_LINES[t[0] + 1:])),
))
def test_aipp_config(text):
    a = result_or_our_error(aipp.load, write("aipp.config", text.encode("utf-8", "surrogatepass")))
    if a is not None:
        assert all(math.isfinite(v) for v in (*a.mean, *a.min, *a.var_reci))
        result_or_our_error(a.check_model_input, 224, 224)   # the default recipe's network


# ------------------------------------------------------------ kit.json
@given(st.one_of(json_values, st.dictionaries(st.sampled_from(sorted(ingest.MANIFEST_TYPES)),
                                              json_values, max_size=4)))
def test_kit_manifest(obj):
    man = result_or_our_error(ingest.read_manifest, write("kit.json", json.dumps(obj)))
    if man is not None:
        for key, kind in ingest.MANIFEST_TYPES.items():
            assert man.get(key) is None or isinstance(man[key], kind)


@pytest.mark.parametrize("reader,name", [(data.read_labels, "val_label.txt"),
                                         (aisformat.read_summary, "s_summary.json"),
                                         (aipp.load, "aipp.config"),
                                         (ingest.read_manifest, "kit.json")])
def test_deep_nesting_is_an_error_not_a_recursion_traceback(reader, name):
    result_or_our_error(reader, write(name, "[" * 100_000 + "]" * 100_000))
