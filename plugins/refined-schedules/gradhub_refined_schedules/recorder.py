"""Gradient-norm measurement for schedule refinement: the ``grad_norm`` probe and ``GradNormRecorder``.

Paper: "When, Why and How Much? Adaptive Learning Rate Scheduling by Refinement",
Aaron Defazio, Ashok Cutkosky, Harsh Mehta, Konstantin Mishchenko, 2023, arXiv:2310.07831.
Official code: https://github.com/facebookresearch/adaptive_scheduling (it ships recorded
norm sequences, ``norm_sequences/`` (L2) and ``norm_sequences_l1/`` (L1, Adam runs), not a
recorder; the norms were logged by the training code).

The refinement needs ``G_t = ||g_t||``, the global norm over all parameters of the
stochastic gradient at step ``t`` (L2 for SGD; L1 for the Adam variant), measured after
``backward()`` and BEFORE gradient clipping. With mixed precision, unscale first
(``scaler.unscale_(optimizer)``): a scaled gradient's norm is multiplied by the loss scale,
which changes between steps. The norm is computed as ``torch.nn.utils.clip_grad_norm_``
does: ``torch._foreach_norm`` per (device, dtype) group, then one ``stack`` and norm, in
float32 or wider; nothing synchronises with the device. ``GradNormRecorder`` keeps the
values in an on-device buffer and copies them to the host once every ``sync_every`` steps.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from gradhub.errors import HyperparameterError, UnsupportedInputError
from gradhub.hyperparameters import validated
from gradhub.kernels import global_norm
from gradhub_refined_schedules import GRAD_NORM, GRAD_NORM_RECORDER

_ORDER = {"l2": 2.0, "l1_adam": 1.0}


def _gradients(method: str, parameters: Iterable[torch.Tensor]) -> list[torch.Tensor]:
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        raise UnsupportedInputError(method, "gradients", "no parameter has a .grad", "call it after backward()")
    for grad in grads:
        if grad.is_sparse:
            raise UnsupportedInputError(method, "gradient", "a sparse .grad", "dense gradients only")
    return grads


def global_grad_norm(grads: list[torch.Tensor], kind: str) -> torch.Tensor:
    """The global L2 (``kind="l2"``) or L1 (``"l1_adam"``) norm of ``grads``, a 0-d tensor, no host sync.

    :func:`gradhub.kernels.global_norm`: one ``torch._foreach_norm`` per (device, dtype)
    group, then one stack (on the first gradient's device, in float32 or wider) and one norm.
    """
    return global_norm(grads, _ORDER[kind])


@validated(GRAD_NORM)
def grad_norm(model: nn.Module, *, generator: torch.Generator | None = None, kind: str) -> torch.Tensor:
    """The global gradient norm of ``model``'s current ``.grad``s (the probe; reads, never writes).

    ``kind="l2"``: ``||g||_2`` over all parameters (``clip_grad_norm_``'s total norm);
    ``kind="l1_adam"``: ``||g||_1`` (the Adam variant's norm). ``generator`` is unused (the
    probe is deterministic). Returns a 0-d tensor on the first gradient's device.
    """
    if not isinstance(model, nn.Module):
        raise UnsupportedInputError(GRAD_NORM.name, "model", type(model).__name__, "pass an nn.Module")
    return global_grad_norm(_gradients(GRAD_NORM.name, model.parameters()), kind)


@validated(GRAD_NORM_RECORDER)
class GradNormRecorder:
    """Logs the global gradient norm of every step, for :func:`refine_schedule` after the run.

    ``GradNormRecorder(optimizer_or_params_or_model, kind=..., sync_every=...)`` (the probe
    ``grad_norm_recorder``, a recorder: what ``gradhub.get`` returns for it, built on the model); call
    :meth:`record` after ``backward()`` (after ``scaler.unscale_(optimizer)`` under AMP) and
    before clipping and ``optimizer.step()``. It returns the norm as a 0-d device tensor,
    which clipping can reuse (``torch.nn.utils.clip_grads_with_norm_`` in torch >= 2.6).
    :attr:`norms` is the float64 NumPy array of all recorded norms (one host sync).

    Values stay on the device in a buffer of ``sync_every`` entries, copied to the host
    (one sync) when it fills. ``state_dict``/``load_state_dict`` save and restore the
    recorded norms, so a resumed run keeps its history.
    """

    def __init__(
        self,
        optimizer_or_params: torch.optim.Optimizer | nn.Module | Iterable[torch.Tensor],
        kind: str,
        sync_every: int,
    ) -> None:
        if isinstance(optimizer_or_params, nn.Module):
            optimizer_or_params = optimizer_or_params.parameters()
        self.kind = kind
        self.sync_every = sync_every
        if isinstance(optimizer_or_params, torch.optim.Optimizer):
            self._optimizer: torch.optim.Optimizer | None = optimizer_or_params
            self._parameters: list[torch.Tensor] = []
        else:
            self._optimizer = None
            self._parameters = list(optimizer_or_params)
            if not self._parameters or not all(isinstance(p, torch.Tensor) for p in self._parameters):
                raise UnsupportedInputError(
                    GRAD_NORM_RECORDER.name,
                    "optimizer_or_params",
                    type(optimizer_or_params).__name__,
                    "pass an optimizer or a non-empty iterable of parameters",
                )
        self._buffer: torch.Tensor | None = None
        self._filled = 0
        self._host: list[np.ndarray] = []

    def _current_parameters(self) -> list[torch.Tensor]:
        if self._optimizer is not None:  # read at each step: param groups may be added during training
            return [p for group in self._optimizer.param_groups for p in group["params"]]
        return self._parameters

    def record(self) -> torch.Tensor:
        """Measure and store this step's gradient norm; returns it (0-d tensor, no host sync)."""
        norm = global_grad_norm(_gradients(GRAD_NORM_RECORDER.name, self._current_parameters()), self.kind)
        if self._buffer is None or self._buffer.device != norm.device or self._buffer.dtype != norm.dtype:
            self._flush()
            self._buffer = torch.empty(self.sync_every, device=norm.device, dtype=norm.dtype)
        self._buffer[self._filled] = norm
        self._filled += 1
        if self._filled == self.sync_every:
            self._flush()
        return norm

    def _flush(self) -> None:
        if self._buffer is not None and self._filled:
            self._host.append(self._buffer[: self._filled].to("cpu", torch.float64).numpy().copy())
        self._filled = 0

    def __len__(self) -> int:
        return sum(chunk.size for chunk in self._host) + self._filled

    @property
    def norms(self) -> np.ndarray:
        """Every recorded norm, in order, as a float64 array (copies pending values to the host)."""
        self._flush()
        return np.concatenate(self._host) if self._host else np.zeros(0)

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "norms": torch.from_numpy(self.norms)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("kind") != self.kind:
            raise HyperparameterError(GRAD_NORM_RECORDER.name, "kind", state.get("kind"), f"{self.kind!r}, as recorded")
        self._buffer, self._filled = None, 0
        self._host = [torch.as_tensor(state["norms"], dtype=torch.float64, device="cpu").numpy().copy()]


# The public names, from the objects themselves: each method's name is written once, in its spec.
__all__ = [
    exported.__name__
    for exported in (
        GradNormRecorder,
        global_grad_norm,
        grad_norm,
    )
]
