"""The M-FAC optimizer: SGD preconditioned by a sliding-window inverse empirical Fisher.

Paper: Elias Frantar, Eldar Kurtic, Dan Alistarh, "M-FAC: Efficient Matrix-Free
Approximations of Second-Order Information", NeurIPS 2021, arXiv 2107.03356 (§4, the
dynamic algorithm; §5.2 optimization). Official code: https://github.com/IST-DASLab/M-FAC
(``optim.py``: ``MFAC``, ``HInvFastUpMulti``).

One step (official ``MFAC.step``)::

    g   = grad + weight_decay * p                     (coupled L2 decay, all parameters)
    G[oldest] = g                                      (ring buffer of ngrads rows, zeros at start)
    u   = F^{-1} g,  F = damp*I + G^T G / ngrads      (Woodbury, see gradhub_mfac.ihvp)
    v   = momentum * v + (1 - momentum) * u;  u = v   (only if momentum > 0)
    p  -= lr * u

Per step: two products over the window (``G g`` and ``G^T z``, O(d m)) and a Cholesky
factorisation of one m x m float64 matrix (O(m^3)), with no loop over the m gradients.

What differs from the official code:

* State lives where gradhub needs it: each parameter's slice of the window
  (``gradient_window``, ngrads x numel) and ``momentum_buffer`` in ``self.state[p]``; the
  m x m Gram matrix ``G G^T`` (float64), the ring position ``step`` and ``skipped_steps`` in
  ``self.state["mfac group <i>"]``, so ``state_dict`` round-trips exactly (the official
  optimizer keeps all of it outside ``state`` and cannot resume). ``state_dict()`` saves a
  group's entries in the state of the group's first parameter (``group_gram``,
  ``group_step``, ``group_skipped_steps``), so every key is a parameter index and
  ``torch.distributed.checkpoint`` (``get_optimizer_state_dict`` / ``set_optimizer_state_dict``)
  can name it; ``load_state_dict`` also reads the 0.2.0 layout (``"mfac group <i>"`` keys).
* A step whose gradients are not all finite is skipped whole (nothing changes; a warning
  once per optimizer; ``skipped_steps`` counts it): one NaN would otherwise enter the window
  and, through ``G G^T``, every later update. The check is one host synchronisation per step.
* ``momentum`` may change between steps; a buffer is made (zeros) the first time a step
  with ``momentum > 0`` needs it and kept while momentum is off.
* Parameters must be float32 or float64; bfloat16 and float16 are refused at construction.
* Each param group has its own window (a block-diagonal Fisher across groups), so groups
  behave like separate optimizers; with one group (the usual case) this is the official
  algorithm. ``ngrads``, ``damp``, ``momentum``, ``weight_decay`` may differ per group.
* ``moddev``/``optdev``/``gpus`` (placing the window on other devices, sharding it across
  GPUs) are not offered: state lives on each parameter's device.
* A parameter whose ``.grad`` is None is not updated; its slice of the newest window row
  is zero (as if its gradient were zero), so ``G G^T`` stays consistent.
* ``sparse=True`` masks gradients with the weights that are nonzero at construction
  (state key ``mask``); the update is then zero off the mask, as in the official code, but
  the window keeps all coordinates (the official code compresses them: less memory).
* ``step(closure)`` evaluates the closure first (the official code raises).
* Under FSDP2 (DTensor shards) each process keeps the window rows of its shard (the window is a
  DTensor ``ngrads x param.shape`` sharded like the parameter); its part of ``G g`` is all-reduced
  before the solve (one collective per step), so ``G G^T`` and the coefficients are the same on
  every process, and each process updates its shard. The non-finite check is summed over
  processes, so every process skips the same steps.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from gradhub.errors import UnsupportedInputError
from gradhub.kernels import all_reduce_over, group_tensors, is_plain, local_shard, shard_groups
from gradhub.kinds.optimizer import Optimizer
from gradhub_mfac import MFAC as MFAC_SPEC
from gradhub_mfac import MFACHyperparameters
from gradhub_mfac.ihvp import woodbury_solve

__all__ = ["MFAC", "mfac_multi_tensor", "mfac_single_tensor"]


def _solve(gram: Tensor, products: Tensor, slot: int, ngrads: int, damp: float) -> Tensor:
    gram[slot, :] = products
    gram[:, slot] = products
    return woodbury_solve(gram, products, ngrads, damp)


SHARDABLE = "Shard(d) or Replicate on every mesh dimension (FSDP2's default is Shard(0))"


def _shard_groups(tensor: Tensor) -> tuple[Any, ...]:
    """The process groups over which a sum over a DTensor's entries is all-reduced (none for a plain tensor)."""
    return shard_groups(MFAC_SPEC.name, tensor, allowed=SHARDABLE)


def _new_window(param: Tensor, ngrads: int) -> Tensor:
    """A zero window for ``param``: ``ngrads x numel``, or for a DTensor shard ``ngrads x param.shape`` sharded like it.

    The DTensor's placements are the parameter's, shifted by the window's leading dimension, so each
    process holds the window rows of its own entries and ``torch.distributed.checkpoint`` sees a sharded
    tensor (a plain one would be taken as replicated).
    """
    if is_plain(param):
        return torch.zeros(ngrads, param.numel(), dtype=param.dtype, device=param.device)
    from torch.distributed.tensor import DTensor, Shard

    _shard_groups(param)  # refuses placements other than Shard and Replicate
    placements = [
        Shard(placement.dim % param.dim() + 1) if isinstance(placement, Shard) else placement
        for placement in param.placements
    ]
    local = param.to_local()
    shape = (ngrads, *param.shape)
    strides = [1] * len(shape)
    for dim in range(len(shape) - 2, -1, -1):
        strides[dim] = strides[dim + 1] * shape[dim + 1]
    zeros = torch.zeros(ngrads, *local.shape, dtype=param.dtype, device=local.device)
    return DTensor.from_local(
        zeros, param.device_mesh, placements, run_check=False, shape=torch.Size(shape), stride=tuple(strides)
    )


def _window_rows(window: Tensor, param: Tensor) -> Tensor:
    """This process's part of ``param``'s window as ``ngrads x`` (its entries of ``param``): a view, written through."""
    local = local_shard(window)
    return local.view(local.shape[0], local_shard(param).numel())


def _sum_products(products: Tensor, sharded: dict[tuple[Any, ...], Tensor]) -> None:
    """Add to ``products`` the window products of DTensor shards, each set all-reduced over its process groups."""
    for groups, partial in sharded.items():
        all_reduce_over(partial, groups)
        products += partial


def mfac_single_tensor(
    params: list[Tensor],
    grads: list[Tensor],
    windows: list[Tensor],
    momentum_buffers: list[Tensor | None],
    masks: list[Tensor | None],
    gram: Tensor,
    slot: int,
    options: MFACHyperparameters,
) -> None:
    """One M-FAC step, tensor by tensor; ``gram`` (float64, ngrads x ngrads) is updated in place.

    ``momentum_buffers`` holds one tensor per parameter when ``options.momentum > 0`` (read only then).
    """
    lr, momentum, weight_decay, damp = options.lr, options.momentum, options.weight_decay, options.damp
    directions, local_params, local_windows = [], [], []
    products = torch.zeros(options.ngrads, dtype=torch.float64, device=gram.device)
    sharded: dict[tuple[Any, ...], Tensor] = {}
    for param, grad, window, mask in zip(params, grads, windows, masks):
        groups = _shard_groups(param)
        window = _window_rows(window, param)
        param, grad = local_shard(param), local_shard(grad)
        direction = grad + weight_decay * param if weight_decay != 0 else grad.clone()
        if mask is not None:
            direction = direction * local_shard(mask)
        window[slot] = direction.reshape(-1)
        product = (window @ direction.reshape(-1)).to(gram.device, torch.float64)
        if groups:
            sharded[groups] = sharded[groups] + product if groups in sharded else product
        else:
            products += product
        directions.append(direction)
        local_params.append(param)
        local_windows.append(window)
    _sum_products(products, sharded)
    coefficients = _solve(gram, products, slot, options.ngrads, damp)
    for param, direction, window, buffer in zip(local_params, directions, local_windows, momentum_buffers):
        update = (direction - (coefficients.to(window) @ window).view_as(param)) / damp
        if momentum > 0:
            buffer = local_shard(buffer)
            buffer.mul_(momentum).add_(update, alpha=1 - momentum)
            update = buffer
        param.add_(update, alpha=-lr)


def mfac_multi_tensor(
    params: list[Tensor],
    grads: list[Tensor],
    windows: list[Tensor],
    momentum_buffers: list[Tensor | None],
    masks: list[Tensor | None],
    gram: Tensor,
    slot: int,
    options: MFACHyperparameters,
) -> None:
    """One M-FAC step with the elementwise work done by ``torch._foreach_*`` per device and dtype.

    The window products stay one matrix-vector product per tensor (torch has no foreach
    matmul); the same arithmetic as :func:`mfac_single_tensor`, so the two agree exactly.
    ``momentum_buffers`` holds one tensor per parameter when ``options.momentum > 0`` (read only then).
    """
    momentum, weight_decay, damp = options.momentum, options.weight_decay, options.damp
    shard_groups = [_shard_groups(param) for param in params]
    windows = [_window_rows(window, param) for window, param in zip(windows, params)]
    params, grads = [local_shard(param) for param in params], [local_shard(grad) for grad in grads]
    momentum_buffers = [None if buffer is None else local_shard(buffer) for buffer in momentum_buffers]
    masks = [None if mask is None else local_shard(mask) for mask in masks]
    grouped = group_tensors([params, grads, windows, momentum_buffers, masks], extra_keys=shard_groups)
    products = torch.zeros(options.ngrads, dtype=torch.float64, device=gram.device)
    sharded: dict[tuple[Any, ...], Tensor] = {}
    per_group = []
    for (*_, groups), (group_params, group_grads, group_windows, group_buffers, group_masks) in grouped.items():
        if weight_decay != 0:
            directions = torch._foreach_add(group_grads, group_params, alpha=weight_decay)
        else:
            directions = [grad.clone() for grad in group_grads]
        masked = [index for index, mask in enumerate(group_masks) if mask is not None]
        if masked:
            torch._foreach_mul_([directions[i] for i in masked], [group_masks[i] for i in masked])
        for window, direction in zip(group_windows, directions):
            window[slot] = direction.reshape(-1)
            product = (window @ direction.reshape(-1)).to(gram.device, torch.float64)
            if groups:
                sharded[groups] = sharded[groups] + product if groups in sharded else product
            else:
                products += product
        per_group.append((group_params, group_windows, group_buffers, directions))
    _sum_products(products, sharded)
    coefficients = _solve(gram, products, slot, options.ngrads, damp)
    for group_params, group_windows, group_buffers, directions in per_group:
        corrections = [
            (coefficients.to(window) @ window).view_as(param) for param, window in zip(group_params, group_windows)
        ]
        updates = torch._foreach_sub(directions, corrections)
        torch._foreach_div_(updates, damp)
        if momentum > 0:
            buffers = list(group_buffers)
            torch._foreach_mul_(buffers, momentum)
            torch._foreach_add_(buffers, updates, alpha=1 - momentum)
            updates = buffers
        torch._foreach_add_(group_params, updates, alpha=-options.lr)


class MFAC(Optimizer):
    """M-FAC (Frantar, Kurtic, Alistarh, NeurIPS 2021, §4 and §5.2): inverse-Fisher preconditioned SGD.

    The official ``optim.MFAC`` signature and defaults (without ``moddev``/``optdev``/``gpus``),
    written once in :class:`~gradhub_mfac.MFACHyperparameters`. Each param group has its own
    gradient window; ``weight_decay`` is coupled L2 decay added to the gradient before
    preconditioning; ``momentum`` has dampening ``1 - momentum`` (it may be switched on or off
    between steps: the buffers are made, as zeros, the first time a step uses them);
    ``sparse=True`` masks updates with the weights that are nonzero at construction.

    Parameters must be float32 or float64 (the declared dtypes): a bfloat16 or float16 parameter
    raises :class:`gradhub.UnsupportedInputError` at construction (in those formats the update
    ``lr * (g - G^T c) / damp`` rounds away against the weights and nothing would train).

    A step whose gradients are not all finite (NaN or inf in any of them) is skipped: parameters,
    windows, momentum buffers and the Gram matrices stay as they were, a ``RuntimeWarning`` (once per
    optimizer) names the step and the parameter, and the ``skipped_steps`` counter of each group
    with gradients (``optimizer.state["mfac group <i>"]["skipped_steps"]``, saved in ``state_dict``)
    goes up by one. The check costs one host synchronisation per step.
    """

    spec = MFAC_SPEC

    def __init__(self, params: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(params, *args, **kwargs)
        for group in self.param_groups:
            if self.options(group).sparse:
                for param in group["params"]:
                    self.state[param]["mask"] = (param.detach() != 0).to(param.dtype)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Refuse parameters of an undeclared dtype (bfloat16, float16) by name, then add the group."""
        if isinstance(param_group, dict) and "params" in param_group:
            params = param_group["params"]
            params = [params] if isinstance(params, Tensor) else list(params)
            for index, param in enumerate(params):
                if isinstance(param, Tensor) and param.is_floating_point() and param.dtype not in DTYPES:
                    raise UnsupportedInputError(
                        self.method,
                        f"parameter {index} of param group {len(self.param_groups)}",
                        f"dtype {param.dtype}",
                        f"{self.method} supports parameters of dtype {', '.join(MFAC_SPEC.dtypes)}: in "
                        f"{str(param.dtype).removeprefix('torch.')} the preconditioned update rounds away against "
                        "the weights; keep float32 parameters (bfloat16 autocast for the forward pass is fine)",
                    )
            param_group = {**param_group, "params": params}
        super().add_param_group(param_group)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = self.evaluate_closure(closure)
        with_gradients = self.parameters_with_gradients()
        options = [self.options(group) for group in self.param_groups]  # validated before anything changes
        if not _all_finite([param.grad for params in with_gradients for param in params]):
            self._skip_step(with_gradients)
            return loss
        for index, (group, params, group_options) in enumerate(zip(self.param_groups, with_gradients, options)):
            if not params:
                continue
            ngrads = group_options.ngrads
            group_state = self._group_state(index)
            if "gram" not in group_state:
                group_state["gram"] = torch.zeros(ngrads, ngrads, dtype=torch.float64, device=params[0].device)
            slot = group_state["step"] % ngrads
            for param in group["params"]:
                if param.grad is None and "gradient_window" in self.state.get(param, {}):
                    local_shard(self.state[param]["gradient_window"])[slot] = 0
            use_momentum = group_options.momentum > 0
            windows, buffers, masks = [], [], []
            for param in params:
                state = self.state[param]
                if "gradient_window" not in state:
                    state["gradient_window"] = _new_window(param, ngrads)
                if use_momentum and "momentum_buffer" not in state:  # momentum on from the start, or switched on
                    state["momentum_buffer"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                windows.append(state["gradient_window"])
                buffers.append(state["momentum_buffer"] if use_momentum else None)
                masks.append(state.get("mask"))
            step = mfac_multi_tensor if self.use_foreach(group, params) else mfac_single_tensor
            step(
                params,
                [param.grad for param in params],
                windows,
                buffers,
                masks,
                group_state["gram"],
                slot,
                group_options,
            )
            group_state["step"] += 1
        return loss

    def _group_state(self, index: int) -> dict[str, Any]:
        group_state = self.state[f"{GROUP_KEY} {index}"]
        group_state.setdefault("step", 0)
        group_state.setdefault("skipped_steps", 0)
        return group_state

    def _skip_step(self, with_gradients: list[list[Tensor]]) -> None:
        """Count a step with a non-finite gradient as skipped in every group that has gradients; warn once."""
        for index, params in enumerate(with_gradients):
            if params:
                self._group_state(index)["skipped_steps"] += 1
        if self.__dict__.get("_warned_nonfinite"):
            return
        self.__dict__["_warned_nonfinite"] = True
        located = [
            (index, position, param.grad)
            for index, group in enumerate(self.param_groups)
            for position, param in enumerate(group["params"])
            if param.grad is not None
        ]
        flags = _finite_flags([grad for *_, grad in located]).tolist()  # the culprit (a sync on this rare path)
        for (index, position, _), finite in zip(located, flags):
            if not finite:
                group_state = self._group_state(index)
                warnings.warn(
                    f"{self.method}: step {group_state['step'] + group_state['skipped_steps']} skipped: the "
                    f"gradient of parameter {position} of param group {index} is not finite (NaN or inf); "
                    "parameters, gradient windows and momentum are unchanged; skipped steps are counted in "
                    f"optimizer.state['{GROUP_KEY} <i>']['skipped_steps'] (warned once per optimizer)",
                    RuntimeWarning,
                    stacklevel=3,
                )
                return

    def state_dict(self) -> dict[str, Any]:
        """torch's layout, every key a parameter index (what ``torch.distributed.checkpoint`` maps to names).

        A group's window state (``gram``, ``step``, ``skipped_steps``) is saved in the entry of the
        group's first parameter, as ``group_gram``, ``group_step``, ``group_skipped_steps``.
        """
        saved = super().state_dict()
        state = saved["state"]
        for index, group in enumerate(saved["param_groups"]):
            group_state = state.pop(f"{GROUP_KEY} {index}", None)
            if group_state is None or not group["params"]:
                continue
            first = group["params"][0]
            state[first] = {
                **state.get(first, {}),
                **{f"group_{name}": value for name, value in group_state.items()},
            }
        return saved

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state saved by :meth:`state_dict`, or by gradhub-mfac 0.2.0 (``"mfac group <i>"`` keys).

        Checked against this optimizer first (param group count and sizes, hyperparameters, window
        and Gram shapes, parameter-shaped momentum and mask); a state that fails raises
        :class:`gradhub.UnsupportedInputError` and leaves the optimizer as it was.
        """
        self.check_state_dict(state_dict)  # structure and hyperparameters, as every gradhub optimizer
        saved_groups = state_dict["param_groups"]
        state = dict(state_dict["state"])
        group_states: dict[int, dict[str, Any]] = {}
        for index, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            ids = list(saved.get("params", ()))
            ngrads = self.saved_hyperparameters(saved)["ngrads"]
            legacy = state.pop(f"{GROUP_KEY} {index}", None)  # gradhub-mfac 0.2.0
            if legacy is not None:
                group_states[index] = dict(legacy)
            elif ids and isinstance(state.get(ids[0]), dict) and any(k.startswith("group_") for k in state[ids[0]]):
                entry = dict(state[ids[0]])
                group_states[index] = {
                    key.removeprefix("group_"): entry.pop(key) for key in list(entry) if key.startswith("group_")
                }
                if entry:
                    state[ids[0]] = entry
                else:
                    del state[ids[0]]
            for key, param in zip(ids, group["params"]):
                _check_param_state(self.method, key, state.get(key), param, ngrads)
            if index in group_states:
                _check_group_state(self.method, index, group_states[index], ngrads)
        torch.optim.Optimizer.load_state_dict(self, {**state_dict, "state": state})
        for index, group_state in group_states.items():
            device = self.param_groups[index]["params"][0].device
            loaded = {"step": int(group_state["step"]), "skipped_steps": int(group_state.get("skipped_steps", 0))}
            if "gram" in group_state:
                loaded["gram"] = group_state["gram"].to(device=device, dtype=torch.float64)
            self.state[f"{GROUP_KEY} {index}"] = loaded


GROUP_KEY = "mfac group"
DTYPES = tuple(getattr(torch, name) for name in MFAC_SPEC.dtypes)
PARAM_STATE = {"gradient_window", "momentum_buffer", "mask"}
GROUP_STATE = {"gram", "step", "skipped_steps"}


def _all_finite(tensors: list[Tensor]) -> bool:
    """Whether every tensor is finite, with one host synchronisation (a stack of per-tensor flags)."""
    if not tensors:
        return True
    return bool(_finite_flags(tensors).all())


def _finite_flags(tensors: list[Tensor]) -> Tensor:
    """Per tensor, whether all its entries are finite, as one boolean tensor (no host synchronisation).

    For DTensor shards the flags are those of the whole tensors (the shards' failures summed over
    the processes), so every process takes, or skips, the same step: one process skipping alone
    would leave the others waiting in the next collective.
    """
    device = tensors[0].device
    finite = torch.stack([torch.isfinite(local_shard(tensor)).all().to(device) for tensor in tensors])
    sharded: dict[tuple[Any, ...], list[int]] = {}
    for index, tensor in enumerate(tensors):
        groups = _shard_groups(tensor)
        if groups:
            sharded.setdefault(groups, []).append(index)
    for groups, indices in sharded.items():
        failures = (~finite[indices]).to(torch.int64)
        all_reduce_over(failures, groups)
        finite[indices] = failures == 0
    return finite


def _check_param_state(method: str, key: Any, state: Any, param: Tensor, ngrads: int) -> None:
    if state is None:
        return
    if not isinstance(state, dict) or not set(state) <= PARAM_STATE:
        shown = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise UnsupportedInputError(
            method, f"state of parameter {key}", f"keys {shown}", f"{method} keeps {sorted(PARAM_STATE)}"
        )
    window = (ngrads, param.numel()) if is_plain(param) else (ngrads, *param.shape)  # a DTensor: see _new_window
    expected = {"gradient_window": window, "momentum_buffer": param.shape, "mask": param.shape}
    for name, value in state.items():
        if not isinstance(value, Tensor) or value.shape != expected[name]:
            shown = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise UnsupportedInputError(
                method, f"state {name!r} of parameter {key}", f"shape {shown}", f"shape {tuple(expected[name])}"
            )


def _check_group_state(method: str, index: int, state: dict[str, Any], ngrads: int) -> None:
    gram = state.get("gram")  # absent when every step so far was skipped
    shape_ok = gram is None or (isinstance(gram, Tensor) and gram.shape == (ngrads, ngrads))
    if not set(state) <= GROUP_STATE or not shape_ok:
        shown = f"shape {tuple(gram.shape)}" if isinstance(gram, Tensor) else f"keys {sorted(state)}"
        raise UnsupportedInputError(
            method,
            f"window state of param group {index}",
            shown,
            f"gram ({ngrads} x {ngrads}), step and skipped_steps",
        )
