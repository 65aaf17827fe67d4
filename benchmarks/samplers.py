"""Time per sampling call: gradhub's diffusion samplers against a bare loop of the same math.

    python benchmarks/samplers.py                       # CPU, 2 threads
    python benchmarks/samplers.py --device cuda         # on a GPU (synchronised around each call)
    python benchmarks/samplers.py --batch 4096 --steps 50

What it measures is the sampler frame's cost around the model: the grid checks, the counted and
checked model calls (``check_finite=True``, the default, and ``False``), the time grid evaluated
once per call, and the state kept in float32. The model is a small MLP denoiser (``x0``
prediction, 2-D data); the baseline is the same Euler (or Heun) update written as a bare Python
loop, as a user (or k-diffusion's ``sample_euler``/``sample_heun``) writes it, on the same model and
grid. k-diffusion itself is not a dependency here; issue 14 compares against it.

Per ../shared/BENCHMARKING.md: warm-up calls, the median of interleaved rounds, ratios within one
run. Each figure is ms per call (ratio to the bare loop of the same method).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn


class Denoiser(nn.Module):
    """A 2 -> 128 -> 128 -> 2 MLP taking (x, sigma): x0 prediction, EDM-style inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 128), nn.SiLU(), nn.Linear(128, 128), nn.SiLU(), nn.Linear(128, 2))

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        scale = (1 + sigma**2).rsqrt()[:, None]
        return self.net(torch.cat([x * scale, sigma.log()[:, None] / 4], dim=1))


def bare_euler(model: nn.Module, x: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """``x <- x + (x - D(x, s)) / s * (s' - s)`` over the grid (the probability-flow ODE, Euler)."""
    ones = x.new_ones(x.shape[0])
    values = sigmas.tolist()
    for sigma, sigma_next in itertools.pairwise(values):
        derivative = (x - model(x, ones * sigma)) / sigma
        x = x + derivative * (sigma_next - sigma)
    return x


def bare_heun(model: nn.Module, x: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """EDM's Heun (Algorithm 1 without churn): an Euler step corrected by the derivative at its end."""
    ones = x.new_ones(x.shape[0])
    values = sigmas.tolist()
    for sigma, sigma_next in itertools.pairwise(values):
        derivative = (x - model(x, ones * sigma)) / sigma
        x_next = x + derivative * (sigma_next - sigma)
        if sigma_next > 0:
            corrected = (x_next - model(x_next, ones * sigma_next)) / sigma_next
            x_next = x + (derivative + corrected) / 2 * (sigma_next - sigma)
        x = x_next
    return x


def candidates(model: nn.Module) -> list[tuple[str, str, Callable[[torch.Tensor, torch.Tensor], Any]]]:
    import gradhub

    euler, heun = gradhub.get("euler_ode"), gradhub.get("heun_edm")
    with_model = {"prediction": "x0"}
    return [
        ("euler", "bare loop", lambda x, s: bare_euler(model, x, s)),
        ("euler", "gradhub euler_ode", lambda x, s: euler(model, x, s, **with_model)),
        (
            "euler",
            "gradhub euler_ode (check_finite=False)",
            lambda x, s: euler(model, x, s, check_finite=False, **with_model),
        ),
        ("heun", "bare loop", lambda x, s: bare_heun(model, x, s)),
        ("heun", "gradhub heun_edm", lambda x, s: heun(model, x, s, **with_model)),
        (
            "heun",
            "gradhub heun_edm (check_finite=False)",
            lambda x, s: heun(model, x, s, check_finite=False, **with_model),
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, nargs="+", default=[64, 4096])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from gradhub_diffusion.samplers import edm_sigmas

    device = torch.device(args.device)
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    torch.manual_seed(0)
    model = Denoiser().to(device).eval()
    sigmas = edm_sigmas(args.steps, device=device)
    rows = candidates(model)
    print(f"\n{args.steps} steps, {args.device}, {args.threads} threads; ms per call (ratio to the bare loop)\n")
    print("| sampler | " + " | ".join(f"batch {batch}" for batch in args.batch) + " |")
    print("|---|" + "---|" * len(args.batch))
    cells: dict[tuple[str, str], list[str]] = {(family, label): [] for family, label, _ in rows}
    for batch in args.batch:
        x = torch.randn(batch, 2, device=device) * float(sigmas[0])
        times: dict[tuple[str, str], list[float]] = {(family, label): [] for family, label, _ in rows}
        with torch.no_grad():
            for _, _, call in rows:  # warm-up
                call(x, sigmas)
            for _ in range(args.rounds):
                for family, label, call in rows:
                    synchronize()
                    start = time.perf_counter()
                    call(x, sigmas)
                    synchronize()
                    times[family, label].append(time.perf_counter() - start)
        for family, label, _ in rows:
            value = statistics.median(times[family, label])
            reference = statistics.median(times[family, "bare loop"])
            cells[family, label].append(f"{value * 1e3:.2f} ({value / reference:.2f}x)")
    for family, label, _ in rows:
        print(f"| {family}: {label} | " + " | ".join(cells[family, label]) + " |")


if __name__ == "__main__":
    main()
