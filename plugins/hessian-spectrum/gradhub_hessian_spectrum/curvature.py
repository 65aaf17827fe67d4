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
  ``H v = grad_theta <grad_theta L, v>`` (a double backward).
* Gauss-Newton split (§3, Eq. 3 and 4): ``H = G + R`` with
  ``G = J^T (d^2 L / df^2) J`` (J the Jacobian of all outputs with respect to theta; the
  1/N of the mean sits inside ``d^2 L / df^2``) and
  ``R = sum_{i,c} (dL/df_ic) d^2 f_ic / dtheta^2``; ``G v = J^T (d^2L/df^2 (J v))``.

The products reuse one graph (``CurvatureGraph``): the forward pass and the first backward
(``create_graph=True``) are run once per chunk of data, and each product is one more backward
through them (``retain_graph=True``), as PyHessian does for a single batch. A probe builds the
graph once per call; the ``hvp`` and ``ggn_vector_product`` closures build it when they are
made and keep it while they live.

Everything is vectorised over samples and parameter entries; only chunks of the data
(``batch_size``) are looped over, each weighted by its share of N.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, jacrev, vmap

from gradhub.errors import HyperparameterError, UnsupportedInputError
from gradhub.kinds import evaluation_mode
from gradhub.kinds.inputs import require_same_device, require_tensor
from gradhub.progress import Tracker

__all__ = [
    "CurvatureGraph",
    "CurvatureOperator",
    "CurvatureProblem",
    "evaluation_mode",
    "ggn_vector_product",
    "hvp",
    "prepare",
]

LossFunction = Callable[[Tensor, Tensor], Tensor]
Curvature = Literal["hessian", "ggn", "residual"]
"""Which matrix: the Hessian H, its Gauss-Newton part G, or the rest R = H - G."""


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


def _pull_back(output: Tensor | None, point: Tensor, cotangent: Tensor) -> Tensor:
    """``d<output, cotangent>/d point`` through a kept graph: zeros where ``output`` does not depend on ``point``."""
    if output is None or not output.requires_grad:
        return torch.zeros_like(point)
    (result,) = torch.autograd.grad(output, point, cotangent, retain_graph=True, allow_unused=True)
    return torch.zeros_like(point) if result is None else result


class CurvatureGraph:
    """One chunk's loss, differentiated once with ``create_graph=True``, for any number of products.

    Built in one forward pass ``f = f(theta; X)`` and first backward passes from a fresh leaf
    ``theta`` (a view of the problem's copy; the model's own parameters are not in the graph):

    * ``hessian``: ``g = dL/dtheta`` with its graph; ``H v = d<g, v>/dtheta`` is one backward
      (``retain_graph=True``), PyHessian's ``hessian_vector_product``.
    * ``ggn``: ``J^T u`` with its graph, linear in a dummy cotangent ``u`` of the outputs'
      shape, so ``J v = d<J^T u, v>/du`` (the double-vjp form of a forward-mode product,
      without forward mode: torch 2.13's ``jvp`` fails inside ``mse_loss``'s backward with a
      constant target, "ZeroTensors are immutable"); ``d^2L/df^2 w`` is one backward through
      ``dL/df`` (the loss re-evaluated on the detached outputs, no model pass), and
      ``J^T`` one more: ``G v`` is three backwards and no forward.

    Memory: the graph keeps the chunk's activations and the first backward's intermediates
    (about twice a training step's activations, three times with ``ggn``) until the object is
    dropped. Under ``torch.func.vmap`` each backward handles a batch of vectors at once.
    """

    def __init__(
        self,
        problem: CurvatureProblem,
        inputs: Tensor,
        targets: Tensor,
        *,
        hessian: bool = True,
        ggn: bool = False,
    ) -> None:
        self.point = problem.theta.detach().requires_grad_()
        self.gradient: Tensor | None = None
        self.outputs: Tensor | None = None
        self.cotangent: Tensor | None = None
        self.pullback: Tensor | None = None
        self.output_point: Tensor | None = None
        self.output_gradient: Tensor | None = None
        with torch.enable_grad():
            outputs = problem.outputs(self.point, inputs)
            if hessian:
                loss = problem.loss_fn(outputs, targets)
                if loss.requires_grad:
                    (self.gradient,) = torch.autograd.grad(loss, self.point, create_graph=True, allow_unused=True)
            if ggn:
                self.outputs = outputs
                self.cotangent = torch.zeros_like(outputs, requires_grad=True)
                self.pullback = (
                    torch.autograd.grad(outputs, self.point, self.cotangent, create_graph=True, allow_unused=True)[0]
                    if outputs.requires_grad
                    else None
                )
                self.output_point = outputs.detach().requires_grad_()
                output_loss = problem.loss_fn(self.output_point, targets)
                if output_loss.requires_grad:
                    (self.output_gradient,) = torch.autograd.grad(
                        output_loss, self.output_point, create_graph=True, allow_unused=True
                    )

    def hessian_product(self, vector: Tensor) -> Tensor:
        """``H v`` for one vector (P,) (§2): one backward through the kept gradient."""
        return _pull_back(self.gradient, self.point, vector)

    def ggn_product(self, vector: Tensor) -> Tensor:
        """``G v = J^T (d^2L/df^2) J v`` for one vector (P,) (Eq. 4's first term): three backwards."""
        jacobian_vector = _pull_back(self.pullback, self.cotangent, vector)
        curvature = _pull_back(self.output_gradient, self.output_point, jacobian_vector)
        return _pull_back(self.outputs, self.point, curvature)

    def residual_product(self, vector: Tensor) -> Tensor:
        """``R v = H v - G v`` for one vector (P,) (Eq. 4's second term)."""
        return self.hessian_product(vector) - self.ggn_product(vector)

    def product(self, which: Curvature) -> Callable[[Tensor], Tensor]:
        """The one-vector product (P,) -> (P,) of ``which``."""
        if which == "hessian":
            return self.hessian_product
        return self.ggn_product if which == "ggn" else self.residual_product

    def products(self, which: Curvature, vectors: Tensor) -> Tensor:
        """One product per row of ``vectors`` (b, P); several rows go through each backward together (vmap)."""
        single = self.product(which)
        if vectors.shape[0] == 1:
            return single(vectors[0]).unsqueeze(0)
        return vmap(single)(vectors)


class CurvatureOperator:
    """``H``, ``G`` or ``R = H - G`` of the full-data loss as batched products (b, P) -> (b, P).

    With the data in one chunk (``batch_size=None`` or >= N) the ``CurvatureGraph`` is built
    once, here, and reused by every product: one forward pass per operator, however many
    products. With several chunks, keeping every chunk's graph would hold the activations of
    the whole data set, which ``batch_size`` is there to avoid; so each product rebuilds the
    chunks' graphs one at a time (forward, first backward, product per chunk, as PyHessian's
    ``dataloader_hv_product``), all the rows of a batched product sharing each chunk's pass.
    Build and call it with the model in eval mode (``evaluation_mode``).
    """

    def __init__(self, problem: CurvatureProblem, *, hessian: bool = True, ggn: bool = False) -> None:
        self.problem = problem
        self.parts = {"hessian": hessian, "ggn": ggn}
        self.kept = (
            CurvatureGraph(problem, *problem.batches[0][:2], hessian=hessian, ggn=ggn)
            if len(problem.batches) == 1
            else None
        )

    def __call__(self, which: Curvature, vectors: Tensor) -> Tensor:
        if self.kept is not None:
            return self.kept.products(which, vectors)
        total: Tensor | None = None
        for inputs, targets, share in self.problem.batches:
            # the chunk's graph is dropped at the end of the statement: one chunk's memory at a time
            part = share * CurvatureGraph(self.problem, inputs, targets, **self.parts).products(which, vectors)
            total = part if total is None else total + part
        assert total is not None
        return total


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

    The parameters are the model's as they are now (copied); the model is evaluated in eval
    mode (its modes restored) and never written to, nor its ``.grad``. With the data in one
    chunk the forward pass and the first backward run here, once, and the closure keeps their
    graph (the activations and the gradient's intermediates) for its every call, so later
    changes to the model's buffers are not seen; with ``batch_size`` < N each call evaluates
    the chunks one at a time (see ``CurvatureOperator``).
    """
    return _closure("hvp", "hessian", model, loss_fn, data, params, batch_size)


def ggn_vector_product(
    model: nn.Module,
    loss_fn: LossFunction,
    data: tuple[Tensor, Tensor],
    params: Sequence[Tensor] | None = None,
    batch_size: int | None = None,
) -> Callable[[Tensor], Tensor]:
    """A closure ``v -> G v`` for the generalised Gauss-Newton part of the Hessian (Eq. 4).

    Built and kept like ``hvp``'s graph (one forward pass when the data are one chunk).
    """
    return _closure("ggn_vector_product", "ggn", model, loss_fn, data, params, batch_size)


def _closure(
    method: str,
    which: Curvature,
    model: nn.Module,
    loss_fn: LossFunction,
    data: tuple[Tensor, Tensor],
    params: Sequence[Tensor] | None,
    batch_size: int | None,
) -> Callable[[Tensor], Tensor]:
    problem = prepare(method, model, loss_fn, data, params, batch_size)
    with evaluation_mode(model):
        operator = CurvatureOperator(problem, hessian=which == "hessian", ggn=which == "ggn")

    single = operator.kept.product(which) if operator.kept is not None else None

    def product(vector: Tensor) -> Tensor:
        _check_vector(method, problem, vector)
        vector = vector.to(problem.theta.dtype)
        if single is not None:
            return single(vector)
        with evaluation_mode(model):
            return operator(which, vector.unsqueeze(0))[0]

    return product


def _check_vector(method: str, problem: CurvatureProblem, vector: Tensor) -> None:
    require_tensor(method, "vector", vector, dim=1)
    if vector.shape[0] != problem.dim:
        raise UnsupportedInputError(
            method, "vector shape", tuple(vector.shape), f"a 1-D tensor of length {problem.dim}"
        )
    require_same_device(method, vector=vector, parameters=problem.theta)
