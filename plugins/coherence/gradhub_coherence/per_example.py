"""Per-example gradients with ``torch.func`` (vmap over grad), for the coherence probe and the optimizers.

Paper: Chatterjee & Zielinski, "On the Generalization Mystery in Deep Learning", 2022,
arXiv 2203.10036, Sec. 3: everything is built on the per-example gradients
``g_i = grad_theta l(f_theta(x_i), y_i)``. No official code exists.

``per_example_grads`` returns ``{name: (m, *param.shape)}``; ``attach_per_example_grads``
stores them as ``param.grad_sample`` (the Opacus convention that
:class:`~gradhub_coherence.robust_sgd.WinsorizedSGD` and ``M3SGD`` read) and is what a
training loop calls in place of ``loss.backward()``.

Per-example gradients are only defined when examples do not interact in the forward
pass: a BatchNorm layer in training mode is rejected (put it in eval mode or use
GroupNorm). Dropout draws an independent mask per example (``vmap(randomness="different")``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, grad_and_value, vmap

from gradhub.errors import UnsupportedInputError
from gradhub.hyperparameters import validated
from gradhub.kinds.inputs import require_same_device, require_tensor
from gradhub_coherence import PER_EXAMPLE_GRADS

LossFunction = Callable[[Tensor, Tensor], Tensor]


def check_inputs(method: str, model: nn.Module, loss_fn: object, inputs: object, targets: object) -> None:
    """Raise :class:`UnsupportedInputError` for inputs the per-example computation cannot take."""
    if not isinstance(model, nn.Module):
        raise UnsupportedInputError(method, "model", type(model).__name__, "a torch.nn.Module")
    if not callable(loss_fn):
        raise UnsupportedInputError(method, "loss_fn", type(loss_fn).__name__, "a callable loss_fn(outputs, targets)")
    examples = "whose dim 0 indexes the examples"
    inputs = require_tensor(method, "inputs", inputs, dtype="any", min_dim=1, what=examples)
    targets = require_tensor(method, "targets", targets, dtype="any", min_dim=1, what=examples)
    if inputs.shape[0] == 0:
        raise UnsupportedInputError(method, "inputs shape", tuple(inputs.shape), "at least one example (dim 0 >= 1)")
    if inputs.shape[0] != targets.shape[0]:
        raise UnsupportedInputError(
            method, "targets", f"{targets.shape[0]} examples", f"as many as inputs ({inputs.shape[0]})"
        )
    parameters = [p for p in model.parameters() if p.requires_grad]
    if not parameters:
        raise UnsupportedInputError(method, "model", "no parameter requires grad", "at least one trainable parameter")
    require_same_device(method, inputs=inputs, targets=targets, model=parameters[0])
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.training:
            raise UnsupportedInputError(
                method,
                f"module {name or type(module).__name__}",
                "BatchNorm in training mode",
                "examples that do not interact: call .eval() on BatchNorm layers or use GroupNorm",
            )


def _functional_loss(
    model: nn.Module, loss_fn: LossFunction, names: list[str]
) -> Callable[[dict[str, Tensor], Tensor, Tensor], Tensor]:
    buffers = {name: buffer.detach() for name, buffer in model.named_buffers()}

    def example_loss(params: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        # One example as a batch of one: l(f_theta(x_i), y_i) with the loss's own reduction.
        outputs = functional_call(model, ({**buffers, **params},), (x.unsqueeze(0),), strict=False)
        return loss_fn(outputs, y.unsqueeze(0))

    return example_loss


def trainable_parameters(model: nn.Module, names: Iterable[str] | None = None) -> dict[str, Tensor]:
    parameters = {name: p for name, p in model.named_parameters() if p.requires_grad}
    if names is None:
        return parameters
    wanted = list(names)
    unknown = [name for name in wanted if name not in parameters]
    if unknown:
        raise UnsupportedInputError(
            PER_EXAMPLE_GRADS.name, "parameters", unknown, f"names of trainable parameters: {sorted(parameters)}"
        )
    return {name: parameters[name] for name in wanted}


@validated(PER_EXAMPLE_GRADS)
def per_example_grads(
    model: nn.Module,
    loss_fn: LossFunction,
    inputs: Tensor,
    targets: Tensor,
    *,
    chunk_size: int | None,
    parameters: Iterable[str] | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """Per-example gradients ``g_i = grad l(f(x_i), y_i)`` (Sec. 3), one ``(m, *shape)`` tensor per parameter.

    Args:
        model: the network; its parameters, buffers and modes are left as they are.
        loss_fn: ``loss_fn(outputs, targets) -> scalar`` on a batch (called on batches of one).
        inputs, targets: the examples, indexed by dim 0.
        chunk_size: examples per vmap chunk (``None``: all at once; the default, from the model).
        parameters: names of the parameters to differentiate (default: all trainable ones).
        generator: unused (no randomness unless the model has dropout, which draws from the
            global RNG as the model does); accepted for the probe interface.
    """
    check_inputs(PER_EXAMPLE_GRADS.name, model, loss_fn, inputs, targets)
    params = {name: p.detach() for name, p in trainable_parameters(model, parameters).items()}
    example_loss = _functional_loss(model, loss_fn, list(params))
    return vmap(grad(example_loss), in_dims=(None, 0, 0), chunk_size=chunk_size, randomness="different")(
        params, inputs, targets
    )


def attach_per_example_grads(
    model: nn.Module,
    loss_fn: LossFunction,
    inputs: Tensor,
    targets: Tensor,
    *,
    chunk_size: int | None = None,
) -> Tensor:
    """Set ``p.grad_sample`` (m, *p.shape) and ``p.grad`` (their mean) on every trainable parameter.

    Use it in place of ``loss.backward()`` before ``WinsorizedSGD.step()`` / ``M3SGD.step()``;
    returns the mean loss over the batch (detached). ``.grad`` is overwritten, not
    accumulated, so it is the batch-mean gradient whatever was there before.
    """
    check_inputs(attach_per_example_grads.__name__, model, loss_fn, inputs, targets)
    live = trainable_parameters(model)
    params = {name: p.detach() for name, p in live.items()}
    example_loss = _functional_loss(model, loss_fn, list(params))
    grads, losses = vmap(
        grad_and_value(example_loss), in_dims=(None, 0, 0), chunk_size=chunk_size, randomness="different"
    )(params, inputs, targets)
    for name, param in live.items():
        param.grad_sample = grads[name]
        param.grad = grads[name].mean(0)
    return losses.mean()


# The public names, from the objects themselves: each method's name is written once, in its spec.
__all__ = [
    exported.__name__
    for exported in (
        attach_per_example_grads,
        per_example_grads,
    )
]
