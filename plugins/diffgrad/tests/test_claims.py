"""The F1 claim check passes, and its criterion fails for wrong implementations.

Wrong variants: the original ``diffGrad.py`` aliasing bug (previous_grad overwritten by the new
gradient, so xi = 0.5 always: exactly Adam with lr / 2, built here as such), and plain Adam
passed off as diffGrad. A single setting at lr = 0.1 does not catch the first one:
it is asserted below that it reaches the global minimum there, which is why the check runs a grid.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from gradhub_diffgrad.claims import BETAS, EPS, GLOBAL_MINIMUM, LEARNING_RATES, synthetic_function_f1, trajectory


def _aliased_v1(params: Iterable[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    """diffGrad with xi = 0.5 at every step (the v1 bug) = Adam at half the learning rate (same eps form)."""
    return torch.optim.Adam(params, lr=lr / 2, betas=BETAS, eps=EPS)


def _adam(params: Iterable[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr, betas=BETAS, eps=EPS)


def test_claim_passes() -> None:
    result = synthetic_function_f1()
    assert result.passed, result.report()
    for lr in LEARNING_RATES:
        assert abs(result.measured[f"diffgrad_final_x_lr{lr:g}"] - GLOBAL_MINIMUM) < 1e-2
    assert len(result.figures) == 4


def test_claim_fails_for_the_aliasing_bug() -> None:
    result = synthetic_function_f1(diffgrad=_aliased_v1)
    assert not result.passed
    assert abs(result.measured["diffgrad_final_x_lr0.18"] - 0.2) < 1e-2, "v1 ends in the local minimum at lr 0.18"


def test_aliasing_bug_passes_a_single_setting_at_lr_0_1() -> None:
    """Why the grid: at lr = 0.1 alone, Adam(lr/2) also reaches -0.3 (measured -0.3003)."""
    assert abs(float(trajectory(_aliased_v1, 0.1)[-1]) - GLOBAL_MINIMUM) < 1e-2


def test_claim_fails_for_adam() -> None:
    result = synthetic_function_f1(diffgrad=_adam)
    assert not result.passed
