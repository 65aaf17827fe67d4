"""Bad inputs and hyperparameters give gradhub errors naming the method, the parameter, the value and what is
allowed; non-positive data names how many entries are bad and the smallest one."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from gradhub_dale_langevin.loss import multiplicative_dsm
from gradhub_dale_langevin.sampler import gbm_sampler
from gradhub_dale_langevin.schedule import GBMSchedule

from gradhub.errors import HyperparameterError, UnsupportedInputError

SCHEDULE = GBMSchedule()
GOOD = torch.tensor([[0.5, 1.0], [2.0, 0.3], [0.7, 0.9], [1.5, 0.2]], dtype=torch.float64)
# the first non-positive entry is -0.1, the smallest -0.5: the message must show the smallest
NEGATIVE = torch.tensor([[0.5, -0.1], [2.0, 0.3], [-0.5, 0.9], [0.0, 0.2]], dtype=torch.float64)


def _score(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return -1 / x


def _explains(error: BaseException, method: str, *fragments: str) -> None:
    message = str(error)
    assert message.startswith(f"{method}:"), message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def _raises(kind: type[Exception], call: Callable[[], Any], method: str, *fragments: str) -> None:
    with pytest.raises(kind) as caught:
        call()
    _explains(caught.value, method, *fragments)


@pytest.mark.parametrize(
    ("hparams", "fragments"),
    [
        ({"sigma_min": 0.0}, ("sigma_min=0.0", "> 0")),
        ({"sigma_min": -0.1}, ("sigma_min=-0.1", "> 0")),
        ({"sigma_max": 0.005}, ("sigma_max=0.005", "> sigma_min=0.01")),
        ({"sigma_min": 0.5, "sigma_max": 0.5}, ("sigma_max=0.5", "> sigma_min=0.5")),
        ({"sigma_max": 9.0}, ("sigma_max=9.0", "8")),
        ({"kind": "cosine"}, ("kind='cosine'", "geometric", "linear")),
        ({"mu": math.inf}, ("mu=inf", "finite")),
        ({"mu": math.nan}, ("mu=nan",)),
        ({"sigma_min": "0.1"}, ("sigma_min='0.1'",)),
    ],
)
def test_schedule_parameters_out_of_range(hparams: dict[str, Any], fragments: tuple[str, ...]) -> None:
    _raises(HyperparameterError, lambda: GBMSchedule(**hparams), "gbm_schedule", *fragments)


def test_schedule_rejects_non_positive_and_non_finite_data() -> None:
    """The count of entries <= 0 and the smallest value; non-finite entries first; t outside [0, 1]."""
    _raises(
        UnsupportedInputError,
        lambda: SCHEDULE.sample(NEGATIVE, 0.5),
        "gbm_schedule",
        "x0 values",
        "-0.5",
        "3 of 8 entries",
        "> 0",
    )
    infinite = GOOD.clone()
    infinite[1, 1] = math.inf
    _raises(UnsupportedInputError, lambda: SCHEDULE.sample(infinite, 0.5), "gbm_schedule", "x0 values", "inf", "finite")
    _raises(UnsupportedInputError, lambda: SCHEDULE.sample(GOOD, 1.5), "gbm_schedule", "t values", "1.5", "[0, 1]")
    _raises(
        UnsupportedInputError, lambda: SCHEDULE.sample(GOOD, torch.full((3,), 0.5)), "gbm_schedule", "t shape", "(3,)"
    )
    _raises(UnsupportedInputError, lambda: SCHEDULE.conditional_score(GOOD, NEGATIVE, 0.5), "gbm_schedule", "x0")
    _raises(UnsupportedInputError, lambda: SCHEDULE.times(0), "gbm_schedule", "n_steps", ">= 1")
    _raises(
        UnsupportedInputError,
        lambda: SCHEDULE.sample(GOOD, 0.5, torch.ones(3, 2)),
        "gbm_schedule",
        "shapes",
        "eps (3, 2)",
    )


def _loss(x0: Any = GOOD, model: Any = _score, *args: Any, **kwargs: Any) -> torch.Tensor:
    return multiplicative_dsm(model, x0, torch.Generator().manual_seed(0), *args, **kwargs)


def test_loss_rejects_non_positive_data() -> None:
    """Deferred to the loss frame's one read; the smallest value (-0.5) and the count (3 of 8) named."""
    _raises(
        UnsupportedInputError,
        lambda: _loss(NEGATIVE),
        "multiplicative_dsm",
        "x0 values",
        "-0.5",
        "3 of 8 entries",
        "> 0",
        "delta",
    )
    nan = GOOD.clone()
    nan[0, 0] = math.nan
    _raises(UnsupportedInputError, lambda: _loss(nan), "multiplicative_dsm", "x0 values", "nan", "finite")
    # without the value check the log of a negative number reaches the loss: the frame's finite check names it
    _raises(
        UnsupportedInputError,
        lambda: _loss(NEGATIVE, check_values=False),
        "multiplicative_dsm",
        "loss value",
        "non-finite",
    )


def test_loss_rejects_bad_inputs() -> None:
    _raises(UnsupportedInputError, lambda: _loss(torch.tensor(1.0)), "multiplicative_dsm", "x0 shape", "()")
    _raises(
        UnsupportedInputError,
        lambda: _loss(torch.ones(4, 2, dtype=torch.int64)),
        "multiplicative_dsm",
        "x0 dtype",
        "int64",
    )
    _raises(UnsupportedInputError, lambda: _loss(GOOD, "not a model"), "multiplicative_dsm", "model", "str")
    _raises(
        UnsupportedInputError,
        lambda: _loss(GOOD, lambda x, t: x[:, :1]),
        "multiplicative_dsm",
        "shapes",
        "(4, 1)",
        "(4, 2)",
    )
    _raises(UnsupportedInputError, lambda: multiplicative_dsm(_score, GOOD, 0), "multiplicative_dsm", "generator")
    t = torch.tensor([0.5, 0.0, 0.2, 0.9], dtype=torch.float64)
    _raises(UnsupportedInputError, lambda: _loss(GOOD, _score, t), "multiplicative_dsm", "t values", "0.0", "(0, 1]")
    _raises(
        UnsupportedInputError,
        lambda: _loss(GOOD, _score, torch.full((3,), 0.5)),
        "multiplicative_dsm",
        "t shape",
        "(3,)",
        "batch = 4",
    )


@pytest.mark.parametrize(
    ("hparams", "fragments"),
    [
        ({"weighting": "x3"}, ("weighting='x3'", "x2_sigma2")),
        ({"param": "eps"}, ("param='eps'", "log_score")),
        ({"schedule": "cosine"}, ("schedule='cosine'",)),
        ({"reduction": "max"}, ("reduction='max'",)),
    ],
)
def test_loss_hyperparameters(hparams: dict[str, Any], fragments: tuple[str, ...]) -> None:
    _raises(HyperparameterError, lambda: _loss(GOOD, _score, **hparams), "multiplicative_dsm", *fragments)


def test_sampler_rejects_bad_starts_and_grids() -> None:
    ts = SCHEDULE.times(4)
    _raises(
        UnsupportedInputError,
        lambda: gbm_sampler(_score, NEGATIVE, ts),
        "gbm_sampler",
        "x_T values",
        "-0.5",
        "3 of 8 entries",
        "GBMSchedule.prior",
    )
    nan = GOOD.clone()
    nan[2, 0] = math.nan
    _raises(UnsupportedInputError, lambda: gbm_sampler(_score, nan, ts), "gbm_sampler", "x_T values", "finite")
    _raises(
        UnsupportedInputError,
        lambda: gbm_sampler(_score, GOOD, torch.tensor([1.5, 0.0])),
        "gbm_sampler",
        "ts",
        "[0, 1]",
    )
    _raises(
        UnsupportedInputError,
        lambda: gbm_sampler(_score, GOOD, torch.tensor([0.0, 1.0])),
        "gbm_sampler",
        "ts",
        "strictly decrease",
    )
    _raises(
        UnsupportedInputError,
        lambda: gbm_sampler(lambda x, t: x[:, :1], GOOD, ts),
        "gbm_sampler",
        "model output",
        "(4, 1)",
    )
    _raises(
        UnsupportedInputError,
        lambda: gbm_sampler(lambda x, t: x * math.nan, GOOD, ts),
        "gbm_sampler",
        "model output at step 0",
        "non-finite",
    )
    _raises(HyperparameterError, lambda: gbm_sampler(_score, GOOD, ts, param="eps"), "gbm_sampler", "param='eps'")
    _raises(
        HyperparameterError, lambda: gbm_sampler(_score, GOOD, ts, final_denoise=1), "gbm_sampler", "final_denoise=1"
    )
