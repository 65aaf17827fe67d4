"""Clear errors: blocks that do not compose, gradients that do not fit, bad radii and stages, bad labels."""

from __future__ import annotations

import pytest
import torch
from gradhub_gifd.attack import gifd, gifd_latent
from gradhub_gifd.prior import SequentialGenerator
from torch import nn

from gradhub.errors import HyperparameterError, UnsupportedInputError

FAST = {"steps_per_stage": 1, "restarts": 1}


def test_blocks_that_do_not_chain(world) -> None:
    model, gradients, _, _ = world.client(0)
    prior = SequentialGenerator([nn.Linear(4, 8), nn.Linear(9, 16), nn.Unflatten(1, (1, 4, 4))], (4,)).double()
    with pytest.raises(
        UnsupportedInputError,
        match=r"gifd: unsupported prior blocks: block 1 \(Linear\) failed on the "
        r"output of block 0, of shape \(1, 8\)",
    ):
        gifd(model, gradients, prior, **FAST)


def test_wrong_latent_shape(world) -> None:
    model, gradients, _, _ = world.client(0)
    with pytest.raises(UnsupportedInputError, match=r"block 0 \(Linear\) failed on the latent, of shape \(1, 5\)"):
        gifd_latent(model, gradients, list(world.prior().blocks), latent_shape=(5,), **FAST)
    with pytest.raises(UnsupportedInputError, match="latent_shape"):
        gifd_latent(model, gradients, list(world.prior().blocks), **FAST)
    with pytest.raises(UnsupportedInputError, match="prior"):
        gifd_latent(model, gradients, object(), **FAST)


def test_composition_that_is_not_the_models_input(world) -> None:
    model, gradients, _, _ = world.client(0)
    prior = SequentialGenerator([nn.Linear(4, 25), nn.Unflatten(1, (1, 5, 5))], (4,)).double()
    with pytest.raises(UnsupportedInputError, match=r"prior output shape: \(1, 5, 5\).*input_shape \(1, 4, 4\)"):
        gifd(model, gradients, prior, input_shape=(1, 4, 4), **FAST)
    with pytest.raises(UnsupportedInputError, match=r"prior output shape: \(1, 5, 5\).*an image the model takes"):
        gifd(model, gradients, prior, **FAST)


def test_gradients_that_do_not_fit(world) -> None:
    model, gradients, _, _ = world.client(0)
    prior = world.prior()
    with pytest.raises(UnsupportedInputError, match="one gradient per model parameter"):
        gifd(model, gradients[:-1], prior, **FAST)
    wrong = [gradients[0].T, *gradients[1:]]
    with pytest.raises(UnsupportedInputError, match="shapes"):
        gifd(model, wrong, prior, **FAST)
    bad = [g.clone() for g in gradients]
    bad[1][0] = float("inf")
    with pytest.raises(UnsupportedInputError, match="non-finite"):
        gifd(model, bad, prior, **FAST)
    with pytest.raises(UnsupportedInputError, match="all zero"):
        gifd(model, [torch.zeros_like(g) for g in gradients], prior, torch.tensor([0]), **FAST)


@pytest.mark.parametrize(
    "hparams, name",
    [
        ({"l1_radii": (0.0, 1.0)}, "l1_radii"),
        ({"l1_radii": (-1.0, 1.0)}, "l1_radii"),
        ({"l1_relative": 0.0}, "l1_relative"),
        ({"l1_r1": -5.0}, "l1_r1"),
        ({"l1_radii": (1.0,)}, "l1_radii"),
        ({"l1_radii": (1.0, 1.0), "l1_relative": 0.5}, "l1_relative"),
        ({"stages": (0, 5)}, "stages"),
        ({"stages": (1, 1)}, "stages"),
        ({"stages": ()}, "stages"),
        ({"mean_std": (0.0, 0.0)}, "mean_std"),
        ({"prior_range": (1.0, -1.0)}, "prior_range"),
    ],
)
def test_bad_hyperparameters(world, hparams: dict, name: str) -> None:
    model, gradients, _, _ = world.client(0)
    with pytest.raises(HyperparameterError, match=f"gifd: invalid {name}"):
        gifd(model, gradients, world.prior(), **FAST, **hparams)


def test_bad_labels(world) -> None:
    model, gradients, _, _ = world.client(0)
    with pytest.raises(UnsupportedInputError, match="labels dtype"):
        gifd_latent(model, gradients, world.prior(), torch.tensor([0.0]), **FAST)
    with pytest.raises(UnsupportedInputError, match="batch_size"):
        gifd_latent(model, gradients, world.prior(), torch.tensor([0]), batch_size=2, **FAST)
    with pytest.raises(UnsupportedInputError, match="at most 3"):
        gifd_latent(model, gradients, world.prior(), batch_size=4, **FAST)
    conv = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten()).double()
    conv_gradients = [torch.ones_like(p) for p in conv.parameters()]
    with pytest.raises(UnsupportedInputError, match=r"iDLG.*pass labels="):
        gifd_latent(conv, conv_gradients, world.prior(), **FAST)


def test_model_and_prior_left_as_found(world) -> None:
    model, gradients, _, _ = world.client(0)
    prior = world.prior()
    model.train()
    before = {k: v.clone() for k, v in [*model.state_dict().items(), *prior.state_dict().items()]}
    gifd(model, gradients, prior, steps_per_stage=2, restarts=2, l1_relative=0.5)
    after = {**model.state_dict(), **prior.state_dict()}
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert model.training and prior.training
    assert all(p.grad is None for p in [*model.parameters(), *prior.parameters()])
