"""The part of ``step()`` that N-PG-IGT and (N-)HARPG share: closure checks, parameters, updates."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor

from gradhub.errors import UnsupportedInputError
from gradhub.kinds.optimizer import Optimizer
from gradhub_harpg import schedules
from gradhub_harpg._steps import apply_update, global_norm, mix_directions

__all__ = ["PolicyGradientOptimizer"]


class PolicyGradientOptimizer(Optimizer):
    """Base of the three optimizers: they minimise a surrogate loss (= -J) through a closure.

    A subclass sets :attr:`spec` and :attr:`paper_eta`, its momentum schedule eta_t under
    ``eta_schedule="paper"`` (Theorem 4.3 or 5.1, see :mod:`gradhub_harpg.schedules`).
    """

    paper_eta: ClassVar[Callable[[int], float]]

    def _begin(
        self, closure: Callable[[], Any] | None
    ) -> tuple[Callable[[], Any], list[tuple[dict[str, Any], Tensor]]]:
        """Checks before a step changes anything: a closure, dense gradients, every group's options valid.

        Returns the closure and (group, parameter) for every parameter of the optimizer.
        """
        if closure is None:
            raise UnsupportedInputError(
                self.method,
                "call step() without a closure",
                None,
                "step(closure) needs a closure that samples at the current parameters and returns the loss "
                "(after backward) or (loss, logp); the optimizer evaluates it at other points too",
            )
        self.parameters_with_gradients()  # rejects sparse gradients
        for group in self.param_groups:
            self.options(group)
        return closure, [(group, param) for group in self.param_groups for param in group["params"]]

    def _distributed(self) -> str:
        """The ``distributed`` mode (an optimizer-wide choice: the first param group's)."""
        return self.options(self.param_groups[0]).distributed

    def _reject_sparse(self, gradients: list[Tensor | None]) -> None:
        for index, gradient in enumerate(gradients):
            if gradient is not None and gradient.is_sparse:
                raise UnsupportedInputError(
                    self.method,
                    f"sparse gradient (parameter {index})",
                    f"layout {gradient.layout}",
                    "use dense gradients",
                )

    def _eta(self, group: dict[str, Any], step: int) -> float:
        options = self.options(group)
        return schedules.momentum_weight(type(self).paper_eta, options.eta_schedule, options.eta, step)

    def _update(
        self,
        active: list[tuple[dict[str, Any], Tensor, Tensor, Tensor | None]],
    ) -> None:
        """Mix d_t per group, then take the (normalised) steps with one global norm; count the step.

        ``active`` holds (group, parameter, g_t, v_t or None) for every parameter with a gradient.
        """
        by_group: dict[int, list[tuple[Tensor, Tensor, Tensor | None]]] = {}
        groups: dict[int, dict[str, Any]] = {}
        for group, param, gradient, correction in active:
            state = self.state[param]
            if not state:
                state["step"] = 0
                state["direction"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                state["previous"] = param.detach().clone(memory_format=torch.preserve_format)
            by_group.setdefault(id(group), []).append((param, gradient, correction))
            groups[id(group)] = group
        all_directions: list[Tensor] = []
        plans = []
        for key, entries in by_group.items():
            group = groups[key]
            params = [param for param, _, _ in entries]
            states = [self.state[param] for param in params]
            foreach = self.use_foreach(group, params)
            directions = [state["direction"] for state in states]
            gradients = [gradient for _, gradient, _ in entries]
            has_correction = any(correction is not None for _, _, correction in entries)
            corrections = (
                [c if c is not None else torch.zeros_like(p) for p, _, c in entries] if has_correction else None
            )
            etas = [self._eta(group, state["step"]) for state in states]
            mix_directions(directions, gradients, corrections, etas, foreach)
            all_directions.extend(directions)
            plans.append((group, params, states, directions, foreach))
        if not plans:
            return
        norm = None
        if any(self.options(group).normalize for group, *_ in plans):
            norm = global_norm(all_directions, plans[0][4])
        for group, params, states, directions, foreach in plans:
            options = self.options(group)
            step_sizes = [schedules.step_size(options.lr_schedule, options.lr, state["step"]) for state in states]
            apply_update(
                params,
                directions,
                [state["previous"] for state in states],
                step_sizes,
                norm if options.normalize else None,
                options.eps,
                foreach,
            )
            for state in states:
                state["step"] += 1
