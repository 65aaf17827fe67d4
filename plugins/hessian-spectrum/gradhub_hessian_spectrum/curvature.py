"""Hessian- and Gauss-Newton-vector products of a model's full-data training loss.

Paper: "Empirical Analysis of the Hessian of Over-Parametrized Neural Networks", Levent
Sagun, Utku Evci, V. Ugur Guney, Yann Dauphin, Leon Bottou, 2017, arXiv:1706.04454
(following Sagun, Bottou & LeCun, arXiv:1611.07476). There is no official code; the
probes follow PyHessian (github.com/amirgholami/PyHessian, ``pyhessian/hessian.py``),
which evaluates the model in eval mode and averages over the whole data set.

The loss is a function of one flat parameter vector ``theta`` (the selected parameters,
concatenated), evaluated with ``torch.func.functional_call`` so the model itself is never
written to. With ``L(theta) = loss_fn(f(theta; X), Y)`` (a mean over the N samples):

* Hessian-vector product (§2, Pearlmutter's R-operator, here reverse-over-reverse):
  ``H v = grad_theta <grad_theta L, v>`` (double backward; see ``_reverse_hvp`` for why not jvp).
* Gauss-Newton split (§3, Eq. 3 and 4): ``H = G + R`` with
  ``G = J^T (d^2 L / df^2) J`` (J the Jacobian of all outputs with respect to theta; the
  1/N of the mean sits inside ``d^2 L / df^2``) and
  ``R = sum_{i,c} (dL/df_ic) d^2 f_ic / dtheta^2``; ``G v = J^T (d^2L/df^2 (J v))``.

Everything is vectorised over samples and parameter entries; only chunks of the data
(``batch_size``) are looped over, each weighted by its share of N.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, jacrev, jvp, vjp, vmap

from gradhub.errors import HyperparameterError, UnsupportedInputError
from gradhub.kinds import evaluation_mode
from gradhub.kinds.inputs import require_same_device, require_tensor
from gradhub.progress import Tracker

__all__ = ["CurvatureProblem", "evaluation_mode", "ggn_vector_product", "hvp", "prepare"]

LossFunction = Callable[[Tensor, Tensor], Tensor]


@dataclass
class CurvatureProblem:
    """A model's full-data loss as a function of one flat vector of its selected parameters."""

    model: nn.Module
    loss_fn: LossFunction
    batches: list[tuple[Tensor, Tensor, float]]
    """(inputs, targets, share of the samples) per chunk of the data."""
    names: list[str]
    shapes: list[torch.Size]
    theta: Tensor
    """The selected parameters, flattened and detached (a copy: the model is never written to)."""

    @property
    def dim(self) -> int:
        return self.theta.numel()

    def unflatten(self, theta: Tensor) -> dict[str, Tensor]:
        pieces = theta.split([math.prod(shape) for shape in self.shapes])
        return {name: piece.view(shape) for name, piece, shape in zip(self.names, pieces, self.shapes)}

    def outputs(self, theta: Tensor, inputs: Tensor) -> Tensor:
        return functional_call(self.model, self.unflatten(theta), (inputs,))

    def loss(self, theta: Tensor, inputs: Tensor, targets: Tensor) -> Tensor:
        return self.loss_fn(self.outputs(theta, inputs), targets)

    def full_loss(self, theta: Tensor) -> Tensor:
        """The loss over all the data (chunks weighted by their share of the samples)."""
        total = torch.zeros((), dtype=theta.dtype, device=theta.device)
        for inputs, targets, share in self.batches:
            total = total + share * self.loss(theta, inputs, targets)
        return total

    def hessian_vector_product(self, vector: Tensor) -> Tensor:
        """``H v`` for one vector (P,) (§2)."""
        total = torch.zeros_like(self.theta)
        for inputs, targets, share in self.batches:
            product = _reverse_hvp(lambda theta: self.loss(theta, inputs, targets), self.theta, vector)  # noqa: B023 (called within the iteration)
            total = total + share * product
        return total

    def ggn_vector_product(self, vector: Tensor) -> Tensor:
        """``G v = J^T (d^2L/df^2) J v`` for one vector (P,) (Eq. 4's first term)."""
        total = torch.zeros_like(self.theta)
        for inputs, targets, share in self.batches:
            outputs, jacobian_vector = jvp(lambda theta: self.outputs(theta, inputs), (self.theta,), (vector,))  # noqa: B023 (called within the iteration)
            curvature = _reverse_hvp(lambda out: self.loss_fn(out, targets), outputs, jacobian_vector)  # noqa: B023 (called within the iteration)
            _, pullback = vjp(lambda theta: self.outputs(theta, inputs), self.theta)  # noqa: B023 (called within the iteration)
            total = total + share * pullback(curvature)[0]
        return total

    def dense_hessian(self, bar: Tracker | None = None) -> Tensor:
        """The P x P Hessian, symmetrised: ``jacrev(jacrev(L))`` (reverse-over-reverse, vmapped over P rows)."""
        total = torch.zeros(self.dim, self.dim, dtype=self.theta.dtype, device=self.theta.device)
        for inputs, targets, share in self.batches:
            total = total + share * jacrev(jacrev(lambda theta: self.loss(theta, inputs, targets)))(self.theta)  # noqa: B023 (called within the iteration)
            if bar is not None:
                bar.update()
        return (total + total.T) / 2

    def dense_ggn(self, bar: Tracker | None = None) -> Tensor:
        """The P x P Gauss-Newton matrix ``J^T (d^2L/df^2) J`` from the output Jacobian (Eq. 4)."""
        total = torch.zeros(self.dim, self.dim, dtype=self.theta.dtype, device=self.theta.device)
        for inputs, targets, share in self.batches:
            outputs = self.outputs(self.theta, inputs)
            jacobian = jacrev(lambda theta: self.outputs(theta, inputs))(self.theta)  # (*out, P)  # noqa: B023 (called within the iteration)
            columns = jacobian.reshape(-1, self.dim)

            def output_curvature(column: Tensor) -> Tensor:
                tangent = column.view(outputs.shape)  # noqa: B023 (called within the iteration)
                return _reverse_hvp(lambda out: self.loss_fn(out, targets), outputs, tangent).reshape(-1)  # noqa: B023 (called within the iteration)

            curved = vmap(output_curvature, in_dims=1, out_dims=1)(columns)
            total = total + share * (columns.T @ curved)
            if bar is not None:
                bar.update()
        return (total + total.T) / 2


def _reverse_hvp(function: Callable[[Tensor], Tensor], point: Tensor, vector: Tensor) -> Tensor:
    """``d^2 function(point) . vector`` as the gradient of ``<grad function, vector>`` (double backward).

    Reverse-over-reverse rather than ``jvp(grad(.))``: torch 2.13's forward mode fails
    inside ``mse_loss``'s backward with a constant target ("ZeroTensors are immutable").
    """
    return grad(lambda x: (grad(function)(x) * vector).sum())(point)


def _selected_parameters(method: str, model: nn.Module, params: Sequence[Tensor] | None) -> list[tuple[str, Tensor]]:
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if params is None:
        chosen = named
    else:
        by_identity = {id(p): name for name, p in model.named_parameters()}
        chosen = []
        for index, p in enumerate(params):
            if not isinstance(p, Tensor) or id(p) not in by_identity:
                raise UnsupportedInputError(
                    method,
                    f"params[{index}]",
                    type(p).__name__ if not isinstance(p, Tensor) else tuple(p.shape),
                    "params must be a list of the model's own parameters (from model.parameters())",
                )
            chosen.append((by_identity[id(p)], p))
    if not chosen:
        raise UnsupportedInputError(
            method, "model", type(model).__name__, "it needs at least one parameter that requires grad"
        )
    first = chosen[0][1]
    for name, p in chosen:
        if not p.is_floating_point():
            raise UnsupportedInputError(
                method, f"parameter {name!r} dtype", p.dtype, "parameters must be floating point"
            )
        require_same_device(method, **{chosen[0][0]: first, name: p})
        if p.dtype != first.dtype:
            raise UnsupportedInputError(
                method,
                "parameter dtypes",
                f"{chosen[0][0]!r} is {first.dtype}, {name!r} is {p.dtype}",
                "all selected parameters must share one dtype",
            )
    return chosen


def prepare(
    method: str,
    model: nn.Module,
    loss_fn: LossFunction,
    data: tuple[Tensor, Tensor],
    params: Sequence[Tensor] | None = None,
    batch_size: int | None = None,
) -> CurvatureProblem:
    """Check the inputs and build the flat-parameter view of the full-data loss."""
    if not isinstance(model, nn.Module):
        raise UnsupportedInputError(method, "model", type(model).__name__, "model must be a torch.nn.Module")
    if not callable(loss_fn):
        raise UnsupportedInputError(
            method, "loss_fn", type(loss_fn).__name__, "loss_fn(outputs, targets) must be callable"
        )
    if not isinstance(data, tuple | list) or len(data) != 2 or not all(isinstance(t, Tensor) for t in data):
        raise UnsupportedInputError(
            method, "data", type(data).__name__, "data must be a pair of tensors (inputs, targets)"
        )
    inputs, targets = data
    chosen = _selected_parameters(method, model, params)
    reference = chosen[0][1]
    require_tensor(method, "inputs", inputs)
    if inputs.dtype != reference.dtype:
        raise UnsupportedInputError(
            method, "inputs dtype", inputs.dtype, f"inputs must have the parameters' dtype {reference.dtype}"
        )
    require_same_device(method, parameters=reference, inputs=inputs, targets=targets)
    if inputs.ndim == 0 or targets.ndim == 0 or inputs.shape[0] != targets.shape[0] or inputs.shape[0] == 0:
        raise UnsupportedInputError(
            method,
            "data shapes",
            f"inputs {tuple(inputs.shape)}, targets {tuple(targets.shape)}",
            "inputs and targets need the same non-zero number of samples along dim 0",
        )
    count = inputs.shape[0]
    if batch_size is None or batch_size >= count:
        batches = [(inputs, targets, 1.0)]
    else:
        batches = [(x, y, x.shape[0] / count) for x, y in zip(inputs.split(batch_size), targets.split(batch_size))]
    theta = torch.cat([p.detach().reshape(-1) for _, p in chosen]).clone()
    return CurvatureProblem(
        model=model,
        loss_fn=loss_fn,
        batches=batches,
        names=[name for name, _ in chosen],
        shapes=[p.shape for _, p in chosen],
        theta=theta,
    )


def check_dense_size(method: str, problem: CurvatureProblem, dense_limit: int) -> None:
    if problem.dim > dense_limit:
        gib = problem.dim**2 * problem.theta.element_size() / 2**30
        raise UnsupportedInputError(
            method,
            "model size for method='dense'",
            f"{problem.dim} parameters (a {problem.dim} x {problem.dim} matrix, {gib:.2g} GiB)",
            f"dense is limited to dense_limit={dense_limit} parameters; use method='lanczos' (k Ritz values from "
            "Hessian-vector products) or pass params=[...] to probe a subset",
        )


def check_steps(method: str, name: str, steps: int, dim: int) -> None:
    if steps > dim:
        raise HyperparameterError(
            method, name, steps, f"an integer >= 1 and <= the number of parameters probed ({dim})"
        )


def hvp(
    model: nn.Module,
    loss_fn: LossFunction,
    data: tuple[Tensor, Tensor],
    params: Sequence[Tensor] | None = None,
    batch_size: int | None = None,
) -> Callable[[Tensor], Tensor]:
    """A closure ``v -> H v`` for the full-data loss Hessian, ``v`` flat of length P (selected parameters).

    The parameters are the model's as they are now (copied); each call evaluates the model
    in eval mode and restores its modes, and never writes to the model or its ``.grad``.
    """
    problem = prepare("hvp", model, loss_fn, data, params, batch_size)

    def product(vector: Tensor) -> Tensor:
        _check_vector("hvp", problem, vector)
        with evaluation_mode(model):
            return problem.hessian_vector_product(vector.to(problem.theta.dtype))

    return product


def ggn_vector_product(
    model: nn.Module,
    loss_fn: LossFunction,
    data: tuple[Tensor, Tensor],
    params: Sequence[Tensor] | None = None,
    batch_size: int | None = None,
) -> Callable[[Tensor], Tensor]:
    """A closure ``v -> G v`` for the generalised Gauss-Newton part of the Hessian (Eq. 4)."""
    problem = prepare("ggn_vector_product", model, loss_fn, data, params, batch_size)

    def product(vector: Tensor) -> Tensor:
        _check_vector("ggn_vector_product", problem, vector)
        with evaluation_mode(model):
            return problem.ggn_vector_product(vector.to(problem.theta.dtype))

    return product


def _check_vector(method: str, problem: CurvatureProblem, vector: Tensor) -> None:
    require_tensor(method, "vector", vector, dim=1)
    if vector.shape[0] != problem.dim:
        raise UnsupportedInputError(
            method, "vector shape", tuple(vector.shape), f"a 1-D tensor of length {problem.dim}"
        )
    require_same_device(method, vector=vector, parameters=problem.theta)
