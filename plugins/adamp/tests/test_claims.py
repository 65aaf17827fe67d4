"""The paper's claim checks pass for AdamP/SGDP and FAIL for deliberately wrong methods.

Both claim checks take optimizer factories, so the same criteria run on: AdamP/SGDP with
delta = 0 (never project: plain Adam / SGD with decoupled decay), an optimizer that
projects the GRADIENT instead of the update, and one that projects only 1-D tensors. A
control built from the same test optimizer but projecting the update of matrices passes,
so the failures come from the mistakes, not from the harness. Each criterion runs once
per method (the wrong ones on one seed of the tracking toy) to keep this module fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Literal

import pytest
import torch
from gradhub_adamp.adamp import AdamP
from gradhub_adamp.claims import cnn_norm_growth, scale_invariant_tracking
from gradhub_adamp.projection import project_radial
from gradhub_adamp.sgdp import SGDP
from torch import Tensor

Factory = Callable[[Iterable[Tensor]], torch.optim.Optimizer]


class Misprojected(torch.optim.Optimizer):
    """Adam or SGD with momentum plus a radial projection placed by ``project`` and ``which``.

    ``project="update", which="matrices"`` is AdamP/SGDP without weight decay (the control; its SGD
    projects a copy of the buffer, which with Nesterov is the official behaviour). ``project="gradient"``
    removes the radial part of the gradient before the moments (wrong: for scale-invariant weights the
    gradient has none, the update does). ``which="vectors"`` projects 1-D tensors (as one row) and leaves
    matrices alone (wrong: the inverted dimension test).
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        rule: Literal["adam", "sgd"],
        lr: float,
        project: Literal["update", "gradient"] = "update",
        which: Literal["matrices", "vectors"] = "matrices",
        nesterov: bool = False,
    ) -> None:
        super().__init__(params, dict(lr=lr))
        self.rule, self.project, self.which, self.nesterov = rule, project, which, nesterov

    def _projected(self, param: Tensor, grad: Tensor, update: Tensor) -> Tensor:
        if (param.dim() > 1) != (self.which == "matrices") or param.dim() == 0:
            return update
        rows = (param.shape[0], -1) if param.dim() > 1 else (1, -1)
        projected, _, _ = project_radial(param.reshape(rows), grad.reshape(rows), update.reshape(rows))
        return projected.view_as(update)

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = param.grad
                if self.project == "gradient":
                    grad = self._projected(param, grad, grad)
                state = self.state[param]
                if self.rule == "adam":
                    if not state:
                        state.update(step=0, m=torch.zeros_like(param), v=torch.zeros_like(param))
                    state["step"] += 1
                    state["m"].lerp_(grad, 0.1)
                    state["v"].mul_(0.999).addcmul_(grad, grad, value=0.001)
                    m_hat = state["m"] / (1 - 0.9 ** state["step"])
                    v_hat = state["v"] / (1 - 0.999 ** state["step"])
                    update = m_hat / (v_hat.sqrt() + 1e-8)
                else:
                    buffer = state.setdefault("buffer", torch.zeros_like(param))
                    buffer.mul_(0.9).add_(grad)
                    update = grad + 0.9 * buffer if self.nesterov else buffer.clone()
                if self.project == "update":
                    update = self._projected(param, grad, update)
                param.sub_(update, alpha=group["lr"])


def _adam_like(**options: Any) -> Factory:
    return lambda params: Misprojected(params, "adam", lr=0.01, **options)


def _sgd_like(**options: Any) -> Factory:
    return lambda params: Misprojected(params, "sgd", lr=0.1, **options)


def test_scale_invariant_tracking_passes() -> None:
    """Claim 1 (3 seeds): AdamP/SGDP keep ||w|| near 1 and track the rotating target; Adam/SGD do not."""
    result = scale_invariant_tracking()
    assert result.passed, result.report()


def test_cnn_norm_growth_passes() -> None:
    """Claim 2: on the conv-BN net SGDP grows the conv weights >= 10% less than SGD, as accurately,
    with tangential conv updates on >= 90% of steps and the linear layer's on <= 10%."""
    result = cnn_norm_growth()
    assert result.passed, result.report()
    # Shares of the updates in percent (they read as counts when they were fractions: "... steps: 1").
    assert result.measured["SGDP conv-weight updates tangential (%)"] == 100, result.report()
    assert result.measured["SGDP linear-layer updates tangential (%)"] == 0, result.report()


WRONG_TRACKING = {
    "delta-zero": (lambda ps: AdamP(ps, lr=0.01, delta=0.0), lambda ps: SGDP(ps, lr=0.1, momentum=0.9, delta=0.0)),
    "projects-gradient": (_adam_like(project="gradient"), _sgd_like(project="gradient")),
    "projects-vectors-only": (_adam_like(which="vectors"), _sgd_like(which="vectors")),
}


def test_tracking_control_passes() -> None:
    """The test optimizer projecting the update of matrices passes claim 1 (one seed): the harness is sound."""
    result = scale_invariant_tracking(adamp=_adam_like(), sgdp=_sgd_like(), seeds=1)
    assert result.passed, result.report()


@pytest.mark.parametrize("wrong", list(WRONG_TRACKING))
def test_tracking_fails_for_wrong_methods(wrong: str) -> None:
    """Claim 1 fails when "AdamP" and "SGDP" are wrong, and for the right reason: their norms grow like
    Adam's / SGD's (the bounds 1.25 and 2.0 are exceeded)."""
    adamp, sgdp = WRONG_TRACKING[wrong]
    result = scale_invariant_tracking(adamp=adamp, sgdp=sgdp, seeds=1)
    assert not result.passed, result.report()
    assert result.measured["AdamP ||w_T||/||w_0||"] > 1.25, result.report()
    assert result.measured["SGDP ||w_T||/||w_0||"] > 2.0, result.report()


WRONG_CNN = {
    "delta-zero": lambda ps: SGDP(ps, lr=0.1, momentum=0.9, nesterov=True, delta=0.0),
    "projects-gradient": _sgd_like(project="gradient", nesterov=True),
    "projects-vectors-only": _sgd_like(which="vectors", nesterov=True),
}


def test_cnn_control_passes() -> None:
    """The test optimizer projecting the update of matrices (Nesterov) passes claim 2."""
    result = cnn_norm_growth(sgdp=_sgd_like(nesterov=True))
    assert result.passed, result.report()


@pytest.mark.parametrize("wrong", list(WRONG_CNN))
def test_cnn_norm_growth_fails_for_wrong_methods(wrong: str) -> None:
    """Claim 2 fails for wrong "SGDP"s: the conv weights grow like SGD's and their updates are not tangential."""
    result = cnn_norm_growth(sgdp=WRONG_CNN[wrong])
    assert not result.passed, result.report()
    measured = result.measured
    assert measured["SGDP conv ||W_T||/||W_0||"] > 0.9 * measured["SGD conv ||W_T||/||W_0||"], result.report()
    assert measured["SGDP conv-weight updates tangential (%)"] < 90, result.report()
