"""N-PG-IGT: normalized policy gradient with implicit gradient transport.

Paper: Ilyas Fatkhullin, Anas Barakat, Anastasia Kireeva, Niao He, "Stochastic Policy Gradient
Methods: Improved Sample Complexity for Fisher-non-degenerate Policies", ICML 2023,
arXiv 2302.01734 (Algorithm 2, N-PG-IGT; Theorem 4.3 for the schedules). No official code
was released; the method adapts NIGT (Cutkosky and Mehta, 2020, "Momentum improves
normalized SGD").

Minimisation form of Algorithm 2 (the surrogate loss L = -J, so g estimates -grad J):

* t = 0: d_0 = g(tau_0, theta_0), theta_1 = theta_0 - gamma_0 d_0 / ||d_0||.
* t >= 1: theta~_t = theta_t + ((1 - eta_t) / eta_t) (theta_t - theta_{t-1});
  tau_t ~ pi(theta~_t); d_t = (1 - eta_t) d_{t-1} + eta_t g(tau_t, theta~_t);
  theta_{t+1} = theta_t - gamma_t d_t / ||d_t||.

``||.||`` is the norm over all parameters of the optimizer (the paper's theta is one vector);
``||d|| < eps`` is clamped to ``eps`` (a zero direction gives a zero step). State per parameter:
``step`` (t), ``direction`` (d_{t-1}) and ``previous`` (theta_{t-1}).

What differs from the paper: nothing in the update; the schedules keep only the theory's
exponents (``lr`` = gamma_0 is tuned, see :mod:`gradhub_harpg.schedules`); ``normalize=False``
(an addition) gives un-normalised IGT momentum.

The closure samples at the parameters' *current* values (the optimizer moves them to
theta~_t before calling it and back afterwards) and either returns the loss after calling
``backward()`` (torch.optim convention) or returns ``(loss, logp)``/``(loss,)`` without
calling backward (the optimizer differentiates the loss; ``logp`` is not needed here).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from gradhub_harpg import NPG_IGT, schedules
from gradhub_harpg._base import PolicyGradientOptimizer
from gradhub_harpg._steps import across_processes, closure_output, displace, gradients_of

__all__ = ["NPGIGT"]


class NPGIGT(PolicyGradientOptimizer):
    """N-PG-IGT (Algorithm 2), minimising a policy-gradient surrogate loss through a closure.

    ``NPGIGT(params, lr, eta_schedule, lr_schedule, eta, normalize, eps, distributed, *, foreach)``;
    defaults and bounds are written once, in :class:`~gradhub_harpg.NPGIGTHyperparameters`
    (listed below). ``eta_schedule="paper"`` is eta_t = (2/(t+2))^(4/5) (Theorem 4.3),
    ``lr_schedule="paper"`` is gamma_t = lr * 2/(t+2); ``normalize=False`` is plain IGT momentum.
    ``distributed`` decides what a (loss, logp) closure does under torch.distributed with several
    processes: "error" (refuse: DDP/FSDP2 never see its gradients), "average" (all-reduce the
    estimates, i.e. data parallelism over trajectories) or "local" (each its own).
    """

    spec = NPG_IGT
    paper_eta = staticmethod(schedules.eta_igt_paper)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One iteration of Algorithm 2; returns the closure's loss (evaluated at theta~_t)."""
        closure, entries = self._begin(closure)
        moved: dict[int, tuple[dict[str, Any], list[Tensor]]] = {}
        for group, param in entries:
            if self.state[param]:
                moved.setdefault(id(group), (group, []))[1].append(param)
        saved: list[tuple[list[Tensor], list[Tensor], bool]] = []
        for group, params in moved.values():
            states = [self.state[param] for param in params]
            etas = [self._eta(group, state["step"]) for state in states]
            # Algorithm 2, line 4: theta~_t = theta_t + ((1 - eta_t) / eta_t) (theta_t - theta_{t-1}).
            coefficients = [(1.0 - eta) / eta for eta in etas]
            foreach = self.use_foreach(group, params)
            saved.append((params, [param.detach().clone() for param in params], foreach))
            displace(params, [state["previous"] for state in states], coefficients, foreach)
        try:
            output = closure_output(self.method, self.evaluate_closure(closure))
            gradients = gradients_of(output, [param for _, param in entries])
        finally:
            for params, values, _ in saved:
                for param, value in zip(params, values):
                    param.copy_(value)
        self._reject_sparse(gradients)
        if not output.plain:
            across_processes(self.method, self._distributed(), [param for _, param in entries], gradients)
        self.require_finite_gradients(gradients)
        self._update(
            [
                (group, param, gradient, None)
                for (group, param), gradient in zip(entries, gradients)
                if gradient is not None
            ]
        )
        return output.loss
