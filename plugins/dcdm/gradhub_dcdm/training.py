"""A small training loop for DCDMNet on the DCDM loss (paper §3.3; official ``src/train.py``).

Paper: "A Deep Conjugate Direction Method for Iteratively Solving Linear Systems",
Ayano Kaneda, Osman Akar, Jingyu Chen, Victoria Kala, David Hyde, Joseph Teran, ICML 2023,
arXiv:2205.10763. Official code: https://github.com/ayano721/2023_DCDM.

Unsupervised: minimise ``dcdm_loss(model(b), b, A)`` over unit-norm right-hand sides
(e.g. from :func:`gradhub_dcdm.data.ritz_rhs`) with Adam. The official run uses lr 1e-4,
batch 10 and 1000 epochs over 20 000 vectors on a GPU; this helper is for short, seeded
runs (a fixed number of steps, so results do not depend on the machine's speed).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gradhub.errors import UnsupportedInputError
from gradhub.progress import ProgressCallback, tracker
from gradhub_dcdm.loss import dcdm_loss
from gradhub_dcdm.operators import MatrixLike, describe

METHOD = "train_dcdm"


def train_dcdm(
    model: nn.Module,
    A: MatrixLike,
    rhs: Tensor,
    *,
    steps: int = 1000,
    lr: float = 1e-4,
    batch_size: int = 10,
    grid: tuple[int, ...] | None = None,
    seed: int = 0,
    progress: ProgressCallback | None = None,
) -> list[float]:
    """Train ``model`` in place for ``steps`` Adam steps on minibatches of ``rhs`` (N_data, n); returns the losses.

    ``grid``: the model sees (B, 1, *grid) (a DCDMNet); None feeds (B, n). Minibatches
    are drawn without replacement from a permutation reshuffled each epoch, seeded by ``seed``.
    Each step costs one host sync (the loss value returned).
    """
    if not isinstance(rhs, Tensor) or rhs.dim() != 2 or not rhs.dtype.is_floating_point:
        raise UnsupportedInputError(METHOD, "rhs", describe(rhs), "rhs must be a floating (N_data, n) tensor")
    for name, value in (("steps", steps), ("batch_size", batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UnsupportedInputError(METHOD, name, repr(value), f"{name} must be an integer >= 1")
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not lr > 0:
        raise UnsupportedInputError(METHOD, "lr", repr(lr), "lr must be a number > 0")
    shape = (1, *grid) if grid is not None else (rhs.shape[1],)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    # the permutations are drawn on the host (the same on every device) and moved once per epoch
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(rhs.shape[0], generator=generator, device="cpu").to(rhs.device)
    cursor = 0
    losses: list[float] = []
    with tracker(progress, total=steps, task=METHOD) as bar:
        for _ in range(steps):
            if cursor + batch_size > rhs.shape[0]:
                order, cursor = torch.randperm(rhs.shape[0], generator=generator, device="cpu").to(rhs.device), 0
            batch = rhs[order[cursor : cursor + batch_size]]
            cursor += batch_size
            inputs = batch.reshape(batch.shape[0], *shape)
            loss = dcdm_loss(model(inputs), inputs, A)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            bar.update(loss=losses[-1])
    return losses
