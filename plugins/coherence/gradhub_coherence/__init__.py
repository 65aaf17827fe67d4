"""gradhub-coherence: coherent gradients (Chatterjee & Zielinski, 2022) as gradhub methods.

The entry module: specs and hyperparameter models only, no torch. Each method is declared
once, here (``name=`` in its spec), and once as an entry point in ``pyproject.toml``; the
registry reads the module's ``MethodSpec`` objects, and the implementations bind to them
(``spec = WINSORIZED_SGD``, ``@validated(M_COHERENCE)``) for their names, defaults and bounds.
Implementations:
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

from typing import Annotated

from pydantic import Field, Strict

from gradhub.exports import lazy_exports
from gradhub.hyperparameters import Flag, Foreach, Hyperparameters, LearningRate, Momentum, WeightDecay
from gradhub.specs import MethodSpec, Paper

PAPER = Paper(
    title="On the Generalization Mystery in Deep Learning",
    authors=("Satrajit Chatterjee", "Piotr Zielinski"),
    year=2022,
    arxiv="2203.10036",
    url="https://arxiv.org/abs/2203.10036",
)

CHUNK = "examples per vmap chunk: bounds memory at chunk_size x (number of parameters)"

DDP = (
    "the aggregate is an order statistic of per-example gradients (param.grad_sample), which DDP neither "
    "averages nor gathers: each rank would winsorize / take medians over its own examples only and the replicas "
    "diverge; needs an all_gather of grad_sample (RM3, running=True, uses the all-reduced .grad and would work)"
)
FSDP2 = "per-example gradients (grad_sample) are not sharded or reduce-scattered by fully_shard"
COMPILE = (
    "the per-tensor aggregation (a sort along the example dimension) is traced once per parameter shape, so "
    "one step of a network passes torch.compile's recompile limit; run the step eagerly"
)

NonNegativeInt = Annotated[int, Strict(), Field(ge=0)]
PositiveInt = Annotated[int, Strict(), Field(ge=1)]


class WinsorizedSGDHyperparameters(Hyperparameters):
    """Winsorized SGD (Sec. 9 of the paper; "winsorized GD" of Chatterjee 2020)."""

    lr: LearningRate
    momentum: Momentum = 0.0
    c: NonNegativeInt = Field(1, description="extreme values clipped at each end, per coordinate (0: plain SGD)")
    weight_decay: WeightDecay = 0.0
    foreach: Foreach = None


class M3SGDHyperparameters(Hyperparameters):
    """Median-of-means SGD (M3) and its running variant (RM3)."""

    lr: LearningRate
    momentum: Momentum = 0.0
    n_groups: PositiveInt = Field(3, description="groups the batch is split into; their means' median is used")
    weight_decay: WeightDecay = 0.0
    running: Flag = Field(False, description="RM3: median of this and the two previous minibatch gradients")
    foreach: Foreach = None


class MCoherenceHyperparameters(Hyperparameters):
    chunk_size: PositiveInt = Field(64, description=CHUNK)


class PerExampleGradsHyperparameters(Hyperparameters):
    chunk_size: PositiveInt | None = Field(None, description=CHUNK + "; None: all at once")


_OPTIMIZER = dict(
    kind="optimizer",
    paper=PAPER,
    tags=("coherent-gradients", "per-example-gradients", "robust-mean", "memorization"),
    capabilities={
        "supports_foreach": True,
        "ddp": {"status": "unsupported", "reason": DDP},
        "fsdp2": {"status": "unsupported", "reason": FSDP2},
        "compile": {"status": "unsupported", "reason": COMPILE},
    },
    claims=("gradhub_coherence.claims:noisy_label_memorization",),
)

WINSORIZED_SGD = MethodSpec(
    name="winsorized_sgd",
    summary="SGD on the coordinate-wise winsorized mean of per-example gradients (suppresses weak directions)",
    target="gradhub_coherence.robust_sgd:WinsorizedSGD",
    params=WinsorizedSGDHyperparameters,
    example="gradhub_coherence.examples:mlp_clipping_two_per_end",
    **_OPTIMIZER,
)
MEDIAN_OF_MEANS_SGD = MethodSpec(
    name="median_of_means_sgd",
    summary="SGD on the coordinate-wise median of group-mean gradients (M3), or a running median (RM3)",
    target="gradhub_coherence.robust_sgd:M3SGD",
    params=M3SGDHyperparameters,
    example="gradhub_coherence.examples:mlp_in_three_groups",
    **_OPTIMIZER,
)
M_COHERENCE = MethodSpec(
    name="m_coherence",
    kind="probe",
    summary="Coherence alpha of per-example gradients and m-coherence m*alpha = alpha/alpha_perp",
    paper=PAPER,
    target="gradhub_coherence.coherence",
    params=MCoherenceHyperparameters,
    example="gradhub_coherence.examples:mlp_in_chunks_of_ten",
    claims=("gradhub_coherence.claims:real_vs_random_coherence",),
    tags=("coherent-gradients", "per-example-gradients", "generalization"),
)
PER_EXAMPLE_GRADS = MethodSpec(
    name="per_example_grads",
    kind="probe",
    summary="Per-example gradients of a model's loss with torch.func (vmap over grad), chunked",
    paper=PAPER,
    target="gradhub_coherence.per_example",
    params=PerExampleGradsHyperparameters,
    example="gradhub_coherence.examples:mlp_in_chunks_of_eight",
    tags=("per-example-gradients",),
)

__getattr__ = lazy_exports(
    __name__,
    {
        "WinsorizedSGD": "gradhub_coherence.robust_sgd",
        "M3SGD": "gradhub_coherence.robust_sgd",
        M_COHERENCE.name: "gradhub_coherence.coherence",
        "coherence_from_grads": "gradhub_coherence.coherence",
        "CoherenceResult": "gradhub_coherence.coherence",
        PER_EXAMPLE_GRADS.name: "gradhub_coherence.per_example",
        "attach_per_example_grads": "gradhub_coherence.per_example",
        "winsorized_mean": "gradhub_coherence.aggregation",
        "median_of_means": "gradhub_coherence.aggregation",
    },
)
