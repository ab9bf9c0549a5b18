"""Accuracy-run throughput of the CPU backend by number of concurrent inference streams.

    .venv/bin/python benchmarks/streams_scaling.py [--rounds 3] [--images 400] [--model AIPP.onnx] \
        [--recipe squeezenet1_1] [--weights PTH]

zoorepro's folder run (what the accuracy pass does: read ``.bin`` files, infer, write the
TXT outputs ais_bench writes) at batch 1 and 8, with all inference threads in one ONNX
Runtime session (streams = 1) or split over 2, 4, ... single-threaded sessions, up to the
physical cores.  Rounds are interleaved (every combination once per round, shuffled); the
table gives the median (best) end-to-end img/s and ais_bench's compute img/s summed over
streams.  This is the evidence behind ``infer_streams: 0`` (auto) = one single-threaded
session per physical core on the CPU.  The model, its weights, the preprocessing and the AIPP
config are the recipe's (default: recipebook.DEFAULT with its demo weights).
"""
from __future__ import annotations

import argparse
import platform
import random
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))

from zoorepro.recipe import aipp, data, export, preprocess  # noqa: E402
from zoorepro import backends, host, recipebook  # noqa: E402
from zoorepro.backends import bench  # noqa: E402

IMAGES = ROOT / "demo" / "imagenet-sample-100" / "images"


def stream_counts(cores: int) -> list[int]:
    out, n = [], 1
    while n < cores:
        out.append(n)
        n *= 2
    return out + [cores]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--images", type=int, default=400, help="images per measurement")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--model", help="AIPP ONNX model (default: export from the weights)")
    ap.add_argument("--recipe", default=recipebook.DEFAULT,
                    help=f"a shipped recipe or a recipe folder (default {recipebook.DEFAULT})")
    ap.add_argument("--weights", help="the model's state_dict (default: the recipe's)")
    args = ap.parse_args()
    recipe = recipebook.load(args.recipe)
    spec, config = recipe.preprocess, aipp.load(recipe.aipp_path)
    cores = host.physical_cores()
    with tempfile.TemporaryDirectory(prefix="zoorepro-streams-") as tmp:
        tmp = Path(tmp)
        model = args.model
        if not model:
            weights = args.weights or recipe.default_weights()
            if not weights:
                ap.error(f"recipe {recipe.name} has no default weights: give --weights or "
                         f"--model ({recipe.weights.hint})")
            plain = export.export_onnx(recipe, weights, tmp / export.onnx_name(recipe))
            model = str(export.build_aipp_model(recipe, plain, config,
                                                tmp / export.aipp_onnx_name(recipe)))
        bins = tmp / "bin"
        pre = preprocess.preprocess_folder(data.list_images(IMAGES, extensions=spec.extensions),
                                           bins, spec, progress=False)
        assert not pre.failed, pre.failed
        demo_bins = sorted(bins.glob("*.bin"))
        inputs = tmp / "inputs"
        inputs.mkdir()
        for i in range(args.images):   # distinct names, real images cycled
            shutil.copyfile(demo_bins[i % len(demo_bins)], inputs / f"img_{i:06d}.bin")
        arts = backends.Artifacts(aipp_onnx=model, aipp_config=recipe.aipp_path, recipe=recipe)
        be = backends.create("onnxruntime", arts, device="cpu", threads=cores)
        combos = [(bs, st) for bs in map(int, args.batches.split(","))
                  for st in stream_counts(cores)]
        e2e: dict = {c: [] for c in combos}
        comp: dict = {c: [] for c in combos}
        for _ in range(args.rounds):
            random.shuffle(combos)
            for bs, st in combos:
                out = tmp / "out"
                s = bench.run_folder(be, inputs, out, "r", bs, "TXT", 1, False, streams=st,
                                     shape=config.input_shape)
                shutil.rmtree(out)
                e2e[(bs, st)].append(s["e2e_throughput"])
                comp[(bs, st)].append(s["throughput"])
    print(f"# {recipe.title} ({recipe.name}); {host.cpu_name()}, {cores} physical cores, "
          f"{platform.python_version()}, "
          f"{be.info()['version']}; {args.images} images per point, {args.rounds} rounds")
    print("| batch | streams x threads | end-to-end img/s, median (best) "
          "| compute img/s (sum over streams) | vs 1 stream |")
    print("|---|---|---|---|---|")
    for bs, st in sorted(e2e):
        med = statistics.median(e2e[(bs, st)])
        base = statistics.median(e2e[(bs, 1)])
        print(f"| {bs} | {st} x {max(1, cores // st)} | {med:.1f} ({max(e2e[(bs, st)]):.1f}) | "
              f"{statistics.median(comp[(bs, st)]):.1f} | {med / base:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
