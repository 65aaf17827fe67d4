"""Shared mechanics of the three optimizers: closure outputs, the per-tensor and multi-tensor phases.

Every phase exists twice, as a per-tensor loop (the reference) and over lists grouped by
device and dtype with ``torch._foreach_*``; both apply the same operations in the same
order, so they agree to round-off (the conformance suite checks 1e-12 in float64).
Scalars that differ per tensor (eta_t, gamma_t of a parameter's own step count) are lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from gradhub import kernels
from gradhub.errors import UnsupportedInputError
from gradhub.kernels import foreach_copy_, group_tensors

__all__ = [
    "ClosureOutput",
    "across_processes",
    "apply_update",
    "closure_output",
    "displace",
    "global_norm",
    "gradients_of",
    "mix_directions",
]


class ClosureOutput:
    """What a closure returned: the loss, and ``logp`` of the sampled trajectory when given.

    ``plain`` is the torch.optim convention (the closure returned a tensor after calling
    ``backward``; the gradients are in ``.grad``); otherwise the closure returned
    ``(loss, logp)`` or ``(loss,)`` without calling backward and the optimizer differentiates.
    """

    def __init__(self, loss: Tensor, logp: Tensor | None, plain: bool) -> None:
        self.loss, self.logp, self.plain = loss, logp, plain


def closure_output(method: str, output: Any) -> ClosureOutput:
    if isinstance(output, Tensor):
        return ClosureOutput(output, None, plain=True)
    if isinstance(output, tuple | list) and len(output) in (1, 2) and isinstance(output[0], Tensor):
        logp = output[1] if len(output) == 2 else None
        if logp is not None and not isinstance(logp, Tensor):
            raise UnsupportedInputError(
                method, "closure output", f"logp of type {type(logp).__name__}", "logp must be a scalar tensor or None"
            )
        for name, value in (("loss", output[0]), ("logp", logp)):
            if value is not None and value.numel() != 1:
                raise UnsupportedInputError(
                    method, f"closure output {name}", f"shape {tuple(value.shape)}", f"{name} must be a scalar tensor"
                )
        return ClosureOutput(output[0], logp, plain=False)
    raise UnsupportedInputError(
        method,
        "closure output",
        type(output).__name__,
        "the closure must return the loss (after calling backward) or a tuple (loss, logp) without calling backward",
    )


def gradients_of(output: ClosureOutput, params: Sequence[Tensor]) -> list[Tensor | None]:
    """g at the point the closure ran: ``.grad`` (plain closures) or ``autograd.grad`` of the loss."""
    if output.plain:
        return [p.grad.detach().clone() if p.grad is not None else None for p in params]
    if not output.loss.requires_grad:
        return [None] * len(params)
    with torch.enable_grad():
        grads = torch.autograd.grad(output.loss, list(params), allow_unused=True)
    return [g.detach() if g is not None else None for g in grads]


def across_processes(method: str, mode: str, params: Sequence[Tensor], estimates: list[Tensor | None]) -> None:
    """Reduce a (loss, logp) closure's estimates across processes, in place, as ``mode`` says.

    Such a closure is differentiated here with ``torch.autograd.grad``, which DDP's and FSDP2's
    gradient reductions never see: without this, every process would step on its own
    trajectories while the user believes the batch is global. With one process (or none
    initialised) nothing happens. ``mode`` is the ``distributed`` hyperparameter: "error"
    refuses, "local" leaves each process its estimates, "average" replaces each estimate by its
    mean over the default process group (one all-reduce of a flat buffer; an estimate that is
    None on every process stays None). DTensor shards (FSDP2) are refused: their gradient is
    not a per-process estimate of the whole tensor.
    """
    if mode == "local" or not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    world = dist.get_world_size()
    if mode == "error":
        raise UnsupportedInputError(
            method,
            "distributed",
            f"'error' with {world} processes and a (loss, logp) closure",
            "'average' (all-reduce the estimates: data parallelism over trajectories) or 'local' (each process "
            "steps on its own); or a torch.optim closure that calls backward(), which DDP/FSDP2 reduce",
        )
    if any(type(param) not in (Tensor, torch.nn.Parameter) for param in params):
        raise UnsupportedInputError(
            method,
            "distributed",
            "'average' with tensor-subclass parameters (FSDP2 DTensor shards)",
            "replicated parameters (DistributedDataParallel, or none); with FSDP2 use a torch.optim closure",
        )
    present = [estimate for estimate in estimates if estimate is not None]
    dtype = present[0].dtype if present else params[0].dtype
    device = present[0].device if present else params[0].device
    flags = torch.tensor([estimate is not None for estimate in estimates], dtype=dtype, device=device)
    buffer = torch.cat(
        [
            (estimate if estimate is not None else torch.zeros_like(param)).reshape(-1).to(dtype)
            for estimate, param in zip(estimates, params)
        ]
        + [flags]
    )
    dist.all_reduce(buffer)
    buffer.div_(world)
    anywhere = buffer[buffer.numel() - len(params) :].ne(0).tolist()  # one host sync per step, not per tensor
    offset = 0
    for index, param in enumerate(params):
        numel = param.numel()
        chunk = buffer[offset : offset + numel].view_as(param).to(param.dtype)
        estimates[index] = chunk if anywhere[index] else None
        offset += numel


def _dot(first: Sequence[Tensor], second: Sequence[Tensor]) -> Tensor:
    return torch.stack([(a * b).sum() for a, b in zip(first, second)]).sum()


def hessian_vector_product(
    output: ClosureOutput, params: Sequence[Tensor], vectors: Sequence[Tensor]
) -> tuple[list[Tensor], list[Tensor | None]]:
    """B(tau, theta) v = g <grad logp, v> + grad_theta <g, v> (Eq. (7) of the paper, minimisation form).

    ``g`` is the gradient of the closure's surrogate loss; the first term is the score-function
    part of the Hessian estimate (zero when no ``logp`` is given, i.e. a deterministic
    objective), the second the double-backward Hessian-vector product. Returns ``B v`` and g.
    """
    with torch.enable_grad():
        grads = torch.autograd.grad(output.loss, list(params), create_graph=True, allow_unused=True)
        pairs = [(i, g) for i, g in enumerate(grads) if g is not None]
        products: list[Tensor] = [torch.zeros_like(v) for v in vectors]
        if output.logp is not None and output.logp.requires_grad:
            scores = torch.autograd.grad(output.logp, list(params), retain_graph=True, allow_unused=True)
            used = [(s, v) for s, v in zip(scores, vectors) if s is not None]
            if used:
                projection = _dot([s for s, _ in used], [v for _, v in used])
                for i, g in pairs:
                    products[i] = products[i] + g.detach() * projection
        inner_terms = [(g * vectors[i]).sum() for i, g in pairs if g.requires_grad]
        if inner_terms:
            second = torch.autograd.grad(torch.stack(inner_terms).sum(), list(params), allow_unused=True)
            for i, h in enumerate(second):
                if h is not None:
                    products[i] = products[i] + h
    return products, [g.detach() if g is not None else None for g in grads]


def displace(params: list[Tensor], previous: list[Tensor], coefficients: list[float], foreach: bool) -> None:
    """theta <- theta + c (theta - theta_prev), in place (the IGT extrapolation; HARPG's q-point with c = q - 1)."""
    if not foreach:
        for param, prev, c in zip(params, previous, coefficients):
            param.add_(torch.sub(param, prev).mul_(c))
        return
    for _, (p, prev, c) in group_tensors([params, previous, coefficients]).items():
        difference = torch._foreach_sub(p, prev)
        torch._foreach_mul_(difference, c)
        torch._foreach_add_(p, difference)


def mix_directions(
    directions: list[Tensor],
    gradients: list[Tensor],
    corrections: list[Tensor] | None,
    etas: list[float],
    foreach: bool,
) -> None:
    """d <- (1 - eta) (d + v) + eta g (HARPG, Algorithm 3 line 7), or (1 - eta) d + eta g without v (IGT)."""
    keeps = [1.0 - eta for eta in etas]
    if not foreach:
        for index, (d, g) in enumerate(zip(directions, gradients)):
            if corrections is not None:
                d.add_(corrections[index])
            d.mul_(keeps[index]).add_(torch.mul(g, etas[index]))
        return
    lists: list[Sequence[Any]] = [directions, gradients, keeps, etas]
    if corrections is not None:
        lists.append(corrections)
    for _, grouped in group_tensors(lists).items():
        d, g, keep, eta = grouped[:4]
        if corrections is not None:
            torch._foreach_add_(d, grouped[4])
        torch._foreach_mul_(d, keep)
        torch._foreach_add_(d, torch._foreach_mul(g, eta))


def global_norm(tensors: list[Tensor], foreach: bool) -> Tensor:
    """||concat(tensors)||_2 as a 0-d tensor in the first tensor's dtype and device (no host sync)."""
    first = tensors[0]
    if foreach:
        return kernels.global_norm(tensors).to(dtype=first.dtype)
    norms = [torch.linalg.vector_norm(t) for t in tensors]
    return torch.linalg.vector_norm(torch.stack([n.to(device=first.device, dtype=first.dtype) for n in norms]))


def apply_update(
    params: list[Tensor],
    directions: list[Tensor],
    previous: list[Tensor],
    step_sizes: list[float],
    norm: Tensor | None,
    eps: float,
    foreach: bool,
) -> None:
    """theta_prev <- theta; theta <- theta - gamma d / max(||d||, eps) (normalised) or theta - gamma d."""
    inverse = None if norm is None else norm.clamp_min(eps).reciprocal()
    if not foreach:
        for param, d, prev, gamma in zip(params, directions, previous, step_sizes):
            prev.copy_(param)
            update = d if inverse is None else d.mul(inverse.to(d.device))
            param.sub_(update.mul(gamma))
        return
    for (device, _), (p, d, prev, gamma) in group_tensors([params, directions, previous, step_sizes]).items():
        foreach_copy_(prev, p)
        updates = d if inverse is None else torch._foreach_mul(d, inverse.to(device))
        torch._foreach_sub_(p, torch._foreach_mul(updates, gamma))
