"""Claim check for AnyLoss: on imbalanced data it learns the metric's operating point, BCE does not.

The paper's claim (§1, §5.4): training directly on a confusion-matrix metric through the
approximation function beats BCE on that metric for imbalanced data, without a threshold
search. Set-up: 2-D data, 5% positives from N((1.5, 1.5), I), negatives from
N(0, I); 2 000 training points (seed 0) and a fresh test set of 20 000 (seed 1); a logistic
regression (seeded default ``nn.Linear`` init) trained full-batch with Adam (lr 1e-2,
1 000 steps) in float64 on BCE, on AnyLoss(f1) and on AnyLoss(balanced_accuracy); hard
metrics at threshold 0.5 on the test set.

Measured (torch 2.13, CPU, float64): test F1 at 0.5 of converged BCE 0.481 (the first-proposed
Adam-1000-step BCE, not converged: 0.433), AnyLoss(f1) 0.549, converged BCE's best F1 over
thresholds 0.554 (at 0.25); balanced accuracy converged BCE 0.671 (Adam-1000: 0.646),
AnyLoss(balanced_accuracy) 0.855. Deliberately wrong losses fail (tests/test_claims.py):
no amplification (L = 1) F1 0.397; FP and FN swapped in balanced accuracy 0.501; labels
flipped (TP counted on negatives) F1 0.095; A without the 0.5 shift F1 0.169.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import Tensor, nn

from gradhub.claims import ClaimResult
from gradhub.figures import LinePlot, Series

LossFunction = Callable[[Tensor, Tensor], Tensor]

F1_MARGIN_OVER_BCE = 0.05
F1_GAP_TO_BEST_THRESHOLD = 0.02
BALANCED_ACCURACY_MARGIN_OVER_BCE = 0.10


def imbalanced_blobs(seed: int, count: int, positive_fraction: float = 0.05) -> tuple[Tensor, Tensor]:
    """``count`` points, exactly ``round(positive_fraction * count)`` of them positive (float64)."""
    generator = torch.Generator().manual_seed(seed)
    positives = round(positive_fraction * count)
    features = torch.cat(
        (
            torch.randn(positives, 2, generator=generator, dtype=torch.float64) + 1.5,
            torch.randn(count - positives, 2, generator=generator, dtype=torch.float64),
        )
    )
    labels = torch.cat((torch.ones(positives), torch.zeros(count - positives))).double()
    return features, labels


def hard_f1(probabilities: Tensor, labels: Tensor, threshold: float | Tensor = 0.5) -> Tensor:
    """F1 of ``probabilities > threshold``; a tensor of thresholds gives one F1 per threshold."""
    predicted = (probabilities.unsqueeze(-1) > torch.as_tensor(threshold, dtype=probabilities.dtype)).double()
    labels = labels.unsqueeze(-1)
    tp = (predicted * labels).sum(0)
    fp_plus_fn = (predicted * (1 - labels)).sum(0) + ((1 - predicted) * labels).sum(0)
    return (2 * tp / (2 * tp + fp_plus_fn).clamp_min(1)).squeeze(-1)


def hard_balanced_accuracy(probabilities: Tensor, labels: Tensor, threshold: float = 0.5) -> Tensor:
    predicted = (probabilities > threshold).double()
    true_positive_rate = (predicted * labels).sum() / labels.sum()
    true_negative_rate = ((1 - predicted) * (1 - labels)).sum() / (1 - labels).sum()
    return (true_positive_rate + true_negative_rate) / 2


def train_logistic_regression(
    loss_function: LossFunction, features: Tensor, labels: Tensor, steps: int = 1000, lr: float = 1e-2
) -> tuple[nn.Linear, Tensor, Tensor]:
    """Full-batch Adam on ``loss_function(sigmoid(model(x)), y)``; returns the model, the loss per
    step and the training F1 at threshold 0.5 every 10 steps (kept on device, read once)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = nn.Linear(2, 1).double()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses, f1_curve = [], []
    for step in range(steps):
        optimizer.zero_grad()
        probabilities = torch.sigmoid(model(features).squeeze(1))
        loss = loss_function(probabilities, labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
        if step % 10 == 0:
            f1_curve.append(hard_f1(probabilities.detach(), labels))
    return model, torch.stack(losses), torch.stack(f1_curve)


def train_bce_to_convergence(features: Tensor, labels: Tensor) -> nn.Linear:
    """BCE's minimiser for the logistic regression (convex): L-BFGS with a strong-Wolfe line search
    from the same initialisation; converges in about 20 iterations (gradient norm ~1e-8)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = nn.Linear(2, 1).double()
    optimizer = torch.optim.LBFGS(
        model.parameters(),
        lr=1,
        max_iter=200,
        tolerance_grad=1e-10,
        tolerance_change=1e-14,
        line_search_fn="strong_wolfe",
    )

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(model(features).squeeze(1), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    return model


@functools.lru_cache(maxsize=1)
def _bce_baselines() -> tuple[tuple[nn.Linear, Tensor, Tensor], nn.Linear]:
    """The two BCE baselines; deterministic, so computed once per process (the tests run the
    criterion on several wrong losses against the same baselines)."""
    features, labels = imbalanced_blobs(0, 2000)
    adam_run = train_logistic_regression(nn.functional.binary_cross_entropy, features, labels)
    return adam_run, train_bce_to_convergence(features, labels)


def _default_f1_loss() -> LossFunction:
    from gradhub_anyloss.anyloss import AnyLoss

    return AnyLoss(metric="f1")


def _default_balanced_accuracy_loss() -> LossFunction:
    from gradhub_anyloss.anyloss import AnyLoss

    return AnyLoss(metric="balanced_accuracy")


def imbalanced_f1_and_balanced_accuracy(
    f1_loss: LossFunction | None = None, balanced_accuracy_loss: LossFunction | None = None
) -> ClaimResult:
    """AnyLoss(f1) beats converged BCE's F1 at 0.5 by >= 0.05 and comes within 0.02 of BCE's
    best-threshold F1; AnyLoss(balanced_accuracy) beats BCE's balanced accuracy by >= 0.10.

    The baseline is BCE's minimiser (L-BFGS): the first-proposed BCE run (Adam, 1 000 steps) has not
    converged (test F1 0.433, 0.480 at convergence), and its margin of 0.10 holds only for that
    under-trained baseline; it is reported, not judged. Thresholds are calibrated on this
    implementation (measured margins 0.068, gap 0.006, 0.184; module docstring); every wrong
    loss tried misses at least one of them by far. ``f1_loss`` and ``balanced_accuracy_loss``
    replace the two AnyLoss losses, so the tests can run the criterion on wrong ones.
    """
    f1_loss = f1_loss or _default_f1_loss()
    balanced_accuracy_loss = balanced_accuracy_loss or _default_balanced_accuracy_loss()
    features, labels = imbalanced_blobs(0, 2000)
    test_features, test_labels = imbalanced_blobs(1, 20000)
    bce_adam_run, bce_converged = _bce_baselines()
    runs = {
        "BCE (Adam, 1000 steps)": bce_adam_run,
        "AnyLoss(f1)": train_logistic_regression(f1_loss, features, labels),
        "AnyLoss(balanced_accuracy)": train_logistic_regression(balanced_accuracy_loss, features, labels),
    }
    models = {"BCE (converged)": bce_converged, **{n: run[0] for n, run in runs.items()}}
    with torch.no_grad():
        test_probabilities = {name: torch.sigmoid(model(test_features).squeeze(1)) for name, model in models.items()}
    thresholds = torch.linspace(0.01, 0.99, 99, dtype=torch.float64)
    bce_f1_curve = hard_f1(test_probabilities["BCE (converged)"], test_labels, thresholds)
    best_index = int(bce_f1_curve.argmax())
    f1 = {name: hard_f1(p, test_labels).item() for name, p in test_probabilities.items()}
    balanced = {name: hard_balanced_accuracy(p, test_labels).item() for name, p in test_probabilities.items()}
    best_f1 = bce_f1_curve[best_index].item()
    best_threshold = thresholds[best_index].item()
    passed = (
        f1["AnyLoss(f1)"] >= f1["BCE (converged)"] + F1_MARGIN_OVER_BCE
        and f1["AnyLoss(f1)"] >= best_f1 - F1_GAP_TO_BEST_THRESHOLD
        and balanced["AnyLoss(balanced_accuracy)"] >= balanced["BCE (converged)"] + BALANCED_ACCURACY_MARGIN_OVER_BCE
    )
    from gradhub_anyloss.anyloss import approximation

    steps = torch.arange(len(runs["AnyLoss(f1)"][1]))
    every_tenth = torch.arange(0, len(steps), 10)
    amplification_input = torch.linspace(0, 1, 201, dtype=torch.float64)
    up_to_half = [thresholds[0].item(), 0.5]  # a level's segment: from the lowest threshold swept to 0.5
    figures = [
        LinePlot(
            title="Test F1 against the decision threshold (converged BCE model) and AnyLoss(f1) at 0.5",
            # The two F1s at 0.5 as levels ending at the threshold 0.5 (drawn after the curve, so on top):
            # as one-point "points" series they were drawn under the curve, and BCE's sat on it, hidden.
            series=[
                Series("BCE model, threshold swept", thresholds, bce_f1_curve),
                *(
                    Series(f"{label} at 0.5: F1 {f1[model]:.3f}", up_to_half, [f1[model]] * 2, "dashed")
                    for label, model in (("AnyLoss(f1) model", "AnyLoss(f1)"), ("BCE model", "BCE (converged)"))
                ),
            ],
            xlabel="decision threshold",
            ylabel="test F1",
            vlines=[(0.5, "threshold 0.5"), (best_threshold, f"BCE best threshold {best_threshold:.2f}")],
        ),
        LinePlot(
            title="Training F1 at threshold 0.5 (full-batch Adam, lr 1e-2)",
            series=[Series(name, every_tenth, run[2]) for name, run in runs.items()],
            xlabel="Adam step",
            ylabel="training F1",
        ),
        LinePlot(
            title="Training loss (each model's own objective)",
            series=[Series(name, steps, run[1]) for name, run in runs.items()],
            xlabel="Adam step",
            ylabel="loss",
        ),
        LinePlot(
            title="The approximation function A(p) = 1 / (1 + exp(-L (p - 0.5))) (Eq. 1)",
            series=[
                Series(f"L = {L:g}", amplification_input, approximation(amplification_input, L))
                for L in (1.0, 5.0, 20.0, 73.0)
            ],
            xlabel="p",
            ylabel="A(p)",
            vlines=[(0.5, "threshold 0.5")],
        ),
    ]
    details = "\n".join(f"{name:<28} test F1 {f1[name]:.4f}  balanced accuracy {balanced[name]:.4f}" for name in models)
    details += f"\nconverged BCE's best F1 over thresholds 0.01..0.99: {best_f1:.4f} at {best_threshold:.2f}"
    return ClaimResult(
        claim="On imbalanced data AnyLoss trains a classifier for the metric itself: AnyLoss(f1) reaches "
        "the F1 that BCE only reaches after tuning its threshold, and AnyLoss(balanced_accuracy) a higher "
        "balanced accuracy than BCE, at threshold 0.5.",
        criterion=f"test F1 AnyLoss(f1) >= converged BCE + {F1_MARGIN_OVER_BCE} and >= BCE's best-threshold F1 - "
        f"{F1_GAP_TO_BEST_THRESHOLD}; balanced accuracy AnyLoss(balanced_accuracy) >= converged BCE + "
        f"{BALANCED_ACCURACY_MARGIN_OVER_BCE}",
        measured={
            "test F1 BCE (converged)": f1["BCE (converged)"],
            "test F1 BCE (Adam, 1000 steps)": f1["BCE (Adam, 1000 steps)"],
            "test F1 AnyLoss(f1)": f1["AnyLoss(f1)"],
            "test F1 BCE best threshold": best_f1,
            "BCE best threshold": best_threshold,
            "test balanced accuracy BCE (converged)": balanced["BCE (converged)"],
            "test balanced accuracy BCE (Adam, 1000 steps)": balanced["BCE (Adam, 1000 steps)"],
            "test balanced accuracy AnyLoss(balanced_accuracy)": balanced["AnyLoss(balanced_accuracy)"],
            "test F1 AnyLoss(balanced_accuracy)": f1["AnyLoss(balanced_accuracy)"],
            "test balanced accuracy AnyLoss(f1)": balanced["AnyLoss(f1)"],
        },
        passed=bool(passed),
        details=details,
        figures=figures,
    )
