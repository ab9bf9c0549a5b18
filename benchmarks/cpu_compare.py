"""zoorepro's CPU path against what a user would pick instead, interleaved in one process tree.

    .venv/bin/python benchmarks/cpu_compare.py [--rounds 5] [--images 256] [--copies 4] \
        [--recipe squeezenet1_1] [--weights PTH] [--calibration 32]

Every recipe fact (model, weights, preprocessing, AIPP config, input name, normalisation)
comes from the recipe (default: recipebook.DEFAULT, SqueezeNet 1.1 with its demo weights).
Inference (same weights, same real preprocessed demo images, img/s = images /
wall time of the inference call, including whatever input conversion the contender needs):
  * zoorepro      the default CPU backend: ONNX Runtime on the AIPP model, uint8 NHWC input
  * zoorepro-streams  the same model as the accuracy run uses it: one single-threaded
                  session per physical core, each inferring its own batch at the same time
  * zoorepro-int8 (and zoorepro-int8-streams)  the same backend with precision int8: the
                  QDQ model zoorepro.recipe.quantize.build_int8 makes of the AIPP model,
                  calibrated on --calibration of the demo images (chosen as a run chooses
                  them); top-1 of fp32 and int8 on the demo images is printed with it
  * ort-default   ONNX Runtime with default SessionOptions on the plain exported ONNX,
                  normalisation done on the host with numpy (what the recipe's float model needs)
  * torch-eager   the recipe's model in PyTorch eager, normalisation with torch
  * openvino      OpenVINO on the AIPP model (only when `pip install openvino` was done)
Preprocessing (the recipe's exact bytes; demo images copied --copies times):
  * pil-1proc     plain PIL (or the recipe's OpenCV decoder) loop in one process
  * pil-allcores  the same function mapped over a multiprocessing.Pool of all cores
  * zoorepro      zoorepro.recipe.preprocess.preprocess_folder (pool, atomic writes, failure report)
Every round runs every contender once: batch sizes in a shuffled order, and for each the
contenders back to back in a shuffled order.  The tables show the median over rounds (best
round in brackets) and paired ratios: the median over rounds of the ratio within a round
(its range in brackets), which cancels most of a noisy machine's drift.  Prints Markdown.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))

from zoorepro.recipe import aipp, data, export, preprocess, quantize  # noqa: E402
from zoorepro import backends, host, recipebook  # noqa: E402
from zoorepro.recipe.weights import build_model  # noqa: E402

BATCHES = (1, 4, 8, 16, 32, 64)
DEMO = ROOT / "demo" / "imagenet-sample-100" / "images"
DEMO_LABELS = DEMO.parent / "val_label.txt"


# ------------------------------------------------------------------ inference
def contenders(recipe, weights: str, tmp: Path, threads: int, bins: list[Path],
               calibration: int):
    import onnxruntime as ort
    import torch
    plain = export.export_onnx(recipe, weights, tmp / export.onnx_name(recipe))
    a = aipp.load(recipe.aipp_path)
    fused = export.build_aipp_model(recipe, plain, a, tmp / export.aipp_onnx_name(recipe))
    chosen = [bins[i] for i in quantize.select_calibration([b.name for b in bins], calibration)]
    q = quantize.build_int8(fused, chosen, a.input_shape, tmp, Path(fused).stem)
    print(f"# int8 model built in {q['seconds']:.1f} s, calibrated on {len(chosen)} demo "
          f"images ({chosen[0].stem} ... {chosen[-1].stem})", file=sys.stderr)
    arts = backends.Artifacts(aipp_onnx=str(fused), int8_onnx=q["model"], weights=weights,
                              aipp_config=recipe.aipp_path, recipe=recipe)
    ours = backends.create("onnxruntime", arts, device="cpu", threads=threads)
    int8 = backends.create("onnxruntime", arts, device="cpu", threads=threads,
                           precision="int8")
    out = {"zoorepro": ours.infer, "zoorepro-int8": int8.infer}
    if ours.auto_streams() > 1:
        out["zoorepro-streams"] = streams_infer(ours)
        out["zoorepro-int8-streams"] = streams_infer(int8)

    # what the framework does on the host: the network's centre crop of the .bin images
    # (when the recipe's AIPP crops), / 255, then (x - mean) / std
    pre, size = recipe.preprocess, recipe.model.size
    top, left = (int(round((d - size) / 2.0)) for d in a.input_shape[:2])
    default = ort.InferenceSession(str(plain), providers=["CPUExecutionProvider"])
    mean = (np.asarray(pre.mean, np.float32) * 255).reshape(1, 1, 1, 3)
    scale = (1.0 / (np.asarray(pre.std, np.float32) * 255)).reshape(1, 1, 1, 3)

    def ort_default(x):
        x = x[:, top:top + size, left:left + size]
        xf = np.ascontiguousarray(((x.astype(np.float32) - mean) * scale).transpose(0, 3, 1, 2))
        return default.run(None, {recipe.model.input: xf})[0]
    out["ort-default"] = ort_default

    torch.set_num_threads(threads)
    net = build_model(recipe, weights)
    tm = torch.tensor(pre.mean).view(1, 3, 1, 1)
    ts = torch.tensor(pre.std).view(1, 3, 1, 1)

    def torch_eager(x):
        with torch.inference_mode():
            t = torch.from_numpy(x[:, top:top + size, left:left + size]).permute(0, 3, 1, 2)
            return net(t.float().div(255).sub(tm).div(ts)).numpy()
    out["torch-eager"] = torch_eager
    try:
        out["openvino"] = openvino_infer(fused, threads)
    except ImportError:
        print("# openvino skipped: pip install openvino to include it", file=sys.stderr)
    return out, q


def top1(fn, bins: list[Path], shape: tuple, labels: dict) -> float:
    """Top-1 (%) of ``fn`` on the labelled ``.bin`` images, 10 at a time."""
    y = np.array([labels[data.image_key(b.name)] for b in bins])
    x = np.stack([np.fromfile(b, np.uint8).reshape(shape) for b in bins])
    pred = np.concatenate([fn(x[i:i + 10]) for i in range(0, len(x), 10)]).argmax(1)
    return 100.0 * float((pred == y).mean())


def streams_infer(ours):
    """zoorepro's accuracy-run path: one single-threaded session per physical core, each
    inferring its own batch concurrently; one call = one batch per stream."""
    from concurrent.futures import ThreadPoolExecutor
    reps = ours.replicas(ours.auto_streams())
    pool = ThreadPoolExecutor(len(reps))

    def fn(x):
        return list(pool.map(lambda r: r.infer(x), reps))[0]
    fn.batches_per_call = len(reps)
    return fn


def openvino_infer(model_path: Path, threads: int):
    """OpenVINO (latency hint, fp32) on the same AIPP model.  Evaluated as a candidate CPU
    backend; it did not beat ONNX Runtime at any batch size here (benchmarks/README.md), so
    zoorepro does not ship it as a backend."""
    import openvino as ov
    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(model_path)), "CPU", {
        "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads,
        "INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    output = compiled.output(0)
    return lambda x: np.asarray(request.infer({0: x})[output])


def time_infer(fn, x: np.ndarray, images: int) -> float:
    """img/s over at least ``images`` images (at least 3 calls), after one warm-up call."""
    per_call = x.shape[0] * getattr(fn, "batches_per_call", 1)
    iterations = max(3, images // per_call)
    fn(x)
    t0 = time.perf_counter()
    for _ in range(iterations):
        fn(x)
    return iterations * per_call / (time.perf_counter() - t0)


# -------------------------------------------------------------- preprocessing
def plain_pil(args):
    """The recipe's preprocessing written plainly: decode (PIL, or cv2.imread for an OpenCV
    recipe), shorter side to ``resize``, centre crop ``crop``, raw bytes."""
    src, dst, spec = args
    from PIL import Image
    if spec.decoder == "opencv":
        import cv2
        img = Image.fromarray(cv2.cvtColor(cv2.imread(src), cv2.COLOR_BGR2RGB))
    else:
        img = Image.open(src).convert("RGB")
    r, c = spec.resize, spec.crop
    w, h = img.size
    if not ((w <= h and w == r) or (h <= w and h == r)):
        img = img.resize((r, int(r * h / w)) if w < h else (int(r * w / h), r),
                         preprocess.FILTERS[spec.interpolation])
    w, h = img.size
    top, left = int(round((h - c) / 2.0)), int(round((w - c) / 2.0))
    img = img.crop((left, top, left + c, top + c))
    with open(dst, "wb") as fh:
        fh.write(np.asarray(img, dtype=np.uint8).tobytes())


def pre_contenders(images: list[Path], tmp: Path, spec):
    def jobs(name):
        d = tmp / name
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()
        return [(str(p), str(d / f"{p.stem}.bin"), spec) for p in images]

    def one_proc():
        for j in jobs("p1"):
            plain_pil(j)

    def all_cores():
        with mp.Pool(os.cpu_count()) as pool:
            pool.map(plain_pil, jobs("pall"), chunksize=8)

    def ours():
        d = tmp / "ours"
        shutil.rmtree(d, ignore_errors=True)
        r = preprocess.preprocess_folder(images, d, spec, workers=0, progress=False)
        assert not r.failed and r.written == len(images)
    return {"pil-1proc": one_proc, "pil-allcores": all_cores, "zoorepro": ours}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--images", type=int, default=256, help="images per inference measurement")
    ap.add_argument("--copies", type=int, default=4, help="copies of the 100 demo images")
    ap.add_argument("--threads", type=int, default=0, help="inference threads (0: physical cores)")
    ap.add_argument("--recipe", default=recipebook.DEFAULT,
                    help=f"a shipped recipe or a recipe folder (default {recipebook.DEFAULT})")
    ap.add_argument("--weights", help="the model's state_dict (default: the recipe's)")
    ap.add_argument("--calibration", type=int, default=32,
                    help="demo images the int8 model is calibrated on (default 32)")
    args = ap.parse_args()
    recipe = recipebook.load(args.recipe)
    weights = args.weights or recipe.default_weights()
    if not weights:
        ap.error(f"recipe {recipe.name} has no default weights: give --weights "
                 f"({recipe.weights.hint})")
    spec = recipe.preprocess
    threads = args.threads or host.physical_cores()
    rng = random.Random(0)
    tmp = Path(tempfile.mkdtemp(prefix="zoorepro-bench-"))
    src = tmp / "images"
    src.mkdir()
    demo = data.list_images(DEMO, extensions=spec.extensions)   # a flat folder
    for c in range(args.copies):
        for p in demo:
            shutil.copyfile(p, src / f"c{c}_{p.name}")
    images = data.list_images(src, extensions=spec.extensions)
    arrays = [preprocess.preprocess_array(p, spec) for p in demo]
    samples = np.stack(arrays[:64])
    (tmp / "bin").mkdir()
    bins = []
    for p, arr in zip(demo, arrays):       # the demo's .bin files: int8 calibration, top-1
        bins.append(tmp / "bin" / f"{p.stem}.bin")
        arr.tofile(bins[-1])
    inf, q = contenders(recipe, weights, tmp, threads, bins, args.calibration)
    pre = pre_contenders(images, tmp, spec)
    # correctness first: same bytes, same predictions
    for fn in pre.values():
        fn()
    ref = (tmp / "p1")
    for name in ("pall", "ours"):
        for b in ref.iterdir():
            assert (tmp / name / b.name).read_bytes() == b.read_bytes(), (name, b.name)
    top = {k: fn(samples[:8]).argmax(1).tolist() for k, fn in inf.items()}
    assert all(v == top["zoorepro"] for k, v in top.items() if "int8" not in k), top
    assert top.get("zoorepro-int8-streams", top["zoorepro-int8"]) == top["zoorepro-int8"], top
    labels = data.read_labels(DEMO_LABELS)
    accuracy = {k: top1(inf[k], bins, arrays[0].shape, labels)
                for k in ("zoorepro", "zoorepro-int8")}

    speeds: dict = {}
    for _ in range(args.rounds):
        # paired design: within a round, the contenders of one batch size (or the three
        # preprocessing contenders) run back to back in a shuffled order, so their ratio is
        # taken over the same few seconds of this machine's drifting speed
        groups = [[(k, bs) for k in inf] for bs in BATCHES] + [[(k, None) for k in pre]]
        rng.shuffle(groups)
        order = []
        for g in groups:
            rng.shuffle(g)
            order += g
        for name, bs in order:
            if bs is None:
                t0 = time.perf_counter()
                pre[name]()
                speeds.setdefault(("pre", name, None), []).append(
                    len(images) / (time.perf_counter() - t0))
            else:
                x = np.ascontiguousarray(samples[np.arange(bs) % len(samples)])
                speeds.setdefault(("inf", name, bs), []).append(
                    time_infer(inf[name], x, args.images))
    med = {k: statistics.median(v) for k, v in speeds.items()}

    def paired(a, b, kind, bs):
        """Median over rounds of the per-round ratio a/b, and its range."""
        r = [x / y for x, y in zip(speeds[(kind, a, bs)], speeds[(kind, b, bs)])]
        return f"{statistics.median(r):.2f}x ({min(r):.2f}-{max(r):.2f})"
    best = {k: max(v) for k, v in speeds.items()}
    spread = {k: (max(v) - min(v)) / statistics.median(v) for k, v in speeds.items()}

    import onnxruntime
    import torch
    import PIL
    print(f"Recipe: {recipe.title} ({recipe.name}), weights {Path(weights).name}.  "
          f"Machine: {platform.processor() or platform.machine()} / {host.cpu_name()}, "
          f"{os.cpu_count()} logical cores, {host.physical_cores()} physical; Python "
          f"{platform.python_version()}; onnxruntime {onnxruntime.__version__}, torch "
          f"{torch.__version__}, Pillow {PIL.__version__}; {threads} inference threads; "
          f"{args.rounds} interleaved rounds, median shown (±spread = (max-min)/median).\n")
    names = [k for k in inf]
    ours = [n for n in ("zoorepro", "zoorepro-streams") if n in inf]
    ratios = [(a, b) for a in ours for b in ("ort-default", "torch-eager")]
    ratios += [(a.replace("zoorepro", "zoorepro-int8"), a) for a in ours]
    print("| batch | " + " | ".join(f"{n} img/s (best)" for n in names) + " | " +
          " | ".join(f"{a} / {b}, paired (range)" for a, b in ratios) + " |")
    print("|" + "---|" * (len(names) + 1 + len(ratios)))
    for bs in BATCHES:
        cells = [f"{med[('inf', n, bs)]:.1f} ±{100 * spread[('inf', n, bs)]:.0f}% "
                 f"({best[('inf', n, bs)]:.1f})"
                 for n in names]
        cells += [paired(a, b, "inf", bs) for a, b in ratios]
        print(f"| {bs} | " + " | ".join(cells) + " |")
    print(f"\nint8: {q['method']}  Calibrated on {q['calibration_images']} of the {len(bins)} "
          f"demo images (quantize.select_calibration: evenly spaced over the sorted names); "
          f"built in {q['seconds']:.1f} s.  Top-1 on the {len(bins)} demo images: fp32 "
          f"{accuracy['zoorepro']:.1f} %, int8 {accuracy['zoorepro-int8']:.1f} % "
          f"({accuracy['zoorepro-int8'] - accuracy['zoorepro']:+.1f} pt).")
    print(f"\nPreprocessing, {len(images)} images (bytes identical across all three):\n")
    print("| contender | img/s median (best) | zoorepro / contender, paired (range) |")
    print("|---|---|---|")
    for n in pre:
        v, vb = med[("pre", n, None)], best[("pre", n, None)]
        print(f"| {n} | {v:.1f} ±{100 * spread[('pre', n, None)]:.0f}% ({vb:.1f}) | "
              f"{paired('zoorepro', n, 'pre', None)} |")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
