"""HARPG and N-HARPG: (normalized) Hessian-aided recursive policy gradient.

Paper: Ilyas Fatkhullin, Anas Barakat, Anastasia Kireeva, Niao He, "Stochastic Policy Gradient
Methods: Improved Sample Complexity for Fisher-non-degenerate Policies", ICML 2023,
arXiv 2302.01734 (Algorithm 3, (N)-HARPG; Theorem 5.1 for the schedules). No official code
was released; HARPG is the recursive/normalised form of HAPG (Shen et al., 2019), close to
STORM with a Hessian correction.

Minimisation form of Algorithm 3 (surrogate loss L = -J, g estimates -grad J):

* t = 0: d_0 = g(tau_0, theta_0), then the step below.
* t >= 1: q_t ~ U(0, 1); theta^_t = q_t theta_t + (1 - q_t) theta_{t-1};
  tau_t ~ pi(theta_t), tau^_t ~ pi(theta^_t) (independent);
  v_t = B(tau^_t, theta^_t) (theta_t - theta_{t-1}) with
  B(tau, theta) v = g(tau, theta) <grad log p(tau | theta), v> + grad_theta <g(tau, theta), v>
  (the unbiased Hessian estimate of Eq. (7), applied by double backward);
  d_t = (1 - eta_t) (d_{t-1} + v_t) + eta_t g(tau_t, theta_t).
* HARPG: theta_{t+1} = theta_t - gamma_t d_t; N-HARPG: theta_{t+1} = theta_t - gamma_t d_t / ||d_t||.

The closure samples ONE trajectory at the parameters' current values and returns
``(loss, logp)`` without calling backward, ``logp`` = sum_h log pi(a_h | s_h) of the SAME
trajectory (see :func:`gradhub_harpg.gpomdp.gpomdp_surrogate`); ``(loss,)`` or ``(loss, None)``
means a deterministic objective (B = its Hessian). The optimizer calls it at theta^_t
(for v_t) and then at theta_t (for g_t), so afterwards the parameters hold theta_{t+1}.

A closure that follows the torch.optim convention instead (calls ``backward()`` and returns
the loss; e.g. the conformance suite's) leaves no graph to differentiate twice. It is taken
to be a *deterministic* objective f, and v_t is then computed as
grad f(theta_t) - grad f(theta_{t-1}) = E_q[Hessian f(theta^_t)] (theta_t - theta_{t-1}),
the exact value of the quantity the paper's v_t estimates, from the previous step's gradient
(kept in the state as ``gradient``; one closure call per step). This is an addition for
torch.optim compatibility, not the paper's stochastic estimator: with a stochastic closure
use the ``(loss, logp)`` form.

State per parameter: ``step`` (t), ``direction`` (d_{t-1}), ``previous`` (theta_{t-1}), and
``gradient`` for plain closures. q_t is drawn from a generator seeded with ``(seed, t)``,
so it is reproducible and survives a ``state_dict`` round trip without generator state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from gradhub_harpg import HARPG as HARPG_SPEC
from gradhub_harpg import N_HARPG, schedules
from gradhub_harpg._base import PolicyGradientOptimizer
from gradhub_harpg._steps import across_processes, closure_output, displace, gradients_of, hessian_vector_product

__all__ = ["HARPG", "NHARPG", "correction_point"]

_SEED_STRIDE = 1_000_003


def correction_point(seed: int, step: int) -> float:
    """q_t ~ U(0, 1) of Algorithm 3, line 4: a function of (seed, t) only (a host draw, the same on every device)."""
    generator = torch.Generator().manual_seed(seed * _SEED_STRIDE + step)
    return float(torch.rand((), generator=generator, dtype=torch.float64, device="cpu"))


class HARPG(PolicyGradientOptimizer):
    """HARPG (Algorithm 3), minimising a policy-gradient surrogate loss through a closure.

    ``HARPG(params, lr, eta_schedule, lr_schedule, eta, normalize, eps, seed, distributed, *, foreach)``;
    defaults and bounds are written once, in :class:`~gradhub_harpg.HARPGHyperparameters` (listed
    below). ``eta_schedule="paper"`` is eta_t = 2/(t+2) (Theorem 5.1), ``lr_schedule="paper"`` is
    gamma_t = lr * 2/(t+2); ``seed`` seeds the q_t draws. ``distributed`` decides what a
    (loss, logp) closure does under torch.distributed with several processes: "error" (refuse:
    DDP/FSDP2 never see its gradients), "average" (all-reduce the estimates, i.e. data
    parallelism over trajectories) or "local" (each its own).
    """

    spec = HARPG_SPEC
    paper_eta = staticmethod(schedules.eta_harpg_paper)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One iteration of Algorithm 3; returns the closure's loss at theta_t."""
        closure, entries = self._begin(closure)
        params = [param for _, param in entries]
        started = [
            index for index, param in enumerate(params) if self.state[param] and "gradient" not in self.state[param]
        ]
        corrections: list[Tensor | None] = [None] * len(params)
        if started:
            corrections = self._hessian_correction(closure, entries, started)
        output = closure_output(self.method, self.evaluate_closure(closure))
        gradients = gradients_of(output, params)
        self._reject_sparse(gradients)
        if not output.plain:
            across_processes(self.method, self._distributed(), params, gradients)
        self.require_finite_gradients([*gradients, *corrections])
        if output.plain:
            # Deterministic closure: v_t = grad f(theta_t) - grad f(theta_{t-1}) exactly (see the module docstring).
            for index, (param, gradient) in enumerate(zip(params, gradients)):
                state = self.state[param]
                if gradient is None:
                    continue
                if "gradient" in state:
                    corrections[index] = torch.sub(gradient, state["gradient"])
                    state["gradient"].copy_(gradient)
        active = [
            (group, param, gradient, corrections[index])
            for index, ((group, param), gradient) in enumerate(zip(entries, gradients))
            if gradient is not None
        ]
        fresh = {id(param) for _, param, _, _ in active if not self.state[param]}
        self._update(active)
        if output.plain:
            for param, gradient in zip(params, gradients):
                if id(param) in fresh and gradient is not None:
                    self.state[param]["gradient"] = gradient.clone(memory_format=torch.preserve_format)
        return output.loss

    def _hessian_correction(
        self, closure: Callable[[], Any], entries: list[tuple[dict[str, Any], Tensor]], started: list[int]
    ) -> list[Tensor | None]:
        """v_t = B(tau^_t, theta^_t)(theta_t - theta_{t-1}), the closure run at theta^_t (Algorithm 3, lines 4-6)."""
        params = [param for _, param in entries]
        moved = [params[index] for index in started]
        states = [self.state[param] for param in moved]
        group = entries[started[0]][0]
        q = correction_point(self.options(group).seed, states[0]["step"])
        current = [param.detach().clone() for param in moved]
        deltas = [torch.sub(value, state["previous"]) for value, state in zip(current, states)]
        # theta^_t = q theta_t + (1 - q) theta_{t-1} = theta_t + (q - 1)(theta_t - theta_{t-1}).
        displace(moved, [state["previous"] for state in states], [q - 1.0] * len(moved), self.use_foreach(group, moved))
        try:
            output = closure_output(self.method, self.evaluate_closure(closure))
            if output.plain:
                return [None] * len(params)
            products: list[Tensor | None] = list(hessian_vector_product(output, moved, deltas)[0])
        finally:
            for param, value in zip(moved, current):
                param.copy_(value)
        across_processes(self.method, self._distributed(), moved, products)
        corrections: list[Tensor | None] = [None] * len(params)
        for index, product in zip(started, products):
            corrections[index] = product if product is not None else torch.zeros_like(params[index])
        return corrections


class NHARPG(HARPG):
    """N-HARPG (Algorithm 3 with normalised steps): HARPG whose ``normalize`` defaults to True.

    Defaults and bounds are written once, in :class:`~gradhub_harpg.NHARPGHyperparameters` (listed below).
    """

    spec = N_HARPG
