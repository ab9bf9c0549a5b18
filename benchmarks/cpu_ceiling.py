"""The fp32 ceiling of this CPU for a recipe's model: how many img/s no fp32 engine can beat.

    .venv/bin/python benchmarks/cpu_ceiling.py [--threads N] [--recipe squeezenet1_1]

* work per image: multiply-accumulates of every convolution of the recipe's model (its
  builder, e.g. torchvision's squeezenet1_1, untrained: the count needs no weights) at the
  recipe's input size (counted with forward hooks: output elements x in_channels/groups x
  kH x kW; ReLU, pooling and concatenation are ignored, so the ceiling is generous);
* speed of the machine: the best fp32 matrix multiply (torch.mm, oneDNN/MKL) over square
  sizes 512-2048 with the inference threads -- about what dense fp32 code can reach here;
* ceiling img/s = sustained FLOP/s / (2 x MACs per image), taking the larger of the
  multi-threaded matmul and threads x the single-threaded one (perfect scaling).
Used in benchmarks/README.md to show which speed-up targets fp32 inference can reach at all.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))

from zoorepro import host, recipebook  # noqa: E402


def conv_macs(recipe) -> int:
    import torch
    net = recipe.build_model().eval()
    size = recipe.model.size
    total = [0]

    def hook(mod, _inp, out):
        kh, kw = mod.kernel_size
        total[0] += out.numel() * (mod.in_channels // mod.groups) * kh * kw
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(hook)
    with torch.inference_mode():
        net(torch.zeros(1, 3, size, size))
    return total[0]


def sgemm_flops(threads: int, seconds: float = 1.0) -> tuple[float, int]:
    """Best sustained fp32 FLOP/s of torch.mm, and the size that gave it."""
    import torch
    torch.set_num_threads(threads)
    best = (0.0, 0)
    for n in (512, 768, 1024, 1536, 2048):
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.mm(a, b)
        for _ in range(3):   # best of 3 windows of `seconds`
            k, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds / 3:
                torch.mm(a, b)
                k += 1
            best = max(best, (2.0 * n ** 3 * k / (time.perf_counter() - t0), n))
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=0, help="0: physical cores")
    ap.add_argument("--recipe", default=recipebook.DEFAULT,
                    help=f"a shipped recipe or a recipe folder (default {recipebook.DEFAULT})")
    args = ap.parse_args()
    recipe = recipebook.load(args.recipe)
    threads = args.threads or host.physical_cores()
    macs = conv_macs(recipe)
    size = recipe.model.size
    flops, n = sgemm_flops(threads)
    one, n1 = sgemm_flops(1)
    print(f"# {recipe.title} ({recipe.name}); {host.cpu_name()}, {threads} threads")
    print(f"convolution MACs per image ({size}x{size}): {macs / 1e6:.1f} M  "
          f"({2 * macs / 1e9:.3f} GFLOP)")
    print(f"best fp32 matmul, {threads} thread(s): {flops / 1e9:.1f} GFLOP/s (n={n}); "
          f"1 thread: {one / 1e9:.1f} GFLOP/s (n={n1})")
    ceiling = max(flops, threads * one)   # generous: perfect scaling of the 1-thread rate
    print(f"fp32 ceiling: {ceiling / (2 * macs):.0f} img/s on {threads} thread(s) "
          f"(max of the {threads}-thread matmul, {flops / (2 * macs):.0f} img/s, and "
          f"{threads} x the 1-thread rate, {threads * one / (2 * macs):.0f} img/s); "
          f"{one / (2 * macs):.0f} img/s per core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
