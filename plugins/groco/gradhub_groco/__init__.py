"""gradhub-groco: GroCo, learning by sorting (Shvetsova et al., ICCV 2023), and differentiable sorting networks.

This is the plugin's entry module: specs and hyperparameter models only, no torch and no
implementation, so listing and inspecting the methods stays cheap. Each method is declared once,
here (``name=`` in its spec), and once as an entry point in ``pyproject.toml``; the
implementations bind to these specs (``@validated(DIFF_SORT)``, ``@loss(GROCO)``) for their names,
defaults and bounds.

* :mod:`gradhub_groco.networks`: odd-even transposition and bitonic sorting networks as per-layer
  index tensors (each wire's partner and whether it receives the minimum), cached per device;
* :mod:`gradhub_groco.sorting`: the relaxed comparator (Cauchy, logistic, ...) and ``DiffSortNet``
  (the ``diff_sort`` layer): soft-sorted values and the relaxed permutation matrix (Petersen et al.);
* :mod:`gradhub_groco.groco`: ``GroCoLoss`` (the ``groco`` loss): positives must sort above the
  top-k negatives, scored by binary cross-entropy on the group sums of the relaxed permutation.

Readings settled from the official code (github.com/ninatu/learning_by_sorting,
``learning_by_sorting/losses/groco.py`` and the ``configs/``): the constructor's defaults are
``n_augs=2, topk_neg=10, steepness=1, stop_grad=True``, and every released config keeps
``steepness: 1`` and ``topk_neg: 10``; the network (odd-even), relaxation (Cauchy) and
``art_lambda`` (0.25) are hard-coded there and are hyperparameters here, with those defaults.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, Strict, model_validator

from gradhub.errors import HyperparameterError
from gradhub.exports import lazy_exports
from gradhub.hyperparameters import Flag, Hyperparameters, InputCheck, Real
from gradhub.specs import MethodSpec, Paper

PAPER = Paper(
    title="Learning by Sorting: Self-supervised Learning with Group Ordering Constraints",
    authors=("Nina Shvetsova", "Felix Petersen", "Anna Kukleva", "Bernt Schiele", "Hilde Kuehne"),
    year=2023,
    venue="IEEE/CVF International Conference on Computer Vision (ICCV)",
    arxiv="2301.02009",
    url="https://arxiv.org/abs/2301.02009",
    code="https://github.com/ninatu/learning_by_sorting",
)

SortingNetwork = Literal["odd_even", "bitonic"]
Relaxation = Literal["cauchy", "logistic", "logistic_phi", "gaussian", "reciprocal", "optimal"]

SORTING_NETWORK = Field(
    "odd_even",
    description="odd_even: odd-even transposition network (n layers, any n); bitonic: bitonic network "
    "(log2(n)(log2(n)+1)/2 layers, n a power of two)",
)
RELAXATION = Field(
    "cauchy",
    description="the CDF f relaxing each comparator, alpha = f(steepness (b - a)): cauchy (arctan(x)/pi + 1/2), "
    "logistic (sigmoid), logistic_phi (sigmoid of x / (|b - a| + 1e-10)^art_lambda), gaussian (normal CDF), "
    "reciprocal (x / (2 (2 + |x|)) + 1/2), optimal (the monotonic 'optimal' sigmoid of Petersen et al. 2022)",
)
ART_LAMBDA = Field(
    0.25,
    ge=0,
    description="exponent lambda of the activation replacement trick, read only by relaxation='logistic_phi'",
)
Count = Annotated[int, Strict()]


def is_power_of_two(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


class DiffSortHyperparameters(Hyperparameters):
    """``DiffSortNet``: a differentiable sorting network over vectors of ``size`` values (diffsort's arguments)."""

    size: Count = Field(ge=1, description="number of values sorted (the input's last dimension)")
    sorting_network: SortingNetwork = SORTING_NETWORK
    steepness: Real = Field(
        10.0, gt=0, description="inverse temperature of the relaxed comparators (diffsort's default 10)"
    )
    relaxation: Relaxation = RELAXATION
    art_lambda: Real = ART_LAMBDA
    check_finite: InputCheck = Field(
        True,
        description="raise on NaN or infinite inputs (one host sync per call); off: they propagate to the outputs",
    )

    @model_validator(mode="after")
    def _bitonic_size(self) -> DiffSortHyperparameters:
        if self.sorting_network == "bitonic" and not is_power_of_two(self.size):
            raise HyperparameterError(
                DIFF_SORT.name, "size", self.size, "a power of two with sorting_network='bitonic' (or use 'odd_even')"
            )
        return self


class GroCoHyperparameters(Hyperparameters):
    """``GroCoLoss``: the official ``GroCo`` constructor's arguments, plus the sorter it hard-codes."""

    n_augs: Count = Field(2, ge=2, description="augmented views per image; each view is the anchor once")
    n_pos_augs: Annotated[Count, Field(ge=1)] | None = Field(
        None,
        description="multi-crop: the first n_pos_augs views (the full-size crops) are the only positives; "
        "None: every view is a positive",
    )
    topk_neg: Count = Field(10, ge=1, description="the k hardest negatives (other images, same view) that are sorted")
    steepness: Real = Field(1.0, gt=0, description="steepness of the relaxed comparators (every official config: 1)")
    sorting_network: SortingNetwork = SORTING_NETWORK
    relaxation: Relaxation = RELAXATION
    art_lambda: Real = ART_LAMBDA
    stop_grad: Flag = Field(True, description="no gradient through the positives and the negatives, only the anchor")
    distributed: Flag = Field(
        False, description="draw negatives from every process's batch (torch.distributed all-gather)"
    )

    @model_validator(mode="after")
    def _views_and_sizes(self) -> GroCoHyperparameters:
        positives = self.n_augs if self.n_pos_augs is None else self.n_pos_augs
        if positives > self.n_augs:
            raise HyperparameterError(
                GROCO.name, "n_pos_augs", self.n_pos_augs, f"at most n_augs={self.n_augs} (or None)"
            )
        if self.sorting_network == "bitonic":
            sizes = {self.topk_neg + positives - 1} | (
                {self.topk_neg + positives} if positives < self.n_augs else set()
            )
            odd = sorted(size for size in sizes if not is_power_of_two(size))
            if odd:
                raise HyperparameterError(
                    GROCO.name,
                    "sorting_network",
                    self.sorting_network,
                    f"'odd_even' here: bitonic networks sort a power of two of values, but topk_neg={self.topk_neg} "
                    f"with {positives} positive views sorts {', '.join(map(str, odd))}",
                )
        return self


_COMMON: dict[str, Any] = dict(
    paper=PAPER,
    tags=("self-supervised", "contrastive", "differentiable-sorting", "ranking"),
    claims=("gradhub_groco.claims:synthetic_ssl",),
)

GROCO = MethodSpec(
    name="groco",
    kind="loss",
    summary="Group ordering constraints: a sorting network must rank every positive above the top-k negatives",
    target="gradhub_groco.groco:GroCoLoss",
    params=GroCoHyperparameters,
    example="gradhub_groco.examples:three_views_multicrop",
    dtypes=("float32", "float64", "bfloat16"),
    # The example runs stop_grad=False, where the backward is the true gradient (gradcheck); with the
    # default stop_grad=True it is the gradient with positives and negatives held constant, by design.
    capabilities={"gradient": "exact", "reductions": ()},
    **_COMMON,
)
DIFF_SORT = MethodSpec(
    name="diff_sort",
    kind="layer",
    summary="Differentiable sorting network: soft-sorted values and the relaxed permutation matrix",
    target="gradhub_groco.sorting:DiffSortNet",
    params=DiffSortHyperparameters,
    example="gradhub_groco.examples:small_batch_odd_even",
    dtypes=("float32", "float64", "bfloat16", "float16"),
    capabilities={"gradient": "exact"},
    **_COMMON,
)

__getattr__ = lazy_exports(
    __name__,
    {
        "DiffSortNet": "gradhub_groco.sorting",
        "soft_sort": "gradhub_groco.sorting",
        "GroCoLoss": "gradhub_groco.groco",
        "group_ordering_loss": "gradhub_groco.groco",
    },
)
