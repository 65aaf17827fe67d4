"""Bad hyperparameters and inputs: gradhub errors naming the method, the parameter, the value and what is allowed."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from gradhub_groco.groco import GroCoLoss
from gradhub_groco.sorting import DiffSortNet

from gradhub.errors import HyperparameterError, UnknownHyperparameterError, UnsupportedInputError


@pytest.mark.parametrize("size", [3, 6, 12, 24])
def test_bitonic_needs_a_power_of_two(size: int) -> None:
    with pytest.raises(HyperparameterError, match=rf"diff_sort: invalid size={size}; size must be a power of two"):
        DiffSortNet(size, sorting_network="bitonic")
    DiffSortNet(size, sorting_network="odd_even")  # any size


@pytest.mark.parametrize("steepness", [0, 0.0, -1.0, math.nan, math.inf, "10", True])
def test_bad_steepness(steepness: Any) -> None:
    with pytest.raises(HyperparameterError, match=r"diff_sort: invalid steepness=.*finite number > 0"):
        DiffSortNet(8, steepness=steepness)
    with pytest.raises(HyperparameterError, match=r"groco: invalid steepness=.*finite number > 0"):
        GroCoLoss(steepness=steepness)


def test_unknown_relaxation_and_network() -> None:
    with pytest.raises(HyperparameterError, match=r"diff_sort: invalid relaxation='sigmoid'.*'cauchy'.*'logistic'"):
        DiffSortNet(8, relaxation="sigmoid")
    with pytest.raises(HyperparameterError, match=r"groco: invalid relaxation='Cauchy'.*one of 'cauchy'"):
        GroCoLoss(relaxation="Cauchy")
    with pytest.raises(
        HyperparameterError, match=r"diff_sort: invalid sorting_network='bubble'.*'odd_even', 'bitonic'"
    ):
        DiffSortNet(8, sorting_network="bubble")
    with pytest.raises(UnknownHyperparameterError, match=r"diff_sort: unknown hyperparameter distribution=.*"):
        DiffSortNet(8, distribution="cauchy")


@pytest.mark.parametrize("size", [0, -2, 2.0, "8"])
def test_bad_size(size: Any) -> None:
    with pytest.raises(HyperparameterError, match=r"diff_sort: invalid size="):
        DiffSortNet(size)


def test_bad_sort_inputs() -> None:
    sorter = DiffSortNet(4)
    with pytest.raises(UnsupportedInputError, match=r"diff_sort: unsupported x shape: \(3, 5\); .*size=4"):
        sorter(torch.randn(3, 5))
    with pytest.raises(UnsupportedInputError, match=r"diff_sort: unsupported x shape: \(\); x must be at least 1-D"):
        sorter(torch.tensor(1.0))
    with pytest.raises(UnsupportedInputError, match=r"diff_sort: unsupported x dtype: torch.int64"):
        sorter(torch.ones(2, 4, dtype=torch.long))
    with pytest.raises(UnsupportedInputError, match=r"diff_sort: unsupported x: list; x must be a floating-point"):
        sorter([[1.0, 2.0, 3.0, 4.0]])  # type: ignore[arg-type]
    for bad in (math.nan, math.inf, -math.inf):
        x = torch.randn(3, 4)
        x[1, 2] = bad
        with pytest.raises(UnsupportedInputError, match=r"diff_sort: unsupported x values: 1 of 12 entries non-finite"):
            sorter(x)
    x = torch.randn(3, 4)
    x[0, 0] = math.nan
    values, _ = DiffSortNet(4, check_finite=False)(x)  # opted out: NaN propagates
    assert values.isnan().any()


@pytest.mark.parametrize(
    ("hparams", "parameter", "allowed"),
    [
        ({"n_augs": 1}, "n_augs", "an integer >= 2"),
        ({"n_augs": 2, "n_pos_augs": 3}, "n_pos_augs", "at most n_augs=2"),
        ({"n_pos_augs": 0}, "n_pos_augs", ">= 1"),
        ({"topk_neg": 0}, "topk_neg", "an integer >= 1"),
        ({"topk_neg": 2.5}, "topk_neg", "an integer"),
        ({"sorting_network": "bitonic"}, "sorting_network", "'odd_even' here: bitonic networks sort a power of two"),
        ({"art_lambda": -0.5}, "art_lambda", ">= 0"),
        ({"stop_grad": 1}, "stop_grad", "True or False"),
    ],
)
def test_bad_groco_hyperparameters(hparams: dict[str, Any], parameter: str, allowed: str) -> None:
    with pytest.raises(HyperparameterError, match=rf"groco: invalid {parameter}=.*{allowed}"):
        GroCoLoss(**hparams)


def test_bitonic_groco_with_power_of_two_sizes() -> None:
    """topk_neg + positives a power of two (7 + 1): bitonic is accepted and gives a finite loss."""
    views = torch.randn(2, 12, 4, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(GroCoLoss(topk_neg=7, sorting_network="bitonic")(views))
    with pytest.raises(HyperparameterError, match=r"topk_neg=7 with 2 positive views sorts 9"):
        GroCoLoss(n_augs=3, n_pos_augs=2, topk_neg=7, sorting_network="bitonic")


def test_bad_views() -> None:
    loss = GroCoLoss(n_augs=2, topk_neg=3)
    good = torch.randn(2, 6, 4)
    with pytest.raises(UnsupportedInputError, match=r"groco: unsupported views shape: \(3, 6, 4\); .*n_augs=2"):
        loss(torch.randn(3, 6, 4))
    with pytest.raises(UnsupportedInputError, match=r"groco: unsupported views shape: \(6, 4\); views must be 3-D"):
        loss(good[0])
    with pytest.raises(UnsupportedInputError, match=r"groco: unsupported views: 3 views; pass n_augs=2 views"):
        loss([good[0], good[1], good[0]])
    with pytest.raises(UnsupportedInputError, match=r"groco: unsupported views: \(6, 4\) torch.float32, \(5, 4\)"):
        loss([good[0], good[1, :5]])
    with pytest.raises(
        UnsupportedInputError, match=r"views shape: \(2, 3, 4\); each view needs at least topk_neg \+ 1"
    ):
        loss(good[:, :3])
    with pytest.raises(UnsupportedInputError, match=r"groco: unsupported views dtype: torch.int64"):
        loss(good.long())
    bad = good.clone()
    bad[1, 2, 3] = math.inf
    with pytest.raises(UnsupportedInputError, match=r"groco: unsupported views values: inf \(1 of 48 entries\)"):
        loss(bad)
    with pytest.raises(UnsupportedInputError, match=r"groco: unsupported views values"):
        loss.loss_and_info(bad)


def test_distributed_needs_a_process_group() -> None:
    loss = GroCoLoss(distributed=True, topk_neg=3)
    with pytest.raises(UnsupportedInputError, match=r"groco: unsupported distributed: True without a process group"):
        loss(torch.randn(2, 6, 4))
