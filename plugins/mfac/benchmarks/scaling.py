"""Per-step time of the M-FAC optimizer as the window size m and the dimension d grow (run by hand).

    .venv/bin/python plugins/mfac/benchmarks/scaling.py [--device cpu|cuda] [--repeats 7] [--threads N]

One step = write the gradient into the window, G g (O(d m)), a Cholesky solve of an
m x m float64 matrix (O(m^3)), G^T z (O(d m)) and the parameter update. Reported: the
median over ``repeats`` timed runs of ``steps`` steps each, in ms per step, and the ratio
to the first row of each sweep. O(d m) growth shows as ratios ~2x per doubling of m and
~10x per 10x of d once the window products dominate.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from gradhub_mfac.optimizer import MFAC


def time_step(d: int, m: int, device: str, repeats: int, steps: int = 10) -> float:
    weight = torch.nn.Parameter(torch.zeros(d, device=device))
    optimizer = MFAC([weight], lr=1e-3, ngrads=m, damp=1e-5)
    weight.grad = torch.randn(d, device=device)
    for _ in range(m + 2):  # fill the window (and warm up)
        optimizer.step()
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) / steps * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--fixed-d", type=int, default=100_000)
    parser.add_argument("--fixed-m", type=int, default=32)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"device {args.device}, torch {torch.__version__}, threads {torch.get_num_threads()}, float32 window")
    print(f"\n| m (d = {args.fixed_d:,}) | ms / step | ratio |\n|---|---|---|")
    base = None
    for m in (16, 32, 64, 128):
        ms = time_step(args.fixed_d, m, args.device, args.repeats)
        base = base or ms
        print(f"| {m} | {ms:.3f} | {ms / base:.2f} |", flush=True)
    print(f"\n| d (m = {args.fixed_m}) | ms / step | ratio |\n|---|---|---|")
    base = None
    for d in (10_000, 100_000, 1_000_000):
        ms = time_step(d, args.fixed_m, args.device, args.repeats)
        base = base or ms
        print(f"| {d:,} | {ms:.3f} | {ms / base:.2f} |", flush=True)


if __name__ == "__main__":
    main()
