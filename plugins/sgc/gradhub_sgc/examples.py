"""Seeded examples for the conformance suite: chunk gradients of a few jobs and a straggler pattern.

The solvers' residual is the fraction of jobs not yet decoded; the independent residual here is the
fraction of jobs whose returned gradient is not the uncoded sum of its chunk gradients (relative
1e-9 in float64, 1e-4 in float32), so a solver that "decodes" wrongly does not pass for converged.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gradhub.kinds.probe import ProbeExample
from gradhub.kinds.solver import SolverExample
from gradhub_sgc import M_SGC
from gradhub_sgc.schemes import MultiplexedSGC

__all__ = [
    "cyclic_code_with_stragglers",
    "multiplexed_with_a_burst",
    "selective_repeat_with_a_burst",
    "tiny_regression_jobs",
]

JOBS = 4

# (n = 4, B = 1, W = 3, lambda = 2)-bursty: round 0 has two stragglers (SR-SGC, s = 1, repeats one
# task in round 1; M-SGC's workers 1 and 3 redo a D1 mini-task of job 0 in its D2 slot), then worker 2
# straggles in round 3 and worker 0 in round 5 (rounds 3..5: two distinct stragglers, lambda = 2).
BURSTY = [
    [0, 0, 0, 0, 0, 1],
    [1, 0, 0, 0, 0, 0],
    [0, 0, 0, 1, 0, 0],
    [1, 0, 0, 0, 0, 0],
]
# n = 6, s = 2 (FRC: groups {0,1,2}, {3,4,5}; CRC with scheme='crc'): at most two per round.
PER_ROUND = [
    [1, 0, 0, 0],
    [0, 0, 1, 0],
    [1, 0, 0, 0],
    [0, 1, 0, 1],
    [0, 0, 0, 1],
    [0, 0, 0, 0],
]


def _run_example(
    device: torch.device | str, dtype: torch.dtype, seed: int, chunks: int, pattern: list[list[int]], hparams: dict
) -> SolverExample:
    generator = torch.Generator(device="cpu").manual_seed(seed)
    gradients = torch.randn(JOBS, chunks, 3, generator=generator, dtype=torch.float64, device="cpu")
    gradients = gradients.to(device=device, dtype=dtype)
    stragglers = torch.tensor(pattern, dtype=torch.bool, device=device)
    exact = gradients.sum(1)
    tolerance = 1e-9 if dtype == torch.float64 else 1e-4

    def undecoded(solution: Tensor) -> float:
        """The fraction of jobs whose solution is not the sum of their chunk gradients."""
        scale = exact.abs().amax(1).clamp_min(1.0)
        wrong = ((solution - exact).abs().amax(1) > tolerance * scale).sum()
        return float(wrong) / JOBS

    return SolverExample(args=(gradients, stragglers), hparams=hparams, residual=undecoded)


def cyclic_code_with_stragglers(
    device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0
) -> SolverExample:
    """GC, n = 6, s = 2, 4 jobs; up to two stragglers per round."""
    return _run_example(device, dtype, seed, 6, PER_ROUND, {"n_workers": 6, "s": 2})


def selective_repeat_with_a_burst(
    device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0
) -> SolverExample:
    """SR-SGC, (n, B, W, lambda) = (4, 1, 3, 2) (s = 1), 4 jobs over 5 rounds."""
    hparams = {"n_workers": 4, "B": 1, "W": 3, "lam": 2}
    return _run_example(device, dtype, seed, 4, [row[:5] for row in BURSTY], hparams)


def multiplexed_with_a_burst(
    device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0
) -> SolverExample:
    """M-SGC, (n, B, W, lambda) = (4, 1, 3, 2), 4 jobs over 6 rounds (K = 12 chunks per job)."""
    hparams = {"n_workers": 4, "B": 1, "W": 3, "lam": 2}
    return _run_example(device, dtype, seed, MultiplexedSGC(**hparams).n_chunks, BURSTY, hparams)


def tiny_regression_jobs(
    device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0
) -> ProbeExample:
    """A 3 -> 4 -> 2 tanh MLP and 4 jobs of 24 examples, squared error summed over examples."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    inputs = torch.randn(JOBS, 24, 3, generator=generator, device="cpu")
    targets = torch.randn(JOBS, 24, 2, generator=generator, device="cpu")
    model = model.to(device=device, dtype=dtype)
    return ProbeExample(
        model=model,
        args=(squared_error, inputs.to(device=device, dtype=dtype), targets.to(device=device, dtype=dtype)),
        hparams={"scheme": M_SGC.name, "n_workers": 4, "B": 1, "W": 3, "lam": 2, "p": 0.3},
    )


def squared_error(outputs: Tensor, targets: Tensor) -> Tensor:
    """Half the squared error, summed over the examples (chunk gradients add up to the job's)."""
    return 0.5 * (outputs - targets).square().sum()
