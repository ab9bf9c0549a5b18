"""Batch-size sweep of the torch backend on a CUDA GPU (run where one is lent).

    PYTHONPATH=lib python3 benchmarks/gpu_sweep.py --out DIR [--quick] \
        [--recipe squeezenet1_1] [--weights PTH]

Uses the demo images shipped in the repo and the recipe's model, weights (default: the
recipe's, SqueezeNet 1.1's demo weights), preprocessing and AIPP config (default recipe:
recipebook.DEFAULT).  For each precision (fp32, fp16) it
reports, per batch size:
  * ``infer`` img/s: zoorepro's TorchBackend.infer -- uint8 batch from host memory, AIPP and
    the network on the GPU, logits back to host (synchronous); the definition zoorepro uses
    for every backend (wall time around one inference call);
  * ``device`` img/s: the same network on a batch already resident on the GPU, timed with
    CUDA events (closest to ais_bench's NPU_compute_time, which excludes H2D/D2H);
  * ``graph`` img/s: as ``device`` but replaying a captured CUDA graph (launch overhead
    removed) -- an upper bound of what this GPU does with this model in eager PyTorch.
It also scores the 100 demo images through the backend (with the recipe's demo weights fp32
must give the recipe's expected figures: 65 % / 87 % for SqueezeNet 1.1).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))

from zoorepro import backends, recipebook  # noqa: E402
from zoorepro.backends import bench  # noqa: E402
from zoorepro.recipe import aipp, data, evaluate, preprocess  # noqa: E402

BATCHES = (1, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


def device_time(backend, x_gpu, iters: int, graph: bool) -> float:
    """Mean ms per batch on a resident input, CUDA events; optionally CUDA-graph replay."""
    import torch
    layout, half = backend.layout, backend.precision == "fp16"

    def step():
        y = backend.aipp(x_gpu)
        if half:
            y = y.half()
        return backend.net(y.contiguous(memory_format=layout))

    with torch.inference_mode():
        for _ in range(3):
            step()
        torch.cuda.synchronize()
        if graph:
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                for _ in range(3):
                    step()
            torch.cuda.current_stream().wait_stream(s)
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                step()
            run = g.replay
        else:
            run = step
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            run()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / iters


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="gpu-results")
    ap.add_argument("--quick", action="store_true", help="few iterations (smoke test)")
    ap.add_argument("--recipe", default=recipebook.DEFAULT,
                    help=f"a shipped recipe or a recipe folder (default {recipebook.DEFAULT})")
    ap.add_argument("--weights", help="the model's state_dict (default: the recipe's)")
    args = ap.parse_args()
    recipe = recipebook.load(args.recipe)
    weights = args.weights or recipe.default_weights()
    if not weights:
        ap.error(f"recipe {recipe.name} has no default weights: give --weights "
                 f"({recipe.weights.hint})")
    spec, shape = recipe.preprocess, aipp.load(recipe.aipp_path).input_shape
    import torch
    torch.backends.cudnn.benchmark = True   # let cuDNN pick the fastest kernels per shape
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    demo = ROOT / "demo" / "imagenet-sample-100"
    images = data.list_images(demo / "images", extensions=spec.extensions)   # a flat folder
    labels = data.read_labels(demo / "val_label.txt")
    tmp = Path(tempfile.mkdtemp(prefix="zoorepro-gpu-"))
    pre = preprocess.preprocess_folder(images, tmp / "bin", spec, workers=0, progress=False)
    assert not pre.failed, pre.failed
    files, _ = bench.list_inputs(tmp / "bin")
    samples = np.stack([bench.load_input(f, shape) for f in files])
    arts = backends.Artifacts(weights=weights, aipp_config=recipe.aipp_path, recipe=recipe)
    demo_w = recipe.weights.demo
    expected = (demo_w.expected if demo_w and weights == recipe.demo_weights() else None)
    iters = 5 if args.quick else 100
    results = {"gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
               "torch": torch.__version__, "recipe": recipe.name, "weights": Path(weights).name,
               "records": [], "accuracy": {}}
    batches = BATCHES[:3] if args.quick else BATCHES
    for precision in ("fp32", "fp16"):
        be = backends.create("torch", arts, device="cuda", precision=precision)
        s = bench.run_folder(be, tmp / "bin", tmp / f"res_{precision}", "result_bs64", 64, "TXT",
                             warmup=2, progress=False, shape=shape)
        m = evaluate.score(evaluate.read_result_folder(tmp / f"res_{precision}" / "result_bs64"),
                           labels)
        results["accuracy"][precision] = {"top1": m["top1"], "top5": m["top5"],
                                          "images": m["images"],
                                          "e2e_img_s": s["e2e_throughput"]}
        want = (f" (expected {expected['top1']:g} / {expected['top5']:g})" if expected else "")
        print(f"{precision}: Acc@1 {m['top1']:.2f} Acc@5 {m['top5']:.2f} on {m['images']} "
              f"images{want}", flush=True)
        for bs in batches:
            rec = bench.measure(be, samples, bs, bench.SweepSettings((bs,), iters, 0.5, 2))
            x_gpu = torch.from_numpy(bench.cycled_batch(samples, bs)).cuda()
            dev_ms = device_time(be, x_gpu, iters, graph=False)
            graph_ms = device_time(be, x_gpu, iters, graph=True)
            rec.update(device_ms=dev_ms, device_throughput=1000 * bs / dev_ms,
                       graph_ms=graph_ms, graph_throughput=1000 * bs / graph_ms)
            results["records"].append(rec)
            print(f"{precision} bs{bs:5d} infer {rec['throughput']:10.1f} img/s  device "
                  f"{rec['device_throughput']:10.1f}  graph {rec['graph_throughput']:10.1f}  "
                  f"({rec['validity']})", flush=True)
        del be
        torch.cuda.empty_cache()
    (out / "gpu_sweep.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    t0 = time.time()
    rc = main()
    print(f"done in {time.time() - t0:.1f} s")
    sys.exit(rc)
