"""Claim checks for ReSTE: the equilibrium of its two indicators, training a 1W1A MLP, and o = 1 = STE.

Paper: "Estimator Meets Equilibrium Perspective: A Rectified Straight Through Estimator for
Binary Neural Networks Training", Wu et al., ICCV 2023, arXiv:2308.06689. Its claims: (i) the
power o trades the estimating error (how far the surrogate F_o is from sign) against gradient
stability (the variance of the gradient magnitudes): raising o lowers the first and raises the
second (Sec. 4, Fig. 3-4); (ii) training with the rectified estimator and o rising from 1 to 3
gives binary networks at least as accurate as the STE (a small gain on CIFAR-10 / ImageNet);
(iii) at o = 1 ReSTE is the clipped STE (F_1 is the identity).

Each check takes the pieces it tests as arguments (a binariser, a surrogate, a layer class), so
the tests run the same criteria on deliberately wrong variants and see them fail.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import torch
from torch import Tensor, nn

from gradhub.claims import ClaimResult, single_thread
from gradhub.figures import LinePlot, Series

Binarizer = Callable[[Tensor, float], Tensor]
"""``binarize(x, o) -> sign(x)`` with a surrogate backward at power o (t = 1.5, interval = 0.1)."""
Surrogate = Callable[[Tensor, float], Tensor]
"""``surrogate(x, o) -> F_o(x)``."""

GRID = (1.0, 1.5, 2.0, 2.5, 3.0)


def _registered_binarizer() -> Binarizer:
    import gradhub
    from gradhub_reste import RESTE_SIGN

    reste_sign = gradhub.get(RESTE_SIGN.name)
    return lambda x, o: reste_sign(x, o=o)


def _registered_surrogate() -> Surrogate:
    from gradhub_reste.functional import power_surrogate

    return power_surrogate


# --- claim (i): the equilibrium of estimating error and gradient stability ----------------------


def indicator_curves(
    binarize: Binarizer, surrogate: Surrogate, powers: list[float], samples: int = 100_000, seed: int = 0
) -> tuple[list[float], list[float]]:
    """E(o) = ||F_o(w) - sign(w)||_2 and V(o) = Var(|g * phi_o(w)|), w ~ N(0, 0.5^2), g ~ N(0, 1), float64.

    The gradient ``g * phi_o(w)`` is what autograd gives through ``binarize`` for the upstream
    gradient ``g`` (fixed across o), exactly as in training.
    """
    generator = torch.Generator().manual_seed(seed)
    weights = 0.5 * torch.randn(samples, generator=generator, dtype=torch.float64)
    upstream = torch.randn(samples, generator=generator, dtype=torch.float64)
    errors, variances = [], []
    for o in powers:
        errors.append(float(torch.linalg.vector_norm(surrogate(weights, o) - torch.sign(weights))))
        latent = weights.clone().requires_grad_()
        (gradient,) = torch.autograd.grad((binarize(latent, o) * upstream).sum(), latent)
        variances.append(float(gradient.abs().var()))
    return errors, variances


def _backward_figure(binarize: Binarizer) -> LinePlot:
    x = torch.linspace(-2.0, 2.0, 801, dtype=torch.float64)
    series = []
    for o in (1.0, 2.0, 3.0):
        latent = x.clone().requires_grad_()
        (phi,) = torch.autograd.grad(binarize(latent, o).sum(), latent)
        series.append(Series(f"phi_o(x), o = {o:g}", x, phi))
    return LinePlot(
        title="ReSTE backward phi_o(x): power derivative, chord slope on |x| <= 0.1, zero beyond t = 1.5",
        series=series,
        xlabel="x",
        ylabel="dL/dx divided by dL/dsign(x)",
        vlines=[(-1.5, "-t"), (1.5, "t")],
    )


def equilibrium(
    binarize: Binarizer | None = None, surrogate: Surrogate | None = None, with_figures: bool = True
) -> ClaimResult:
    """Claim (i), deterministic: as o goes 1 -> 3, E(o) falls strictly and V(o) rises strictly.

    w ~ N(0, 0.5^2), 1e5 samples, a fixed N(0, 1) upstream gradient (seed 0, float64), the
    registered ``reste_sign`` (t = 1.5, interval = 0.1) and F_o(x) = sign(x)|x|^(1/o).
    Criterion: both sequences strictly monotone over o in {1, 1.5, 2, 2.5, 3}.
    Measured: E = 212.45, 178.43, 153.62, 134.81, 120.08 and V = 0.3620, 0.6964, 1.3199, 2.0569,
    2.8063 (smallest relative step: E falls 10.9 %, V rises 36.4 %).
    """
    binarize = binarize or _registered_binarizer()
    surrogate = surrogate or _registered_surrogate()
    with single_thread():
        errors, variances = indicator_curves(binarize, surrogate, list(GRID))
    falling = all(later < earlier for earlier, later in pairwise(errors))
    rising = all(later > earlier for earlier, later in pairwise(variances))
    measured = {f"E(o={o:g})": value for o, value in zip(GRID, errors)}
    measured |= {f"Var|grad|(o={o:g})": value for o, value in zip(GRID, variances)}
    measured["smallest relative fall of E"] = min((a - b) / a for a, b in pairwise(errors))
    measured["smallest relative rise of Var|grad|"] = min((b - a) / a for a, b in pairwise(variances))
    figures = []
    if with_figures:
        powers = torch.linspace(1.0, 3.0, 21, dtype=torch.float64).tolist()
        with single_thread():
            curve_errors, curve_variances = indicator_curves(binarize, surrogate, powers)
        figures = [
            LinePlot(
                title="The equilibrium: estimating error and gradient variance vs o (w ~ N(0, 0.5^2)), "
                "relative to o = 1",
                series=[
                    Series("estimating error E(o) / E(1)", powers, [e / curve_errors[0] for e in curve_errors]),
                    Series(
                        "gradient variance Var|grad|(o) / Var|grad|(1)",
                        powers,
                        [v / curve_variances[0] for v in curve_variances],
                    ),
                    Series("criterion grid (E)", list(GRID), [e / errors[0] for e in errors], style="points"),
                    Series("criterion grid (Var)", list(GRID), [v / variances[0] for v in variances], style="points"),
                ],
                xlabel="o",
                ylabel="relative to o = 1",
                vlines=[(3.0, "o_end = 3 (official)")],
            ),
            _backward_figure(binarize),
        ]
    return ClaimResult(
        claim="Raising the power o lowers the estimating error ||F_o(w) - sign(w)|| and raises the variance of the "
        "gradient magnitudes: o trades one against the other",
        criterion="E(o) strictly decreasing and Var|grad|(o) strictly increasing over o in {1, 1.5, 2, 2.5, 3}",
        measured=measured,
        passed=falling and rising,
        details="w ~ N(0, 0.5^2), 1e5 samples, upstream gradient ~ N(0, 1), seed 0, float64; grad = autograd "
        "through reste_sign(w, o, t=1.5, interval=0.1)",
        figures=figures,
    )


# --- claims (ii) and (iii): a 1W1A MLP on synthetic classes ---------------------------------------


class _ClippedSTE(torch.autograd.Function):
    """The baseline: sign(x) forward, gradient 1{|x| <= t} (the official ``Binary`` estimator, at threshold t)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, t: float) -> Tensor:
        ctx.save_for_backward(x)
        ctx.t = t
        return torch.sign(x)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None]:
        (x,) = ctx.saved_tensors
        return grad_output * (x.abs() <= ctx.t).to(grad_output.dtype), None


@functools.cache
def clipped_ste_layer() -> type[nn.Module]:
    """ReSTELinear with its binariser replaced by the clipped STE at the same threshold (scale, shapes alike)."""
    from gradhub_reste.layers import ReSTELinear

    class ClippedSTELinear(ReSTELinear):
        def binarize(self, values: Tensor, t: float) -> Tensor:
            return _ClippedSTE.apply(values, t)

    return ClippedSTELinear


def gaussian_mixture(
    seed: int, train: int = 2000, test: int = 2000, dim: int = 32, classes: int = 10, separation: float = 2.5
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """10 classes in R^32: means ``separation`` x random unit vectors, N(0, I) noise; (x, y) train and test."""
    generator = torch.Generator().manual_seed(10_000 + seed)
    means = torch.randn(classes, dim, generator=generator)
    means = separation * means / means.norm(dim=1, keepdim=True)
    labels = torch.randint(classes, (train + test,), generator=generator)
    points = means[labels] + torch.randn(train + test, dim, generator=generator)
    return points[:train], labels[:train], points[train:], labels[train:]


def binary_mlp(layer: type[nn.Module], seed: int, hidden: int = 64, dim: int = 32, classes: int = 10) -> nn.Sequential:
    """32 -> 64 (full precision), two 64 -> 64 1W1A layers, -> 10 (full precision); BatchNorm before the signs."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(dim, hidden),
        nn.BatchNorm1d(hidden),
        layer(hidden, hidden),
        nn.BatchNorm1d(hidden),
        layer(hidden, hidden),
        nn.BatchNorm1d(hidden),
        nn.Linear(hidden, classes),
    )


@dataclass
class TrainingRun:
    """What one training run leaves: per-step losses, per-epoch history, final parameters and accuracy."""

    losses: list[Tensor] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    powers: list[float] = field(default_factory=list)
    estimating_errors: list[float] = field(default_factory=list)
    gradient_stabilities: list[float] = field(default_factory=list)
    state: dict[str, Tensor] = field(default_factory=dict)

    @property
    def final_accuracy(self) -> float:
        return self.test_accuracy[-1]

    @property
    def finite(self) -> bool:
        return bool(torch.isfinite(torch.stack(self.losses)).all()) and all(
            bool(torch.isfinite(value).all()) for value in self.state.values()
        )


def _accuracy(model: nn.Module, points: Tensor, labels: Tensor) -> float:
    model.eval()
    with torch.no_grad():
        value = (model(points).argmax(1) == labels).float().mean().item()
    model.train()
    return 100.0 * value


def train_mlp(
    layer: type[nn.Module],
    seed: int,
    epochs: int = 15,
    o: float | None = None,
    lr: float = 2e-3,
    batch_size: int = 200,
    indicators: bool = False,
) -> TrainingRun:
    """Adam with a cosine learning rate on the Gaussian mixture; o from the official schedule (1 -> 3 over
    ``epochs``, set at the start of each epoch) or fixed at ``o``.

    With ``indicators``, the probe ``reste_indicators`` (o = 3) is read after the last backward of every epoch.
    """
    from gradhub_reste.indicators import reste_indicators
    from gradhub_reste.layers import set_reste_o
    from gradhub_reste.schedules import ReSTEPowerSchedule

    train_x, train_y, test_x, test_y = gaussian_mixture(seed)
    model = binary_mlp(layer, seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    learning_rate = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * math.ceil(len(train_y) / batch_size))
    schedule = ReSTEPowerSchedule(epochs)
    generator = torch.Generator().manual_seed(seed)
    run = TrainingRun()
    for epoch in range(epochs):
        if o is None:
            run.powers.append(schedule.apply(model, epoch))
        else:
            set_reste_o(model, o)
            run.powers.append(o)
        for batch in torch.randperm(train_x.shape[0], generator=generator).split(batch_size):
            loss = nn.functional.cross_entropy(model(train_x[batch]), train_y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            run.losses.append(loss.detach())
            optimizer.step()
            learning_rate.step()
        if indicators:
            measured = reste_indicators(model, o=3.0)  # the last batch's gradients, as official (per step)
            run.estimating_errors.append(float(measured.estimating_error))
            run.gradient_stabilities.append(float(measured.gradient_stability))
        run.test_accuracy.append(_accuracy(model, test_x, test_y))
    run.train_accuracy.append(_accuracy(model, train_x, train_y))
    run.state = {name: value.detach().clone() for name, value in model.state_dict().items()}
    return run


@functools.cache
def clipped_ste_run(seed: int, epochs: int) -> TrainingRun:
    """The baseline's run (indicators read every epoch; reading them changes nothing), computed once per process.

    Every claim and test compares against the same deterministic baseline, so it is trained once; do not
    modify the returned run.
    """
    return train_mlp(clipped_ste_layer(), seed, epochs, o=1.0, indicators=True)


def training_non_inferiority(layer: type[nn.Module] | None = None, seeds: int = 3, epochs: int = 15) -> ClaimResult:
    """Claim (ii): ReSTE (o: 1 -> 3, cosine) trains a 1W1A MLP at least as well as the clipped STE.

    Synthetic 10-class Gaussian mixture (d = 32, 2000 train / 2000 test); MLP 32 -> 64 (full
    precision) -> two 64 -> 64 1W1A layers (BatchNorm before each) -> 10 (full precision); Adam
    lr 2e-3 with a cosine decay, batch 200, 15 epochs, seeds 0-2; the probe ``reste_indicators``
    read once per epoch (seed 0). Baseline: the same layers with sign and the clipped STE
    1{|x| <= 1.5} (same threshold, same mean|W| scale).

    Criterion: mean ReSTE test accuracy >= mean STE - 1 point (claim (ii)'s non-inferiority), every
    ReSTE loss and final parameter finite, and mean ReSTE train accuracy >= mean STE + 2 points
    (the estimator's effect on optimisation, consistent in every configuration tried: +4 to +15
    points; it catches an inverted exponent, which the test accuracy alone does not).
    Measured (torch 2.13, CPU, seeds 0-2): test 71.10 / 69.10 / 69.70 vs 69.25 / 68.95 / 69.85
    (+0.62 points), train 83.43 vs 78.03 (+5.4 points).
    """
    from gradhub_reste.layers import ReSTELinear

    layer = layer or ReSTELinear
    with single_thread():
        reste_runs = [train_mlp(layer, seed, epochs, indicators=seed == 0) for seed in range(seeds)]
        ste_runs = [clipped_ste_run(seed, epochs) for seed in range(seeds)]
    reste = [run.final_accuracy for run in reste_runs]
    ste = [run.final_accuracy for run in ste_runs]
    reste_mean, ste_mean = sum(reste) / seeds, sum(ste) / seeds
    reste_train = sum(run.train_accuracy[-1] for run in reste_runs) / seeds
    ste_train = sum(run.train_accuracy[-1] for run in ste_runs) / seeds
    finite = all(run.finite for run in reste_runs)
    measured = {f"ReSTE test accuracy, seed {seed} (%)": value for seed, value in enumerate(reste)}
    measured |= {f"STE test accuracy, seed {seed} (%)": value for seed, value in enumerate(ste)}
    measured |= {
        "ReSTE test mean (%)": reste_mean,
        "STE test mean (%)": ste_mean,
        "ReSTE - STE, test (points)": reste_mean - ste_mean,
        "ReSTE train mean (%)": reste_train,
        "STE train mean (%)": ste_train,
        "ReSTE - STE, train (points)": reste_train - ste_train,
        "ReSTE losses and parameters finite (all seeds)": float(finite),
    }
    epochs_axis = list(range(1, epochs + 1))
    first_reste, first_ste = reste_runs[0], ste_runs[0]
    figures = [
        LinePlot(
            title="1W1A MLP, seed 0: test accuracy per epoch, ReSTE (o: 1 -> 3) vs clipped STE",
            series=[
                Series("ReSTE", epochs_axis, first_reste.test_accuracy),
                Series("clipped STE", epochs_axis, first_ste.test_accuracy),
            ],
            xlabel="epoch",
            ylabel="test accuracy (%)",
        ),
        LinePlot(
            title="1W1A MLP, seed 0: gradient stability sum Var|dL/dw| (probe reste_indicators) per epoch",
            series=[
                Series("ReSTE (o: 1 -> 3)", epochs_axis, first_reste.gradient_stabilities),
                Series("clipped STE", epochs_axis, first_ste.gradient_stabilities),
            ],
            xlabel="epoch",
            ylabel="sum over binary layers of Var|dL/dw|",
            yscale="log",
        ),
    ]
    return ClaimResult(
        claim="Training with the rectified estimator and o rising from 1 to 3 gives binary networks at least as "
        "accurate as the straight-through estimator (paper: +0.5 to +1.5 points on CIFAR-10 and ImageNet), "
        "and fits the training data better",
        criterion=f"over {seeds} seeds: mean ReSTE test accuracy >= mean clipped-STE test accuracy - 1 point, "
        "ReSTE runs finite, and mean ReSTE train accuracy >= mean STE train accuracy + 2 points",
        measured=measured,
        passed=reste_mean >= ste_mean - 1.0 and finite and reste_train >= ste_train + 2.0,
        details=f"reported, not gated: ReSTE test accuracy above STE on average: "
        f"{'yes' if reste_mean > ste_mean else 'no'} ({reste_mean - ste_mean:+.2f} points)",
        figures=figures,
    )


def o_one_is_ste(layer: type[nn.Module] | None = None, seed: int = 0, epochs: int = 15) -> ClaimResult:
    """Claim (iii): ReSTE with o fixed at 1 trains exactly as the clipped STE, bit for bit.

    The MLP of claim (ii), seed 0, 15 epochs (150 Adam steps): every loss and every final parameter
    and buffer of the ReSTE run at o = 1 must equal the clipped-STE run's (``torch.equal``); a run at
    o = 2 must differ (so the comparison can see a difference).
    """
    from gradhub_reste.layers import ReSTELinear

    layer = layer or ReSTELinear
    with single_thread():
        reste = train_mlp(layer, seed, epochs, o=1.0)
        other = train_mlp(layer, seed, epochs, o=2.0)
        ste = clipped_ste_run(seed, epochs)

    def differing(run: TrainingRun) -> tuple[int, int]:
        losses = sum(not torch.equal(a, b) for a, b in zip(run.losses, ste.losses))
        tensors = sum(not torch.equal(run.state[name], ste.state[name]) for name in ste.state)
        return losses, tensors

    losses, tensors = differing(reste)
    other_losses, other_tensors = differing(other)
    max_difference = max(float((reste.state[name] - ste.state[name]).abs().max()) for name in ste.state)
    measured = {
        "losses differing, o = 1 vs STE": float(losses),
        "parameters and buffers differing, o = 1 vs STE": float(tensors),
        "max |difference| of final parameters, o = 1 vs STE": max_difference,
        "losses differing, o = 2 vs STE": float(other_losses),
        "steps": float(len(ste.losses)),
        "STE test accuracy (%)": ste.final_accuracy,
        "ReSTE o = 1 test accuracy (%)": reste.final_accuracy,
    }
    return ClaimResult(
        claim="At o = 1 the surrogate F_1 is the identity: ReSTE is the clipped straight-through estimator",
        criterion=f"{epochs} epochs with o fixed at 1: every loss and final parameter bitwise equal to the "
        "clipped-STE run; at o = 2 some differ",
        measured=measured,
        passed=losses == 0 and tensors == 0 and (other_losses > 0 or other_tensors > 0),
        details=f"{len(ste.losses)} Adam steps, seed {seed}; compared with torch.equal",
    )
