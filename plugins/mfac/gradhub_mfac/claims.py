"""Claim checks for M-FAC: OBS pruning with M-FAC beats magnitude pruning; the M-FAC optimizer beats SGD.

Both take factories, so the tests can run the same criteria on deliberately wrong
variants and see them fail. Calibrated values (seed 0, torch 2.13 CPU) are in the
docstrings and the README.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import nn

from gradhub.claims import ClaimResult, single_thread
from gradhub.figures import LinePlot, Series
from gradhub_mfac import MFAC as MFAC_SPEC
from gradhub_mfac import MFAC_IHVP_STATIC

OptimizerFactory = Callable[[Iterable[torch.Tensor], float], torch.optim.Optimizer]
Pruner = Callable[
    [nn.Module, list[torch.Tensor], Callable[[], Iterable[torch.Tensor]], torch.Tensor, float], torch.Tensor
]

MFAC_LRS = (1e-2, 3e-2, 1e-1)
SGD_LRS = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1)
RATIO_THRESHOLD = 0.85
TAIL = 50
"""Steps averaged at the end of training: M-FAC at lr 0.1 oscillates over the last ~50 steps, so the
last value alone is a draw from that band (measured: 0.10 to 0.137), and which side of a threshold it
lands on depends on the CPU's rounding. The mean over the tail is stable to ~1e-3 across roundings."""


def _mfac(params: Iterable[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    from gradhub_mfac.optimizer import MFAC

    return MFAC(params, lr=lr, momentum=0.9, ngrads=32, damp=0.1)


def _sgd(params: Iterable[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=0.9)


def logistic_problem(seed: int = 0, samples: int = 400, dim: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
    """Binary logistic regression, features scaled by ``logspace(-1.5, 1.5)`` (a 10^3 span), float64.

    Labels are the signs of a teacher's logits (separable), so the loss can go far down and
    the ill-conditioning, not label noise, limits first-order methods.
    """
    generator = torch.Generator().manual_seed(seed)
    scales = torch.logspace(-1.5, 1.5, dim, dtype=torch.float64)
    features = torch.randn(samples, dim, generator=generator, dtype=torch.float64) * scales
    teacher = torch.randn(dim, generator=generator, dtype=torch.float64) / scales
    labels = ((features @ teacher) > 0).double()
    return features, labels


def train_logistic(make_optimizer: OptimizerFactory, lr: float, steps: int = 300, seed: int = 0) -> list[float]:
    """Full-batch training from zero; the loss after each step (inf once it diverges)."""
    features, labels = logistic_problem(seed)
    weight = nn.Parameter(torch.zeros(features.shape[1], dtype=torch.float64))
    optimizer = make_optimizer([weight], lr)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(features @ weight, labels)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            value = nn.functional.binary_cross_entropy_with_logits(features @ weight, labels).item()
        losses.append(value if math.isfinite(value) else math.inf)
        if not math.isfinite(value):
            losses += [math.inf] * (steps - len(losses))
            break
    return losses


def _tail_mean(losses: list[float]) -> float:
    return math.fsum(losses[-TAIL:]) / TAIL


def optimizer_beats_sgd(make_mfac: OptimizerFactory = _mfac) -> ClaimResult:
    """M-FAC (m=32, damp 0.1, momentum 0.9, lr in {1e-2, 3e-2, 1e-1}) vs SGD with momentum 0.9
    (lr in {1e-3, ..., 3e-1}, 6 points), 300 full-batch steps from zero.

    Pass: best M-FAC loss <= 0.85 x best SGD loss, each the mean over the last 50 steps (the
    learning rates chosen by that mean too). A stricter setting (damp 1e-3, no momentum,
    ratio <= 0.5) does not hold: see the README.
    """
    with single_thread():
        return _optimizer_beats_sgd(make_mfac)


def _optimizer_beats_sgd(make_mfac: OptimizerFactory) -> ClaimResult:
    mfac_runs = {lr: train_logistic(make_mfac, lr) for lr in MFAC_LRS}
    sgd_runs = {lr: train_logistic(_sgd, lr) for lr in SGD_LRS}
    mfac_tail = {lr: _tail_mean(runs) for lr, runs in mfac_runs.items()}
    sgd_tail = {lr: _tail_mean(runs) for lr, runs in sgd_runs.items()}
    mfac_lr = min(mfac_tail, key=mfac_tail.__getitem__)
    sgd_lr = min(sgd_tail, key=sgd_tail.__getitem__)
    mfac_loss, sgd_loss = mfac_tail[mfac_lr], sgd_tail[sgd_lr]
    ratio = mfac_loss / sgd_loss
    steps = list(range(1, len(mfac_runs[mfac_lr]) + 1))
    return ClaimResult(
        claim="M-FAC's sliding-window inverse-Fisher preconditioning optimises an ill-conditioned problem "
        "much faster than tuned SGD (§5.2)",
        criterion=f"best M-FAC loss <= {RATIO_THRESHOLD} x best momentum-SGD loss, each the mean over the last "
        f"{TAIL} of 300 full-batch steps (logistic regression, d=200, feature scales spanning 10^3; both "
        "momentum 0.9, lr tuned)",
        measured={
            "mfac_tail_loss": mfac_loss,
            "sgd_tail_loss": sgd_loss,
            "ratio": ratio,
            "mfac_best_lr": mfac_lr,
            "sgd_best_lr": sgd_lr,
        },
        passed=bool(ratio <= RATIO_THRESHOLD),
        methods=(MFAC_SPEC.name,),
        details="\n".join(
            [
                f"mfac lr={lr:g}: final loss {runs[-1]:.4g}, mean of the last {TAIL} {mfac_tail[lr]:.4g}"
                for lr, runs in mfac_runs.items()
            ]
            + [
                f"sgd  lr={lr:g}: final loss {runs[-1]:.4g}, mean of the last {TAIL} {sgd_tail[lr]:.4g}"
                for lr, runs in sgd_runs.items()
            ]
        ),
        figures=[
            LinePlot(
                title="Training loss, logistic regression with feature scales spanning 10^3",
                series=[
                    Series(f"M-FAC lr={mfac_lr:g}", steps, mfac_runs[mfac_lr]),
                    Series(f"SGD lr={sgd_lr:g}", steps, sgd_runs[sgd_lr]),
                ],
                xlabel="step",
                ylabel="loss",
                yscale="log",
            )
        ],
    )


def _gaussian_task(seed: int, samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1234)
    centres = torch.randn(10, 64, generator=generator) * 0.45
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (samples,), generator=generator)
    inputs = centres[labels] + torch.randn(samples, 64, generator=generator)
    return inputs, labels


def _trained_mlp(seed: int = 0) -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10))
    inputs, labels = _gaussian_task(seed, 4096)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(600):
        batch = torch.randint(0, inputs.shape[0], (128,), generator=generator)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(inputs[batch]), labels[batch]).backward()
        optimizer.step()
    return model, (inputs, labels)


def _evaluate(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor]) -> tuple[float, float]:
    with torch.no_grad():
        logits = model(data[0])
        return nn.functional.cross_entropy(logits, data[1]).item(), (logits.argmax(1) == data[1]).double().mean().item()


def mfac_gradual_prune(
    model: nn.Module,
    params: list[torch.Tensor],
    losses: Callable[[], Iterable[torch.Tensor]],
    mask: torch.Tensor,
    sparsity: float,
    damp: float = 1e-4,
) -> torch.Tensor:
    """Official gradual OBS: 8 recomputations of 64 gradients (batch 32), blocksize 128."""
    from gradhub_mfac.pruning import MFACPruner

    pruner = MFACPruner(model, params, losses, ngrads=64, blocksize=128, damp=damp)
    return pruner.gradual_prune(mask, sparsity, nrecomps=8)


def pruning_beats_magnitude(prune: Pruner = mfac_gradual_prune, sparsity: float = 0.95) -> ClaimResult:
    """95% pruning of the two hidden weight matrices (64x128, 128x128) of a trained 64-128-128-10 MLP.

    M-FAC gradual OBS (8 recomputations of 64 gradients of batch 32, blocksize 128, damp 1e-4)
    vs magnitude pruning (with no retraining, gradual magnitude pruning equals one-shot);
    no fine-tuning. Pass: M-FAC test loss <= 0.8 x magnitude's and accuracy >= magnitude's + 3 points.
    Calibrated (seed 0): dense 0.942 accuracy; magnitude loss 1.548 / accuracy 0.778;
    M-FAC loss 0.697 / accuracy 0.870 (ratio 0.45, +9.2 points). One-shot M-FAC at 80%
    barely differs from magnitude (0.231 vs 0.234): see the README.
    """
    with single_thread():
        return _pruning_beats_magnitude(prune, sparsity)


def _pruning_beats_magnitude(prune: Pruner, sparsity: float) -> ClaimResult:
    from gradhub_mfac.pruning import magnitude_prune

    model, train = _trained_mlp()
    test = _gaussian_task(1, 4096)
    dense_loss, dense_accuracy = _evaluate(model, test)
    params = [model[0].weight, model[2].weight]
    original = [p.detach().clone() for p in params]
    mask = torch.ones(sum(p.numel() for p in params), dtype=torch.bool)

    def losses() -> Iterable[torch.Tensor]:
        generator = torch.Generator().manual_seed(7)
        while True:
            batch = torch.randint(0, train[0].shape[0], (32,), generator=generator)
            yield nn.functional.cross_entropy(model(train[0][batch]), train[1][batch])

    flat = torch.cat([p.reshape(-1) for p in original])
    _, magnitude_weights = magnitude_prune(flat, mask, sparsity)
    with torch.no_grad():
        for p, part in zip(params, magnitude_weights.split([p.numel() for p in params])):
            p.copy_(part.view_as(p))
    magnitude_loss, magnitude_accuracy = _evaluate(model, test)
    with torch.no_grad():
        for p, value in zip(params, original):
            p.copy_(value)
    mfac_mask = prune(model, params, losses, mask, sparsity)
    mfac_loss, mfac_accuracy = _evaluate(model, test)
    achieved = 1 - mfac_mask.double().mean().item()
    passed = mfac_loss <= 0.8 * magnitude_loss and mfac_accuracy >= magnitude_accuracy + 0.03
    return ClaimResult(
        claim="OBS pruning with M-FAC inverse-Fisher products keeps far more accuracy than magnitude pruning (§5.1)",
        criterion=f"at {sparsity:.0%} sparsity, no fine-tuning: M-FAC test loss <= 0.8 x magnitude's "
        "and accuracy >= magnitude + 3 pts",
        measured={
            "dense_loss": dense_loss,
            "dense_accuracy": dense_accuracy,
            "magnitude_loss": magnitude_loss,
            "magnitude_accuracy": magnitude_accuracy,
            "mfac_loss": mfac_loss,
            "mfac_accuracy": mfac_accuracy,
            "loss_ratio": mfac_loss / magnitude_loss,
            "sparsity": achieved,
        },
        passed=bool(passed),
        methods=(MFAC_IHVP_STATIC.name,),
    )
