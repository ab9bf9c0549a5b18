"""Builders for NPU-side files, written from ais_bench's documented formats.

Nothing here is an NPU measurement: the fixtures are synthetic files in the layout
ais_bench writes (Ascend/tools ``ais-bench_workload/tool/ais_bench``, 2023-06), used to
test that zoorepro reads that layout correctly.  The fake ``ais_bench`` package exists
only to exercise the command lines and the kit's script; its timings are made up and
stay inside pytest's temporary folders.
"""
from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import numpy as np

# `npu-smi info` as the recipe's guide prints it.
NPU_SMI_SAMPLE = """\
+-------------------+-----------------+------------------------------------------------------+
| NPU     Name      | Health          | Power(W)     Temp(C)           Hugepages-Usage(page) |
| Chip    Device    | Bus-Id          | AICore(%)    Memory-Usage(MB)                        |
+===================+=================+======================================================+
| 0       310P3     | OK              | 15.8         42                0    / 0              |
| 0       0         | 0000:82:00.0    | 0            1074 / 21534                            |
+===================+=================+======================================================+
| 1       310P3     | OK              | 15.4         43                0    / 0              |
| 0       1         | 0000:89:00.0    | 0            1070 / 21534                            |
+===================+=================+======================================================+
"""


def ranked_scores(label: int, rank: int, classes: int = 1000, offset: int = 0) -> np.ndarray:
    """float32 scores whose class ``label + offset`` sits at 0-based ``rank``.

    Values are multiples of 1/1024 in [0, 1): distinct and exact at ``%f`` precision."""
    target = label + offset
    others = [c for c in range(classes) if c != target]
    order = others[:rank] + [target] + others[rank:]          # best first
    scores = np.empty(classes, dtype=np.float32)
    for pos, c in enumerate(order):
        scores[c] = (classes - pos) / 1024.0
    return scores


def ais_txt(rows: np.ndarray) -> str:
    """ais_bench's TXT: ``reshape(-1, last_dim)``, ``%f`` values each followed by a space."""
    rows = np.asarray(rows)
    rows = rows.reshape(-1, rows.shape[-1])
    return "".join("".join(f"{v:f} " for v in r) + "\n" for r in rows)


def write_output(folder: Path, stem: str, scores: np.ndarray, fmt: str = "TXT",
                 shape: tuple | None = None) -> Path:
    """One ``<stem>_0.<fmt>`` as ais_bench saves an output of ``shape`` (default [1, C])."""
    folder.mkdir(parents=True, exist_ok=True)
    arr = np.asarray(scores, dtype=np.float32).reshape(shape or (1, -1))
    path = folder / f"{stem}_0.{fmt.lower()}"
    if fmt == "TXT":
        path.write_text(ais_txt(arr), encoding="utf-8")
    elif fmt == "NPY":
        np.save(path, arr)
    else:
        arr.tofile(path)
    return path


def time_info(ms: list[float]) -> dict:
    a = np.asarray(ms, dtype=np.float64)
    if a.size == 0:
        return {"min": 0.0, "max": 0.0, "mean": 0.0, "median": 0.0, "percentile(99%)": 0.0,
                "count": 0}
    return {"min": float(a.min()), "max": float(a.max()), "mean": float(a.mean()),
            "median": float(np.median(a)), "percentile(99%)": float(np.percentile(a, 99)),
            "count": int(a.size)}


def summary(args: list[str], npu_ms: list[float], batch_size: int, h2d_ms=(), d2h_ms=(),
            filesinfo: dict | None = None) -> dict:
    """A ``<dirname>_summary.json`` with ais_bench's keys (Summary.report)."""
    mean = float(np.mean(npu_ms)) if npu_ms else 0.0
    return {"filesinfo": filesinfo or {}, "args": args,
            "NPU_compute_time": time_info(npu_ms), "H2D_latency": time_info(list(h2d_ms)),
            "D2H_latency": time_info(list(d2h_ms)),
            "throughput": 1000 * batch_size / mean if mean else 0,
            "npu_compute_time_list": list(npu_ms), "pid": 4242}


def write_summary(path: Path, obj: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


def accuracy_args(bs: int, input_dir: str = "prep_dataset", output: str = "result") -> list[str]:
    return ["/usr/local/lib/python3.7/site-packages/ais_bench/__main__.py",
            f"--model=squeezenet1_1_bs{bs}.om", f"--batchsize={bs}", "--input", input_dir,
            "--output", output, "--output_dirname", f"result_bs{bs}", "--outfmt", "TXT",
            "--device", "1"]


def perf_args(bs: int) -> list[str]:
    return ["/usr/local/lib/python3.7/site-packages/ais_bench/__main__.py",
            f"--model=squeezenet1_1_bs{bs}.om", "--loop=50", f"--batchsize={bs}",
            "--device", "1", "--output", "perf", "--output_dirname", f"perf_bs{bs}"]


# ------------------------------------------------------------ fake ais_bench
_FAKE_MAIN = r'''
"""FAKE ais_bench for tests: same CLI and output layout, made-up numbers, no NPU."""
import argparse, json, os, re, sys

p = argparse.ArgumentParser()
p.add_argument("--model", "-m", required=True)
p.add_argument("--input", "-i")
p.add_argument("--output", "-o")
p.add_argument("--output_dirname")
p.add_argument("--outfmt", default="BIN", choices=["NPY", "BIN", "TXT"])
p.add_argument("--loop", "-l", type=int, default=1)
p.add_argument("--batchsize", type=int)
p.add_argument("--device", "-d", default="0")
a = p.parse_args()
if not os.path.isfile(a.model):
    sys.exit("fake ais_bench: model %s not found" % a.model)
bs = a.batchsize
prefix = os.path.join(a.output, a.output_dirname) if a.output else None
if prefix:
    os.makedirs(prefix, exist_ok=True)
labels = {}
if os.environ.get("FAKE_AIS_LABELS"):
    for line in open(os.environ["FAKE_AIS_LABELS"]):
        if line.strip():
            k, v = line.split()
            labels[k.split(".")[0]] = int(v)
def nkey(s):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", s)]
files = []
if a.input:
    files = sorted((f for f in os.listdir(a.input) if f.lower().endswith((".bin", ".npy"))), key=nkey)
    if a.outfmt != "TXT":
        sys.exit("fake ais_bench writes TXT only")
    for i, f in enumerate(files):
        stem = f.split(".")[0]
        label = labels.get(stem, 0)
        top = label if i % 2 == 0 else (label + 1) % 1000   # even: right; odd: label second
        row = [0.0] * 1000
        row[label] = 1.0
        row[top] = 2.0
        with open(os.path.join(prefix, "%s_0.txt" % stem), "w") as fh:
            fh.write("".join("%f " % v for v in row) + "\n")
    runs = (len(files) + bs - 1) // bs
elif prefix:
    with open(os.path.join(prefix, "pure_infer_data_0.bin"), "wb") as fh:
        fh.write(b"\0" * 4000 * bs)
    runs = 1
else:
    runs = 1
times = [0.1 + 0.01 * bs] * (runs * a.loop)     # made up: this is not an NPU
mean = sum(times) / len(times)
info = lambda t: {"min": min(t), "max": max(t), "mean": sum(t) / len(t), "median": sorted(t)[len(t) // 2],
                  "percentile(99%)": max(t), "count": len(t)}
print("[INFO] throughput 1000*batchsize.mean(%s)/NPU_compute_time.mean(%s): %s" % (bs, mean, 1000 * bs / mean))
if prefix:
    s = {"filesinfo": {}, "args": sys.argv, "NPU_compute_time": info(times),
         "H2D_latency": info([0.05]), "D2H_latency": info([0.02]), "throughput": 1000 * bs / mean,
         "npu_compute_time_list": times, "pid": os.getpid()}
    with open(prefix + "_summary.json", "w") as fh:
        json.dump(s, fh)
'''

_FAKE_INTERFACE = r'''
"""FAKE ais_bench.infer.interface for tests (no NPU): records calls, returns zeros."""
import numpy as np

CALLS = []


class InferSession:
    def __init__(self, device_id, model_path, acl_json_path=None, debug=False, loop=1):
        CALLS.append(("init", device_id, model_path))
        self.device_id, self.model_path = device_id, model_path

    def infer(self, feeds, mode="static", custom_sizes=100000):
        x = feeds[0]
        CALLS.append(("infer", x.shape, str(x.dtype)))
        out = np.zeros((x.shape[0], 1000), dtype=np.float32)
        out[:, 7] = 1.0
        return [out]

    def finalize(self):
        CALLS.append(("finalize",))
'''


def write_fake_ais_bench(root: Path) -> Path:
    """A FAKE ``ais_bench`` package under ``root`` (put ``root`` on PYTHONPATH)."""
    pkg = root / "ais_bench"
    (pkg / "infer").mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text('"""FAKE ais_bench for tests."""\n')
    (pkg / "__main__.py").write_text(textwrap.dedent(_FAKE_MAIN))
    (pkg / "infer" / "__init__.py").write_text("")
    (pkg / "infer" / "interface.py").write_text(textwrap.dedent(_FAKE_INTERFACE))
    return root


def write_fake_tools(bin_dir: Path) -> Path:
    """FAKE ``npu-smi`` (prints the guide's sample) and ``atc`` (writes an empty .om)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    smi = bin_dir / "npu-smi"
    smi.write_text("#!/bin/sh\n# FAKE npu-smi for tests\ncat <<'EOF'\n" + NPU_SMI_SAMPLE + "EOF\n")
    atc = bin_dir / "atc"
    atc.write_text("#!/bin/sh\n# FAKE atc for tests: writes <output>.om, logs its argv\n"
                   'echo "fake atc $*" >> "${FAKE_ATC_LOG:-/dev/null}"\n'
                   'for a in "$@"; do case "$a" in --output=*) : > "${a#--output=}.om";; esac; done\n')
    for f in (smi, atc):
        os.chmod(f, 0o755)
    return bin_dir
