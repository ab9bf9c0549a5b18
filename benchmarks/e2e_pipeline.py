"""Time the whole pipeline (preprocess + export + inference + evaluation + report) end to end.

    .venv/bin/python benchmarks/e2e_pipeline.py DATA_DIR LABEL_FILE [-p KEY VALUE]... \
        [--recipe squeezenet1_1] [--params FILE]

Runs ``zoorepro run`` (default CPU backend only) on DATA_DIR -- e.g. a synthetic set from
synthetic_imagenet.py -- and reports wall time, the time of each notebook (papermill's own
record) and the peak memory of the whole process tree (RSS summed over the CLI, the Jupyter
kernels and the preprocessing workers, sampled every 0.2 s).  The run takes the recipe's
settings (``--params``, default ``params/<recipe>.yaml``) with ``recipe`` set to
``--recipe`` (default recipebook.DEFAULT) and the recipe's default weights unless
``-p weights PTH`` is given.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))

from zoorepro import recipebook  # noqa: E402


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data_dir")
    ap.add_argument("label_file")
    ap.add_argument("-p", "--param", nargs=2, action="append", default=[],
                    metavar=("KEY", "VALUE"))
    ap.add_argument("--recipe", default=recipebook.DEFAULT,
                    help=f"a shipped recipe or a recipe folder (default {recipebook.DEFAULT})")
    ap.add_argument("--params", help="params file (default: params/<recipe>.yaml)")
    args = ap.parse_args()
    recipe = recipebook.load(args.recipe)
    params = Path(args.params) if args.params else ROOT / "params" / f"{recipe.name}.yaml"
    if not params.is_file():
        ap.error(f"{params}: no params file for recipe {recipe.name}; give --params")
    name = args.recipe if args.recipe in recipebook.names() else str(recipe.folder)
    overrides = [("recipe", name), ("backends", "[onnxruntime]"),
                 ("data_dir", args.data_dir), ("label_file", args.label_file), ("name", "e2e")]
    if not any(k == "weights" for k, _ in args.param):
        weights = recipe.default_weights()
        if not weights:
            ap.error(f"recipe {recipe.name} has no default weights: give -p weights PTH "
                     f"({recipe.weights.hint})")
        overrides.append(("weights", weights))
    overrides += [tuple(p) for p in args.param]
    cmd = [sys.executable, "-m", "zoorepro", "run", str(params)]
    for k, v in overrides:
        cmd += ["-p", k, v]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    ps = psutil.Process(proc.pid)
    peak = [0]

    def sample():
        while proc.poll() is None:
            peak[0] = max(peak[0], tree_rss(ps))
            time.sleep(0.2)
    t = threading.Thread(target=sample, daemon=True)
    t.start()
    out, _ = proc.communicate()
    wall = time.perf_counter() - t0
    t.join()
    if not out.strip():
        print(f"exit {proc.returncode} after {wall:.1f} s, no run folder printed; run the "
              f"command to see why: {' '.join(cmd)}")
        return proc.returncode or 1
    run_dir = Path(out.strip().splitlines()[-1])
    print(f"exit {proc.returncode}; run folder {run_dir}")
    print(f"wall time {wall:.1f} s ({wall / 60:.2f} min); peak memory of the process tree "
          f"{peak[0] / 2**20:.0f} MiB")
    for nb in sorted((run_dir / "notebooks").glob("*.ipynb")):
        meta = json.loads(nb.read_text()).get("metadata", {}).get("papermill", {})
        print(f"  {nb.name}: {meta.get('duration', float('nan')):.1f} s")
    metrics = run_dir / "metrics.json"
    if metrics.is_file():
        m = json.loads(metrics.read_text())
        print(f"  images scored: {m['images']}")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
