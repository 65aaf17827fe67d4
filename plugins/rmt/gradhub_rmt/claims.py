"""Claim check for RMT: online accuracy along a gradual domain shift, without error accumulation.

Claim (abstract, Sec. 4.3 "gradual" setting): a mean teacher trained with the symmetric
cross-entropy (and the contrastive loss) adapts to a gradually shifting test stream and keeps
its accuracy, where the usual cross-entropy consistency accumulates errors; both beat the
unadapted source model.

Set-up (synthetic, calibrated here; see the README for the measured values):

* ten Gaussian classes in 2-D, means on a circle of radius 4 (36 degrees apart), standard
  deviation 0.3, lifted to 16-D by a seeded orthonormal map plus N(0, 0.1^2) noise in every
  dimension;
* source model: Linear(16, 64)-BN-ReLU-Linear(64, 32)-BN-ReLU features and a Linear(32, 10)
  head, 300 Adam steps (lr 1e-2, batch 128) on 4000 source samples (~99.8 % source accuracy);
* target stream: 30 batches of 128 whose class layout is rotated by 22 degrees x (b + 1) / 30
  (b = 0..29): the shift grows linearly; beyond 18 degrees a point sits nearer the
  neighbouring class's source mean. A rotation keeps the data's mean and covariance, so the
  source model's BatchNorm statistics are not what is wrong: the shift must be tracked by
  adaptation. Each batch is predicted, then adapted on (online, continual; never reset);
* methods: the source model (eval mode); a TENT-like baseline (entropy minimisation of the
  BatchNorm affine parameters, batch statistics, Adam lr 1e-2); a mean teacher with the standard
  consistency CE(q -> p) on the clean and augmented views and no contrastive term ("CE mean
  teacher", the same adapter class, :class:`CEMeanTeacher`); and RMT, source-free
  (lambda_ce_src = 0, no warm-up, prototypes from the source training set), lr 1e-2, teacher
  momentum 0.6 (the stream is 30 steps, not the paper's thousands: a teacher that averages over
  a few batches), temperature 0.1, projection width 128, default augmentation
  (:class:`~gradhub_rmt.rmt.NoiseAndScale`: scale U[0.9, 1.1], 5 % relative Gaussian noise).

Criterion (means over seeds 0, 1, 2 of each method's mean online accuracy over the 30 batches):
RMT >= source + 5 points, RMT >= CE mean teacher + 2 points, and RMT's accuracy on the last 5
batches is at most 3 points below its accuracy on batches 5 to 10.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gradhub.claims import ClaimResult, single_thread
from gradhub.figures import LinePlot, Series
from gradhub_rmt.losses import cross_entropy_between
from gradhub_rmt.rmt import RMT, NoiseAndScale

__all__ = ["CEMeanTeacher", "gradual_shift", "online_accuracies", "rotated_classes"]

CLASSES, DIMENSION = 10, 16
RADIUS, SPREAD, NOISE = 4.0, 0.3, 0.1
ROTATION_DEGREES = 22.0
BATCHES, BATCH_SIZE = 30, 128
SEEDS = (0, 1, 2)
LR, TEACHER_MOMENTUM = 1e-2, 0.6


class CEMeanTeacher(RMT):
    """The baseline: RMT's framework with the standard mean-teacher consistency 1/2 [CE(q -> p) + CE(q -> p')]."""

    def self_training_loss(self, logits: Tensor, teacher_logits: Tensor, aug_logits: Tensor) -> Tensor:
        return (
            0.5
            * (cross_entropy_between(teacher_logits, logits) + cross_entropy_between(teacher_logits, aug_logits)).mean()
        )


def rotated_classes(count: int, degrees: float, lift: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``count`` samples of the ten classes, their 2-D layout rotated by ``degrees``, lifted to 16-D (float32)."""
    labels = torch.randint(0, CLASSES, (count,), generator=generator)
    angles = 2 * math.pi * labels.double() / CLASSES + math.radians(degrees)
    latent = RADIUS * torch.stack([angles.cos(), angles.sin()], 1)
    latent = latent + SPREAD * torch.randn(count, 2, generator=generator, dtype=torch.float64)
    points = latent @ lift.T + NOISE * torch.randn(count, DIMENSION, generator=generator, dtype=torch.float64)
    return points.float(), labels


@functools.lru_cache(maxsize=len(SEEDS))
def _problem(seed: int) -> tuple[nn.Sequential, list[tuple[Tensor, Tensor]], list[tuple[Tensor, Tensor]]]:
    """The trained source model, the source set in batches of 256 and the target stream, for one seed."""
    generator = torch.Generator().manual_seed(seed)
    lift = torch.linalg.qr(torch.randn(DIMENSION, DIMENSION, generator=generator, dtype=torch.float64))[0][:, :2]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        features = nn.Sequential(
            nn.Linear(DIMENSION, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU()
        )
        model = nn.Sequential(features, nn.Linear(32, CLASSES))
    x, y = rotated_classes(4000, 0.0, lift, generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):
        rows = torch.randint(0, len(x), (128,), generator=generator)
        loss = F.cross_entropy(model(x[rows]), y[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    source = [(x[i : i + 256], y[i : i + 256]) for i in range(0, len(x), 256)]
    stream = [
        rotated_classes(BATCH_SIZE, ROTATION_DEGREES * (b + 1) / BATCHES, lift, generator) for b in range(BATCHES)
    ]
    return model, source, stream


def _tent(model: nn.Module, stream: Sequence[tuple[Tensor, Tensor]], lr: float = 1e-2) -> list[float]:
    """TENT-like: minimise the prediction entropy over the BatchNorm affine parameters (batch statistics)."""
    model = copy.deepcopy(model).train().requires_grad_(False)
    parameters = []
    for module in model.modules():
        if isinstance(module, nn.BatchNorm1d):
            module.track_running_stats, module.running_mean, module.running_var = False, None, None
            module.requires_grad_(True)
            parameters += [module.weight, module.bias]
    optimizer = torch.optim.Adam(parameters, lr=lr)
    accuracies = []
    for x, y in stream:
        logits = model(x)
        entropy = -(logits.softmax(1) * logits.log_softmax(1)).sum(1).mean()
        optimizer.zero_grad()
        entropy.backward()
        optimizer.step()
        accuracies.append((logits.argmax(1) == y).float().mean().item())
    return accuracies


def online_accuracies(adapter: type[RMT], seed: int, **hparams: float) -> list[float]:
    """Accuracy of ``adapter``'s ensemble prediction on each batch of the stream (predicted, then adapted on)."""
    model, source, stream = _problem(seed)
    generator = torch.Generator().manual_seed(seed)
    settings = {"lr": LR, "teacher_momentum": TEACHER_MOMENTUM, "lambda_ce_src": 0.0, "warmup_samples": 0, **hparams}
    rmt = adapter(
        copy.deepcopy(model),
        source_loader=source,
        generator=generator,
        tta_transform=NoiseAndScale(generator=generator),
        **settings,
    )
    return [(rmt(x).argmax(1) == y).float().mean().item() for x, y in stream]


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def gradual_shift(adapter: type[RMT] = RMT, seeds: Sequence[int] = SEEDS) -> ClaimResult:
    """RMT tracks a gradually rotating stream; the CE mean teacher and the source model fall behind."""
    with single_thread():
        curves: dict[str, list[list[float]]] = {"source": [], "TENT-like": [], "CE mean teacher": [], "RMT": []}
        for seed in seeds:
            model, _, stream = _problem(seed)
            with torch.no_grad():
                curves["source"].append([(model(x).argmax(1) == y).float().mean().item() for x, y in stream])
            curves["TENT-like"].append(_tent(model, stream))
            curves["CE mean teacher"].append(online_accuracies(CEMeanTeacher, seed, lambda_cont=0.0))
            curves["RMT"].append(online_accuracies(adapter, seed))
    mean_curves = {name: [_mean(column) for column in zip(*runs)] for name, runs in curves.items()}
    average = {name: _mean(curve) for name, curve in mean_curves.items()}
    rmt_curve = mean_curves["RMT"]
    early, late = _mean(rmt_curve[4:10]), _mean(rmt_curve[-5:])
    measured = {f"{name} mean online accuracy": value for name, value in average.items()}
    measured.update({"RMT accuracy, batches 5-10": early, "RMT accuracy, last 5 batches": late})
    passed = (
        average["RMT"] >= average["source"] + 0.05
        and average["RMT"] >= average["CE mean teacher"] + 0.02
        and late >= early - 0.03
    )
    angles = [ROTATION_DEGREES * (b + 1) / BATCHES for b in range(BATCHES)]
    figure = LinePlot(
        title=f"Online accuracy along a gradual rotation ({len(seeds)} seeds)",
        series=[Series(name, angles, curve) for name, curve in mean_curves.items()],
        xlabel="rotation of the test batch (degrees; 18 = half-way to the next class)",
        ylabel="accuracy on the batch",
        vlines=[(18.0, "half the class spacing")],
    )
    details = "\n".join(
        f"{name:>16}: " + " ".join(f"{value:.2f}" for value in curve[::3]) for name, curve in mean_curves.items()
    )
    return ClaimResult(
        claim="A mean teacher trained with the symmetric cross-entropy and the contrastive loss adapts to a "
        "gradually shifting stream without accumulating errors, where the standard CE mean teacher does not.",
        criterion="30 batches rotated 0 -> 22 degrees, means over 3 seeds: RMT >= source + 5 points and >= CE mean "
        "teacher + 2 points (mean online accuracy); RMT on the last 5 batches >= on batches 5-10 - 3 points",
        measured=measured,
        passed=passed,
        details="accuracy every 3rd batch:\n" + details,
        figures=[figure],
    )
