"""Winsorized SGD and median-of-means SGD (M3, RM3): SGD on a robust mean of per-example gradients.

Paper: Chatterjee & Zielinski, "On the Generalization Mystery in Deep Learning", 2022,
arXiv 2203.10036, Sec. 9 ("attenuating memorization"): strong (coherent) gradient
directions are supported by many examples and survive a robust average; weak directions,
pushed by one or a few (e.g. mislabelled) examples, are suppressed. Winsorized GD is from
Chatterjee, "Coherent Gradients", ICLR 2020; M3 and RM3 from Zielinski, Krishnan &
Chatterjee, "Weak and Strong Gradient Directions", 2020. No official code exists.

Interface. The aggregate needs every example's gradient, which ``loss.backward()`` does not
give. ``step()`` reads them from ``param.grad_sample`` of shape ``(m, *param.shape)`` (the
Opacus convention), filled by :func:`gradhub_coherence.per_example.attach_per_example_grads`
(torch.func), by Opacus's ``GradSampleModule`` or by torch's
``call_for_per_sample_grads``. ``zero_grad()`` clears ``grad_sample`` too. A parameter with a
``.grad`` but no ``grad_sample`` is an error (silently using ``.grad`` would be plain SGD);
RM3 (``running=True``) needs only the minibatch gradient and takes ``.grad`` (or the mean of
``grad_sample`` when there is no ``.grad``).

The update after aggregation is ``torch.optim.SGD``'s (coupled weight decay, momentum buffer
``momentum_buffer`` set to the first direction, no dampening), so ``c = 0`` and
``n_groups = 1`` are plain SGD bit for bit. The aggregate is per tensor (a sort along the
example dimension); the ``foreach`` path does the SGD update with ``torch._foreach_*`` over
tensors grouped by device and dtype, one pass over parameters and buffers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from gradhub.errors import UnsupportedInputError
from gradhub.kernels import group_tensors
from gradhub.kinds.optimizer import Optimizer
from gradhub_coherence import MEDIAN_OF_MEANS_SGD, WINSORIZED_SGD, M3SGDHyperparameters, WinsorizedSGDHyperparameters
from gradhub_coherence.aggregation import median, median_of_means, winsorized_mean

__all__ = ["M3SGD", "WinsorizedSGD"]

Options = WinsorizedSGDHyperparameters | M3SGDHyperparameters


class _PerExampleSGD(Optimizer):
    """SGD on an aggregate of per-example gradients; subclasses define :meth:`_aggregate`."""

    def _needs_per_example(self, options: Any) -> bool:
        return True

    def _minimum_examples(self, options: Any) -> int:
        return 1

    def _aggregate(self, options: Any, param: Tensor, samples: Tensor) -> Tensor:
        raise NotImplementedError

    def zero_grad(self, set_to_none: bool = True) -> None:
        """As ``torch.optim.Optimizer.zero_grad``, and drop every ``grad_sample``."""
        super().zero_grad(set_to_none)
        for group in self.param_groups:
            for param in group["params"]:
                if getattr(param, "grad_sample", None) is not None:
                    param.grad_sample = None

    def _collect(self, options: list[Any]) -> list[tuple[list[Tensor], list[Tensor]]]:
        """Per group, (parameters, per-example or minibatch gradients); everything checked first."""
        collected = []
        for group_index, (group, group_options) in enumerate(zip(self.param_groups, options)):
            per_example = self._needs_per_example(group_options)
            params, sources = [], []
            for index, param in enumerate(group["params"]):
                where = f"parameter {index} of param group {group_index}"
                samples = getattr(param, "grad_sample", None)
                for gradient in (param.grad, samples):
                    if gradient is not None and gradient.is_sparse:
                        raise UnsupportedInputError(
                            self.method, f"sparse gradient ({where})", f"layout {gradient.layout}", "dense gradients"
                        )
                if not per_example and param.grad is not None:
                    params.append(param)
                    sources.append(param.grad)
                    continue
                if samples is None:
                    if param.grad is not None:
                        raise UnsupportedInputError(
                            self.method,
                            f"per-example gradients ({where})",
                            "a .grad but no .grad_sample",
                            "param.grad_sample of shape (m, *param.shape): call "
                            "gradhub_coherence.attach_per_example_grads(model, loss_fn, inputs, targets) instead of "
                            "loss.backward(), or use Opacus's GradSampleModule",
                        )
                    continue
                if samples.dim() != param.dim() + 1 or samples.shape[1:] != param.shape:
                    raise UnsupportedInputError(
                        self.method, f"grad_sample shape ({where})", tuple(samples.shape), f"(m, *{tuple(param.shape)})"
                    )
                if samples.device != param.device:
                    raise UnsupportedInputError(
                        self.method, f"grad_sample device ({where})", str(samples.device), str(param.device)
                    )
                needed = self._minimum_examples(group_options)
                if per_example and samples.shape[0] < needed:
                    raise UnsupportedInputError(
                        self.method, f"number of examples in grad_sample ({where})", samples.shape[0], f">= {needed}"
                    )
                params.append(param)
                sources.append(samples)
            collected.append((params, sources))
        return collected

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One step on the aggregated gradient; returns ``closure()``'s loss when given."""
        loss = self.evaluate_closure(closure)
        options = [self.options(group) for group in self.param_groups]  # validated before anything changes
        for group, group_options, (params, sources) in zip(self.param_groups, options, self._collect(options)):
            if not params:
                continue
            directions = [self._aggregate(group_options, param, source) for param, source in zip(params, sources)]
            buffers = [self.state[param].get("momentum_buffer") for param in params]
            implementation = _multi_tensor_sgd if self.use_foreach(group, params) else _single_tensor_sgd
            new_buffers = implementation(params, directions, buffers, group_options)
            if group_options.momentum > 0:
                for param, buffer in zip(params, new_buffers):
                    self.state[param]["momentum_buffer"] = buffer
        return loss


def _single_tensor_sgd(
    params: list[Tensor],
    grads: list[Tensor],
    buffers: list[Tensor | None],
    options: Options,
) -> list[Tensor | None]:
    """``torch.optim.SGD``'s update (dampening 0, no Nesterov) on the aggregated gradients."""
    lr, momentum, weight_decay = options.lr, options.momentum, options.weight_decay
    new_buffers: list[Tensor | None] = []
    for param, grad, buffer in zip(params, grads, buffers):
        direction = grad.add(param, alpha=weight_decay) if weight_decay != 0 else grad
        if momentum > 0:
            if buffer is None:
                buffer = torch.clone(direction).detach()
            else:
                buffer.mul_(momentum).add_(direction)
            direction = buffer
        new_buffers.append(buffer)
        param.add_(direction, alpha=-lr)
    return new_buffers


def _multi_tensor_sgd(
    params: list[Tensor],
    grads: list[Tensor],
    buffers: list[Tensor | None],
    options: Options,
) -> list[Tensor | None]:
    """The same update with ``torch._foreach_*`` over tensors grouped by device and dtype."""
    lr, momentum, weight_decay = options.lr, options.momentum, options.weight_decay
    new_buffers: list[Tensor | None] = list(buffers)
    # The third list carries each tensor's position (group_tensors keys on the first list only).
    positions_list: list[Any] = list(range(len(params)))
    for group_params, group_grads, positions in group_tensors([params, grads, positions_list]).values():
        if weight_decay != 0:
            group_grads = torch._foreach_add(group_grads, group_params, alpha=weight_decay)
        if momentum > 0:
            fresh = [i for i in positions if buffers[i] is None]
            old = [i for i in positions if buffers[i] is not None]
            by_position = dict(zip(positions, group_grads))
            if old:
                old_buffers = [buffers[i] for i in old]
                torch._foreach_mul_(old_buffers, momentum)
                torch._foreach_add_(old_buffers, [by_position[i] for i in old])
            for i in fresh:
                new_buffers[i] = torch.clone(by_position[i]).detach()
            group_grads = [new_buffers[i] for i in positions]
        torch._foreach_add_(group_params, group_grads, alpha=-lr)
    return new_buffers


class WinsorizedSGD(_PerExampleSGD):
    """Winsorized SGD: SGD on the coordinate-wise winsorized mean of the per-example gradients.

    Each coordinate's m per-example values are clamped to their (c+1)-th smallest and
    (c+1)-th largest before averaging (Chatterjee 2020, Sec. 5; Chatterjee & Zielinski
    2022, Sec. 9). ``c = 0`` is plain SGD. Needs ``m > 2c`` examples per step and
    ``param.grad_sample`` (see the module docstring).

    ``WinsorizedSGD(params, lr, momentum, c, weight_decay, *, foreach)``: ``lr`` is required (as
    in ``torch.optim.SGD``), ``momentum`` is ``torch.optim.SGD``'s heavy ball (no dampening),
    ``weight_decay`` an L2 penalty added to the aggregated gradient. Defaults and bounds are
    written once, in :class:`~gradhub_coherence.WinsorizedSGDHyperparameters` (listed below).
    """

    spec = WINSORIZED_SGD

    def _minimum_examples(self, options: WinsorizedSGDHyperparameters) -> int:
        return 2 * options.c + 1

    def _aggregate(self, options: WinsorizedSGDHyperparameters, param: Tensor, samples: Tensor) -> Tensor:
        return winsorized_mean(samples, options.c)


class M3SGD(_PerExampleSGD):
    """Median-of-means SGD (M3) and running median of 3 (RM3).

    M3: the batch is split into ``n_groups`` contiguous groups (sizes differ by at most one),
    and the update uses the coordinate-wise median of the group-mean gradients (Zielinski et
    al. 2020; Chatterjee & Zielinski 2022, Sec. 9); ``n_groups = 1`` is plain SGD. RM3
    (``running=True``): the coordinate-wise median of this minibatch's gradient and those of
    the two previous minibatches (state ``previous_gradients``, shape ``(k, *param.shape)``,
    k <= 2); until two previous gradients exist the current one is used as it is. RM3 needs
    no per-example gradients.

    ``M3SGD(params, lr, momentum, n_groups, weight_decay, running, *, foreach)``: ``lr`` is
    required, ``momentum`` is ``torch.optim.SGD``'s heavy ball (no dampening), ``weight_decay``
    an L2 penalty added to the aggregated gradient. Defaults and bounds are written once, in
    :class:`~gradhub_coherence.M3SGDHyperparameters` (listed below).
    """

    spec = MEDIAN_OF_MEANS_SGD

    def _needs_per_example(self, options: M3SGDHyperparameters) -> bool:
        return not options.running

    def _minimum_examples(self, options: M3SGDHyperparameters) -> int:
        return options.n_groups

    def _aggregate(self, options: M3SGDHyperparameters, param: Tensor, source: Tensor) -> Tensor:
        if not options.running:
            return median_of_means(source, options.n_groups)
        gradient = source if source.shape == param.shape else source.mean(0)
        state = self.state[param]
        previous = state.get("previous_gradients")
        if previous is None:
            state["previous_gradients"] = gradient.unsqueeze(0).clone()
            return gradient
        if previous.shape[0] < 2:
            state["previous_gradients"] = torch.cat([previous, gradient.unsqueeze(0)])
            return gradient
        result = median(torch.cat([previous, gradient.unsqueeze(0)]))
        state["previous_gradients"] = torch.cat([previous[1:], gradient.unsqueeze(0)])
        return result
