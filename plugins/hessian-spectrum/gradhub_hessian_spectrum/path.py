"""Training loss along the straight segment between two sets of weights (the "same basin" test).

Paper: "Empirical Analysis of the Hessian of Over-Parametrized Neural Networks", Sagun,
Evci, Guney, Dauphin, Bottou, 2017, arXiv:1706.04454, §4 (small- and large-batch
solutions joined by a line without a loss barrier; the method of Goodfellow, Vinyals &
Saxe, arXiv:1412.6544). No official code.

``theta(alpha) = (1 - alpha) theta_a + alpha theta_b`` for every floating entry of the two
state dicts (parameters and floating buffers such as BatchNorm running statistics, so
that the end points are exactly the two models); integer buffers are taken from
``state_a``. All points are evaluated at once (``torch.func.vmap`` over alpha) with the
model in eval mode; the end points are exact, not approximated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from gradhub.errors import UnsupportedInputError
from gradhub.hyperparameters import validated
from gradhub.kinds import evaluation_mode
from gradhub.kinds.inputs import require_matching_shapes, require_same_device, require_tensor
from gradhub_hessian_spectrum import LOSS_ALONG_PATH
from gradhub_hessian_spectrum.curvature import LossFunction

METHOD = LOSS_ALONG_PATH.name


@dataclass
class PathLosses:
    alphas: Tensor
    """(n_points,) from 0 (state_a) to 1 (state_b)."""
    losses: Tensor
    """(n_points,) full-data loss at each point."""


def _check_state(name: str, state: Mapping[str, Tensor], reference: Mapping[str, Tensor]) -> None:
    if not isinstance(state, Mapping):
        raise UnsupportedInputError(METHOD, name, type(state).__name__, "a state dict (model.state_dict())")
    missing, unexpected = sorted(set(reference) - set(state)), sorted(set(state) - set(reference))
    if missing or unexpected:
        raise UnsupportedInputError(
            METHOD,
            f"{name} keys",
            f"missing {missing[:5]}, unexpected {unexpected[:5]}",
            "both states must have exactly the keys of model.state_dict()",
        )
    for key, value in reference.items():
        given = state[key]
        label = f"{name}[{key!r}]"
        require_tensor(METHOD, label, given, dtype="any")
        require_matching_shapes(METHOD, **{label: given, f"model[{key!r}]": value})
        require_same_device(METHOD, **{label: given, f"model[{key!r}]": value})


@validated(LOSS_ALONG_PATH)
def loss_along_path(
    model: nn.Module,
    state_a: Mapping[str, Tensor],
    state_b: Mapping[str, Tensor],
    loss_fn: LossFunction,
    data: tuple[Tensor, Tensor],
    *,
    generator: torch.Generator | None = None,
    n_points: int,
    batch_size: int | None,
) -> PathLosses:
    """Full-data ``loss_fn(model_theta(X), Y)`` at ``n_points`` evenly spaced alphas in [0, 1].

    ``model`` supplies the architecture only; its own weights are neither used nor changed.
    ``generator`` is accepted for the probe interface; the path is deterministic.
    """
    if not isinstance(model, nn.Module):
        raise UnsupportedInputError(METHOD, "model", type(model).__name__, "model must be a torch.nn.Module")
    reference = model.state_dict()
    _check_state("state_a", state_a, reference)
    _check_state("state_b", state_b, reference)
    if not isinstance(data, tuple | list) or len(data) != 2 or not all(isinstance(t, Tensor) for t in data):
        raise UnsupportedInputError(
            METHOD, "data", type(data).__name__, "data must be a pair of tensors (inputs, targets)"
        )
    inputs, targets = data
    floating = [key for key, value in reference.items() if value.is_floating_point()]
    if not floating:
        raise UnsupportedInputError(
            METHOD, "model", type(model).__name__, "it has no floating parameters to interpolate"
        )
    device, dtype = reference[floating[0]].device, reference[floating[0]].dtype
    require_tensor(METHOD, "inputs", inputs)
    if inputs.dtype != dtype:
        raise UnsupportedInputError(METHOD, "inputs dtype", inputs.dtype, f"inputs must have the model's dtype {dtype}")
    require_same_device(METHOD, model=reference[floating[0]], inputs=inputs, targets=targets)
    if inputs.ndim == 0 or targets.ndim == 0 or inputs.shape[0] != targets.shape[0] or inputs.shape[0] == 0:
        raise UnsupportedInputError(
            METHOD,
            "data shapes",
            f"inputs {tuple(inputs.shape)}, targets {tuple(targets.shape)}",
            "inputs and targets need the same non-zero number of samples along dim 0",
        )
    fixed = {key: state_a[key] for key in reference if key not in floating}
    starts = {key: state_a[key].detach().to(dtype) for key in floating}
    ends = {key: state_b[key].detach().to(dtype) for key in floating}
    count = inputs.shape[0]
    chunks = (
        [(inputs, targets)] if batch_size is None else list(zip(inputs.split(batch_size), targets.split(batch_size)))
    )
    alphas = torch.linspace(0, 1, n_points, dtype=dtype, device=device)

    def loss_at(alpha: Tensor) -> Tensor:
        # (1 - alpha) a + alpha b, not a + alpha (b - a): exact at both ends.
        state = {key: (1 - alpha) * starts[key] + alpha * ends[key] for key in floating} | fixed
        total = torch.zeros((), dtype=dtype, device=device)
        for x, y in chunks:
            total = total + loss_fn(functional_call(model, state, (x,)), y) * (x.shape[0] / count)
        return total

    with evaluation_mode(model), torch.no_grad():
        losses = vmap(loss_at)(alphas)
    return PathLosses(alphas=alphas, losses=losses)


# The public names, from the objects themselves: each method's name is written once, in its spec.
__all__ = [
    exported.__name__
    for exported in (
        PathLosses,
        loss_along_path,
    )
]
