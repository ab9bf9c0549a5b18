"""Sharded-run speed-up and matrix throughput on Dask, by worker count, on this machine.

    .venv/bin/python benchmarks/dask_scaling.py [--images 600] [--workers 1,2] \
        [--matrix-runs 2] [--matrix-images 4] [--no-matrix] [--out results.json] \
        [--recipe squeezenet1_1]

* **Sharded run**: preprocessing and the accuracy run (ONNX Runtime, batch 1, TXT outputs)
  of ``--images`` images (the demo's 100 JPEGs copied under new names, cycled), unsharded
  on one core (1 process, 1 thread: the per-image cost of one core, the input of the cluster
  model in ``benchmarks/README.md``), unsharded on every core (local processes and streams,
  as ``zoorepro run`` does) and sharded on a ``LocalCluster`` of N single-threaded worker
  processes (``shards`` = 2 N; each shard gets the cores / N threads), started before the
  clock (its start-up is given apart: the default path pays it once per sharded stage); each
  sharded run twice, the first use of fresh workers (imports, model loading) given apart.
* **Matrix**: ``--matrix-runs`` small runs of the demo (``--matrix-images`` images, batch 1,
  one sweep point) through ``zoorepro matrix``'s code, on a LocalCluster of N workers:
  runs per minute (each run executes its five notebooks in Jupyter kernels).
Weights, AIPP config and preprocessing are the recipe's (``--recipe``, default
recipebook.DEFAULT with its default weights); the demo images make a flat folder, so the
recipe's preprocessing must read one (``layout: flat``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TQDM_DISABLE", "1")       # tables only
sys.path.insert(0, str(ROOT / "lib"))

from zoorepro.scale import cluster, matrix  # noqa: E402
from zoorepro.scale import shards  # noqa: E402
from zoorepro import config, host, recipebook  # noqa: E402
from zoorepro.run import stages  # noqa: E402
from zoorepro.run.folder import Run  # noqa: E402

DEMO = ROOT / "demo" / "imagenet-sample-100"
# weights and aipp_config left out: the recipe's (main() adds recipe: NAME)
BASE = dict(backends=["onnxruntime"], batch_sizes=[1], bench_iterations=1,
            bench_min_seconds=0, warmup=1, accuracy_batch_size=1)


def image_set(folder: Path, n: int) -> tuple[Path, Path]:
    """``n`` JPEGs (the demo's, cycled under new names) and their val_label.txt."""
    labels = dict(line.split() for line in (DEMO / "val_label.txt").read_text().splitlines())
    demo = sorted((DEMO / "images").iterdir())
    out = folder / "images"
    out.mkdir(parents=True)
    lines = []
    for i in range(n):
        src = demo[i % len(demo)]
        name = f"ILSVRC2012_val_{i + 1:08d}.JPEG"
        shutil.copyfile(src, out / name)
        lines.append(f"{name} {labels[src.name]}")
    (folder / "val_label.txt").write_text("\n".join(lines) + "\n")
    return out, folder / "val_label.txt"


def timed_run(tmp: Path, images: Path, labels: Path, **extra) -> dict:
    """Preprocess stage wall time, and the accuracy run's own wall time (its summary)."""
    cfg = config.from_mapping({**BASE, "data_dir": str(images), "label_file": str(labels),
                               "output_root": str(tmp / "reports"), **extra})
    run = Run.create(cfg)
    ex = shards.executor(run)      # the Dask tasks when the params ask for shards, else None
    t0 = time.perf_counter()
    stages.ensure(run, "preprocess", ex)
    pre = time.perf_counter() - t0
    stages.ensure(run, "export", ex)
    t0 = time.perf_counter()
    stages.ensure(run, "infer", ex)
    infer_stage = time.perf_counter() - t0
    summary = json.loads((run.results / "onnxruntime" / "result_bs1_summary.json").read_text())
    return {"preprocess_s": pre, "accuracy_s": summary["wall_s"], "infer_stage_s": infer_stage}


def sharded(tmp: Path, n_images: int, worker_counts: list[int]) -> list[dict]:
    from distributed import LocalCluster
    images, labels = image_set(tmp / "set", n_images)
    rows = [{"mode": "one core: unsharded, 1 process, 1 thread, 1 stream", "workers": 0,
             **timed_run(tmp / "one", images, labels, workers=1, threads=1, infer_streams=1)},
            {"mode": f"unsharded: {host.physical_cores()} processes / streams", "workers": 0,
             **timed_run(tmp / "unsharded", images, labels)}]
    for w in worker_counts:
        t0 = time.perf_counter()
        with cluster.dask_settings(), LocalCluster(n_workers=w, threads_per_worker=1,
                                                   processes=True, dashboard_address=":0") as lc:
            start = time.perf_counter() - t0
            cold = timed_run(tmp / f"w{w}-cold", images, labels, shards=2 * w,
                             scheduler=lc.scheduler_address)
            warm = timed_run(tmp / f"w{w}", images, labels, shards=2 * w,
                             scheduler=lc.scheduler_address)
        rows.append({"mode": f"LocalCluster: {w} worker(s), {2 * w} shards", "workers": w,
                     "cluster_start_s": start, "cold_preprocess_s": cold["preprocess_s"],
                     "cold_accuracy_s": cold["accuracy_s"], **warm})
    one = rows[0]
    for x in rows:
        x["images"] = n_images
        x["preprocess_img_s"] = n_images / x["preprocess_s"]
        x["accuracy_img_s"] = n_images / x["accuracy_s"]
        x["speedup_vs_one_core"] = (one["preprocess_s"] + one["accuracy_s"]) / (
            x["preprocess_s"] + x["accuracy_s"])
    print(f"one core: preprocessing {1000 * one['preprocess_s'] / n_images:.2f} ms/image, "
          f"accuracy run {1000 * one['accuracy_s'] / n_images:.2f} ms/image", file=sys.stderr)
    return rows


def matrix_rate(tmp: Path, runs: int, n_images: int, worker_counts: list[int]) -> list[dict]:
    tmp.mkdir(parents=True, exist_ok=True)
    params = tmp / "params.yaml"
    import yaml
    params.write_text(yaml.safe_dump({**BASE, "name": "bench", "max_images": n_images,
                                      "data_dir": str(DEMO / "images"),
                                      "label_file": str(DEMO / "val_label.txt"),
                                      "output_root": str(tmp / "reports")}))
    grid = [("warmup", list(range(1, runs + 1)))]     # runs that differ in nothing that matters
    rows = []
    for w in worker_counts:
        t0 = time.perf_counter()
        out = matrix.run_matrix(params, grid, workers=w)
        wall = time.perf_counter() - t0
        ok = sum(r["status"] == "finished" for r in out.runs)
        rows.append({"workers": w, "runs": runs, "finished": ok, "wall_s": wall,
                     "runs_per_min": 60 * runs / wall,
                     "mean_run_s": sum(r["seconds"] for r in out.runs) / runs})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=600)
    ap.add_argument("--workers", default="1,2", help="LocalCluster worker counts")
    ap.add_argument("--matrix-runs", type=int, default=2)
    ap.add_argument("--matrix-images", type=int, default=4)
    ap.add_argument("--no-matrix", action="store_true")
    ap.add_argument("--out", help="write the figures as JSON here")
    ap.add_argument("--recipe", default=recipebook.DEFAULT,
                    help=f"a shipped recipe or a recipe folder (default {recipebook.DEFAULT})")
    args = ap.parse_args()
    recipe = recipebook.load(args.recipe)
    if recipe.preprocess.layout != "flat":
        ap.error(f"recipe {recipe.name} reads {recipe.preprocess.layout} folders; the demo "
                 f"images are a flat folder")
    BASE["recipe"] = args.recipe if args.recipe in recipebook.names() else recipe.folder
    counts = [int(x) for x in args.workers.split(",")]
    facts = {"recipe": recipe.name, "cpu": host.cpu_name(), "physical_cores": host.physical_cores(),
             "python": platform.python_version(), "date": time.strftime("%Y-%m-%d")}
    with tempfile.TemporaryDirectory(prefix="zoorepro-dask-") as tmp:
        tmp = Path(tmp)
        shard_rows = sharded(tmp / "shards", args.images, counts)
        mat_rows = [] if args.no_matrix else matrix_rate(tmp / "matrix", args.matrix_runs,
                                                          args.matrix_images, counts)
    print(f"# {recipe.title} ({recipe.name}); {facts['cpu']}, {facts['physical_cores']} "
          f"physical cores, {facts['date']}\n")
    print(f"Sharded run, {args.images} images (ONNX Runtime, batch 1, TXT outputs):\n")
    print("| mode | preprocess s (img/s) | accuracy run s (img/s) | vs one core | "
          "cluster start s | first use: preprocess s, accuracy s |\n|---|---|---|---|---|---|")
    for r in shard_rows:
        cold = (f"{r['cold_preprocess_s']:.2f}, {r['cold_accuracy_s']:.2f}"
                if "cold_accuracy_s" in r else "")
        print(f"| {r['mode']} | {r['preprocess_s']:.2f} ({r['preprocess_img_s']:.0f}) | "
              f"{r['accuracy_s']:.2f} ({r['accuracy_img_s']:.0f}) | "
              f"{r['speedup_vs_one_core']:.2f}x | {r.get('cluster_start_s', 0):.1f} | {cold} |")
    if mat_rows:
        print(f"\nMatrix of {args.matrix_runs} runs ({args.matrix_images} images each, five "
              f"notebooks per run):\n")
        print("| workers | wall s | runs/min | mean run s |\n|---|---|---|---|")
        for r in mat_rows:
            print(f"| {r['workers']} | {r['wall_s']:.1f} | {r['runs_per_min']:.2f} | "
                  f"{r['mean_run_s']:.1f} |")
    if args.out:
        Path(args.out).write_text(json.dumps({**facts, "sharded": shard_rows,
                                              "matrix": mat_rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
