"""Clear errors: bad hyperparameters, shapes and non-finite inputs name the method, argument and value; a call
that raises leaves the ratio bins as they were."""

from __future__ import annotations

import pytest
import torch
from gradhub_fdistill.loss import FDistillLoss
from gradhub_fdistill.sampler import fdistill_sampler

import gradhub
from gradhub.errors import HyperparameterError, UnsupportedInputError


def inputs(n: int = 6):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 2, generator=g)
    return x, x + 0.1, x - 0.1, torch.randn(n, generator=g), torch.rand(n, generator=g)


@pytest.mark.parametrize(
    ("options", "parameter", "shown"),
    [
        ({"divergence": "tv"}, "divergence", "'tv'"),
        ({"ratio_clip": (20.0, 0.1)}, "ratio_clip", "(20.0, 0.1)"),
        ({"ratio_clip": (1.0, 1.0)}, "ratio_clip", "(1.0, 1.0)"),
        ({"ratio_clip": (0.0, 1.0)}, "ratio_clip", "0.0"),
        ({"ratio_clip": (-1.0, 1.0)}, "ratio_clip", "-1.0"),
        ({"ratio_clip": (0.1, float("inf"))}, "ratio_clip", "inf"),
        ({"n_bins": 0}, "n_bins", "0"),
        ({"n_bins": 2.5}, "n_bins", "2.5"),
        ({"ratio_ema": 1.0}, "ratio_ema", "1.0"),
        ({"ratio_ema": -0.1}, "ratio_ema", "-0.1"),
        ({"t_range": (1.0, 0.0)}, "t_range", "(1.0, 0.0)"),
        ({"eps": -1e-6}, "eps", "-1e-06"),
        ({"normalize_h": "yes"}, "normalize_h", "yes"),
    ],
)
def test_bad_hyperparameters(options, parameter, shown):
    with pytest.raises(HyperparameterError) as error:
        FDistillLoss(**options)
    message = str(error.value)
    assert "fdistill_loss" in message and parameter in message and shown in message


def test_unknown_divergence_through_the_registry_lists_the_choices():
    with pytest.raises(HyperparameterError, match=r"divergence.*'rkl'.*'jf'"):
        gradhub.get("fdistill_loss")(divergence="reverse_kl")


def test_bad_all_reduce_hook():
    with pytest.raises(UnsupportedInputError, match=r"fdistill_loss.*all_reduce"):
        FDistillLoss(all_reduce="nccl")


@pytest.mark.parametrize(
    ("index", "bad", "pattern"),
    [
        (0, torch.randn(6), "x_gen"),  # 1-D is a batch of scalars: then the logits' batch still must match
        (1, torch.randn(6, 3), "shapes.*teacher_x0"),
        (2, torch.randn(5, 2), "shapes.*fake_x0"),
        (3, torch.randn(5), "disc_logits shape"),
        (3, torch.randn(6).long(), "disc_logits dtype"),
        (4, torch.rand(5), "t shape"),
        (4, torch.rand(6, 1), "t shape"),
        (1, [[0.0, 0.0]] * 6, "teacher_x0"),
    ],
)
def test_bad_shapes_and_types(index, bad, pattern):
    args = list(inputs())
    args[index] = bad
    if index == 0:
        args[1], args[2] = bad + 0.1, bad - 0.1
        args[3] = torch.randn(5)
        pattern = "disc_logits shape"
    with pytest.raises(UnsupportedInputError, match=pattern):
        FDistillLoss()(*args)


def test_missing_t_with_ratio_normalisation():
    x, teacher, fake, logits, _ = inputs()
    with pytest.raises(UnsupportedInputError, match=r"fdistill_loss.*t.*ratio_normalization=False"):
        FDistillLoss()(x, teacher, fake, logits)


@pytest.mark.parametrize("index", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_inputs_raise_and_change_no_bin(index, value):
    args = list(inputs())
    args[index] = args[index].clone()
    args[index].view(-1)[2] = value
    names = ("x_gen", "teacher_x0", "fake_x0", "disc_logits", "t")
    loss = FDistillLoss()
    with pytest.raises(UnsupportedInputError, match=f"fdistill_loss.*{names[index]} values.*must be finite"):
        loss(*args)
    assert torch.equal(loss.bins, torch.ones(10))
    # the same batch, made finite, does update them
    args[index].view(-1)[2] = 0.5
    loss(*args)
    assert not torch.equal(loss.bins, torch.ones(10))


def test_sampler_grid_and_model_errors():
    student = lambda x, t: x  # noqa: E731
    x_T = torch.randn(4, 2)
    with pytest.raises(UnsupportedInputError, match=r"fdistill_sampler.*ts.*strictly decrease"):
        fdistill_sampler(student, x_T, [0.0, 80.0])
    with pytest.raises(UnsupportedInputError, match=r"fdistill_sampler.*ts.*lie in"):
        fdistill_sampler(student, x_T, [2.0, 0.0], path="vp_cosine")
    with pytest.raises(UnsupportedInputError, match=r"fdistill_sampler.*model output"):
        fdistill_sampler(lambda x, t: x[:, :1], x_T, [80.0, 0.0])
    with pytest.raises(HyperparameterError, match=r"fdistill_sampler.*prediction"):
        fdistill_sampler(student, x_T, [80.0, 0.0], prediction="logits")
