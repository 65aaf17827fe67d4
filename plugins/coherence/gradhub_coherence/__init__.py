"""gradhub-coherence: coherent gradients (Chatterjee & Zielinski, 2022) as gradhub methods.

The entry module: specs and hyperparameter models only, no torch. Implementations:
:mod:`gradhub_coherence.per_example` (per-example gradients with ``torch.func``),
:mod:`gradhub_coherence.coherence` (the alpha / m-coherence probe),
:mod:`gradhub_coherence.aggregation` (winsorized mean, median of means),
:mod:`gradhub_coherence.robust_sgd` (the two optimizers).

The optimizers read per-example gradients from ``param.grad_sample`` (shape
``(m, *param.shape)``, the Opacus convention), filled by
:func:`gradhub_coherence.per_example.attach_per_example_grads`, by Opacus's
``GradSampleModule`` or by ``torch.nn.utils._per_sample_grad.call_for_per_sample_grads``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from pydantic import Field, Strict

import gradhub
import gradhub.exports
from gradhub.hyperparameters import Flag, Hyperparameters, LearningRate, Momentum, WeightDecay
from gradhub.specs import MethodSpec, Paper

PAPER = Paper(
    title="On the Generalization Mystery in Deep Learning",
    authors=("Satrajit Chatterjee", "Piotr Zielinski"),
    year=2022,
    arxiv="2203.10036",
    url="https://arxiv.org/abs/2203.10036",
)

FOREACH = "multi-tensor SGD update; None picks it on CPU and CUDA (an addition, not in the paper)"
CHUNK = "examples per vmap chunk: bounds memory at chunk_size x (number of parameters)"

DDP = (
    "the aggregate is an order statistic of per-example gradients (param.grad_sample), which DDP neither "
    "averages nor gathers: each rank would winsorize / take medians over its own examples only and the replicas "
    "diverge; needs an all_gather of grad_sample (RM3, running=True, uses the all-reduced .grad and would work)"
)
FSDP2 = "per-example gradients (grad_sample) are not sharded or reduce-scattered by fully_shard"

NonNegativeInt = Annotated[int, Strict(), Field(ge=0)]
PositiveInt = Annotated[int, Strict(), Field(ge=1)]


class WinsorizedSGDHyperparameters(Hyperparameters):
    """Winsorized SGD (Sec. 9 of the paper; "winsorized GD" of Chatterjee 2020)."""

    lr: LearningRate
    momentum: Momentum = 0.0
    weight_decay: WeightDecay = 0.0
    c: NonNegativeInt = Field(1, description="extreme values clipped at each end, per coordinate (0: plain SGD)")
    foreach: Flag | None = Field(None, description=FOREACH)


class M3SGDHyperparameters(Hyperparameters):
    """Median-of-means SGD (M3) and its running variant (RM3)."""

    lr: LearningRate
    momentum: Momentum = 0.0
    weight_decay: WeightDecay = 0.0
    n_groups: PositiveInt = Field(3, description="groups the batch is split into; their means' median is used")
    running: Flag = Field(False, description="RM3: median of this and the two previous minibatch gradients")
    foreach: Flag | None = Field(None, description=FOREACH)


class MCoherenceHyperparameters(Hyperparameters):
    chunk_size: PositiveInt = Field(64, description=CHUNK)


class PerExampleGradsHyperparameters(Hyperparameters):
    chunk_size: PositiveInt | None = Field(None, description=CHUNK + "; None: all at once")


_OPTIMIZER = dict(
    kind="optimizer",
    paper=PAPER,
    tags=("coherent-gradients", "per-example-gradients", "robust-mean", "memorization"),
    dtypes=("float32", "float64"),
    capabilities={
        "supports_foreach": True,
        "ddp": {"status": "unsupported", "reason": DDP},
        "fsdp2": {"status": "unsupported", "reason": FSDP2},
    },
    claims=("gradhub_coherence.claims:noisy_label_memorization",),
)

SPECS = (
    MethodSpec(
        name="winsorized_sgd",
        summary="SGD on the coordinate-wise winsorized mean of per-example gradients (suppresses weak directions)",
        target="gradhub_coherence.robust_sgd:WinsorizedSGD",
        params=WinsorizedSGDHyperparameters,
        example="gradhub_coherence.examples:winsorized_sgd_example",
        **_OPTIMIZER,
    ),
    MethodSpec(
        name="median_of_means_sgd",
        summary="SGD on the coordinate-wise median of group-mean gradients (M3), or a running median (RM3)",
        target="gradhub_coherence.robust_sgd:M3SGD",
        params=M3SGDHyperparameters,
        example="gradhub_coherence.examples:median_of_means_sgd_example",
        **_OPTIMIZER,
    ),
    MethodSpec(
        name="m_coherence",
        kind="probe",
        summary="Coherence alpha of per-example gradients and m-coherence m*alpha = alpha/alpha_perp",
        paper=PAPER,
        target="gradhub_coherence.coherence:m_coherence",
        params=MCoherenceHyperparameters,
        example="gradhub_coherence.examples:m_coherence_example",
        claims=("gradhub_coherence.claims:real_vs_random_coherence",),
        tags=("coherent-gradients", "per-example-gradients", "generalization"),
        dtypes=("float32", "float64"),
    ),
    MethodSpec(
        name="per_example_grads",
        kind="probe",
        summary="Per-example gradients of a model's loss with torch.func (vmap over grad), chunked",
        paper=PAPER,
        target="gradhub_coherence.per_example:per_example_grads",
        params=PerExampleGradsHyperparameters,
        example="gradhub_coherence.examples:per_example_grads_example",
        tags=("per-example-gradients",),
        dtypes=("float32", "float64"),
    ),
)

__getattr__ = gradhub.exports.lazy_exports(
    __name__,
    {
        "WinsorizedSGD": "gradhub_coherence.robust_sgd",
        "M3SGD": "gradhub_coherence.robust_sgd",
        "m_coherence": "gradhub_coherence.coherence",
        "coherence_from_grads": "gradhub_coherence.coherence",
        "CoherenceResult": "gradhub_coherence.coherence",
        "per_example_grads": "gradhub_coherence.per_example",
        "attach_per_example_grads": "gradhub_coherence.per_example",
        "winsorized_mean": "gradhub_coherence.aggregation",
        "median_of_means": "gradhub_coherence.aggregation",
    },
)


@gradhub.hookimpl
def register_methods(register: Callable[[MethodSpec], None]) -> None:
    for spec in SPECS:
        register(spec)
