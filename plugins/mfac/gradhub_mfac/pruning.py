"""Optimal Brain Surgeon pruning with M-FAC inverse-Fisher products.

Paper: Elias Frantar, Eldar Kurtic, Dan Alistarh, "M-FAC: Efficient Matrix-Free
Approximations of Second-Order Information", NeurIPS 2021, arXiv 2107.03356 (§5.1,
Eq. 7-8). Official code: https://github.com/IST-DASLab/M-FAC (``main_prun.py``:
``MFACPruner.prune``, ``gradual_prun``; ``prun.py``: ``HInvFastBlock``).

One pruning step over the weights still unmasked (official ``MFACPruner.prune``)::

    rho_k = w_k^2 / (2 [F^{-1}]_kk)                        (OBS saliency, Eq. 7)
    drop  = the n_drop weights with the smallest rho
    t_k   = -w_k / [F^{-1}]_kk for k in drop, 0 elsewhere
    w    <- w + F^{-1} t;  w_drop <- 0                      (joint OBS update, Eq. 8 as in the code)

``F`` is the damped empirical Fisher of ``ngrads`` gradients restricted to the unmasked
weights, blocked into consecutive blocks of ``blocksize`` (block-diagonal). Gradual
pruning reaches a target in ``nrecomps`` steps, recomputing gradients each time, with
geometric interpolation ``1 - s_j = (1 - s_0) * fac^j``, ``fac = ((1-s)/(1-s_0))^{1/nrecomps}``.

Differences from the official code: the official gradient loop stops at ``ngrads - 1``
batches (its ``(i + 1) % ngrads == 0`` test breaks before storing the last one, leaving a
zero row); we store ``ngrads`` gradients. The weights are a list of tensors, not names
in a ``state_dict``. Missing: the paged full (unblocked) variant ``HInvFastSwap`` for
models whose gradients do not fit in memory (``blocksize=None`` builds one block in memory).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import Tensor, nn

from gradhub.errors import HyperparameterError, UnsupportedInputError
from gradhub.hyperparameters import validate_hyperparameters
from gradhub.progress import ProgressCallback, tracker
from gradhub_mfac import PruneHyperparameters
from gradhub_mfac.ihvp import PRUNING, StaticIHVP

__all__ = ["MFACPruner", "magnitude_prune", "obs_prune"]

METHOD = "mfac_prune"


def _drop_count(mask: Tensor, sparsity: float) -> int:
    if not 0 <= sparsity < 1:
        raise HyperparameterError(METHOD, "sparsity", sparsity, "a number in [0, 1)")
    # round, not the official int(): int(5 * (0.6 - 0.2)) is 1 in floating point.
    return max(round(mask.numel() * (sparsity - (~mask).double().mean().item())), 0)


def magnitude_prune(weights: Tensor, mask: Tensor, sparsity: float) -> tuple[Tensor, Tensor]:
    """Drop the smallest-magnitude unmasked weights until ``sparsity``; returns ``(mask, weights)``."""
    count = _drop_count(mask, sparsity)
    scores = torch.where(mask, weights.abs(), torch.full_like(weights, float("inf")))
    drop = torch.topk(scores, count, largest=False).indices
    new_mask = mask.clone()
    new_mask[drop] = False
    return new_mask, weights * new_mask


def obs_prune(
    weights: Tensor,
    mask: Tensor,
    grads: Tensor,
    sparsity: float,
    *,
    blocksize: int | None = PRUNING.blocksize,
    damp: float = PRUNING.damp,
) -> tuple[Tensor, Tensor]:
    """One M-FAC OBS step on flat ``weights`` (d,) with ``grads`` (m x d); returns ``(mask, weights)``."""
    if weights.dim() != 1 or mask.shape != weights.shape or mask.dtype != torch.bool:
        raise UnsupportedInputError(
            METHOD,
            "weights/mask",
            f"{tuple(weights.shape)}/{tuple(mask.shape)} {mask.dtype}",
            "flat (d,) and bool (d,)",
        )
    if grads.dim() != 2 or grads.shape[1] != weights.numel():
        raise UnsupportedInputError(METHOD, "grads", f"shape {tuple(grads.shape)}", f"(m, {weights.numel()})")
    count = _drop_count(mask, sparsity)
    kept = weights[mask]
    kept_grads = grads[:, mask]
    ihvp = StaticIHVP.blocked(kept_grads, blocksize, damp)
    diagonal = ihvp.diag()
    scores = kept.square() / (2 * diagonal)
    drop = torch.topk(scores, count, largest=False).indices
    target = torch.zeros_like(kept)
    target[drop] = -kept[drop] / diagonal[drop]
    kept = kept + ihvp.mul(target)
    kept[drop] = 0
    kept_mask = torch.ones_like(kept, dtype=torch.bool)
    kept_mask[drop] = False
    new_mask = mask.clone()
    new_mask[mask] = kept_mask
    new_weights = torch.zeros_like(weights)
    new_weights[mask] = kept
    return new_mask, new_weights


class MFACPruner:
    """Gradual OBS pruning of ``params`` (tensors of ``model``) with M-FAC (§5.1).

    Args:
        model: the model (put in eval mode while gradients are collected).
        params: the weights to prune, flattened and concatenated in this order.
        grad_loader_fn: returns an iterable of scalar losses, one per gradient batch; the
            first ``ngrads`` are used each time gradients are (re)computed.
        ngrads, blocksize, damp: defaults from :class:`~gradhub_mfac.PruneHyperparameters` (the official ones).
    """

    def __init__(
        self,
        model: nn.Module,
        params: Sequence[Tensor],
        grad_loader_fn: Callable[[], Iterable[Tensor]],
        ngrads: int = PRUNING.ngrads,
        blocksize: int | None = PRUNING.blocksize,
        damp: float = PRUNING.damp,
    ) -> None:
        values = validate_hyperparameters(
            METHOD, PruneHyperparameters, {"ngrads": ngrads, "blocksize": blocksize, "damp": damp}
        )
        self.model, self.params, self.grad_loader_fn = model, list(params), grad_loader_fn
        self.ngrads, self.blocksize, self.damp = values["ngrads"], values["blocksize"], values["damp"]

    def weights(self) -> Tensor:
        return torch.cat([param.detach().reshape(-1) for param in self.params])

    def set_weights(self, flat: Tensor) -> None:
        with torch.no_grad():
            torch._foreach_copy_(
                self.params,
                [part.view_as(p) for part, p in zip(flat.split([p.numel() for p in self.params]), self.params)],
            )

    def gradients(self) -> Tensor:
        """``ngrads x d`` gradients of the first ``ngrads`` losses of ``grad_loader_fn()``."""
        training = self.model.training
        self.model.eval()
        rows = []
        for loss in self.grad_loader_fn():
            if len(rows) == self.ngrads:
                break
            parts = torch.autograd.grad(loss, self.params)
            rows.append(torch.cat([part.reshape(-1) for part in parts]))
        self.model.train(training)
        if len(rows) < self.ngrads:
            raise UnsupportedInputError(
                METHOD, "grad_loader_fn", f"{len(rows)} losses", f"at least ngrads={self.ngrads} losses"
            )
        return torch.stack(rows)

    def prune(self, mask: Tensor, target_sparsity: float) -> tuple[Tensor, Tensor]:
        """One OBS step to ``target_sparsity`` with fresh gradients; returns ``(new_mask, new_weights)``.

        The model is not changed (gradients are taken at masked weights: call :meth:`set_weights`).
        """
        grads = self.gradients() * mask
        return obs_prune(self.weights(), mask, grads, target_sparsity, blocksize=self.blocksize, damp=self.damp)

    def gradual_prune(
        self,
        mask: Tensor,
        target_sparsity: float,
        nrecomps: int = PRUNING.nrecomps,
        *,
        progress: ProgressCallback | None = None,
    ) -> Tensor:
        """Reach ``target_sparsity`` in ``nrecomps`` OBS steps (geometric schedule).

        Writes the pruned weights into the model and returns the new mask.
        """
        validate_hyperparameters(METHOD, PruneHyperparameters, {"nrecomps": nrecomps})
        start = (~mask).double().mean().item()
        factor = ((1 - target_sparsity) / (1 - start)) ** (1 / nrecomps)
        with tracker(progress, total=nrecomps, task=METHOD) as bar:
            for j in range(1, nrecomps + 1):
                mask, weights = self.prune(mask, 1 - (1 - start) * factor**j)
                self.set_weights(weights)
                bar.update()
        return mask
