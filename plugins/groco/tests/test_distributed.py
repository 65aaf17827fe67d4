"""distributed=True: negatives from every process's batch, as one process on the whole batch.

Two spawned gloo processes would take longer than this folder's whole time budget, so: one real gloo process
group of one process (the collectives as called), and two ranks simulated in this process (all_gather answered
from the whole batch) for what each rank computes.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch.distributed as dist
from gradhub_groco.groco import GroCoLoss

WORLD, LOCAL, N_AUGS = 2, 6, 3
HPARAMS = dict(n_augs=N_AUGS, n_pos_augs=2, topk_neg=7, steepness=2.0)


def _whole_batch() -> torch.Tensor:
    return torch.randn(N_AUGS, WORLD * LOCAL, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


@pytest.fixture
def one_process_group() -> Iterator[None]:
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("stop_grad", [True, False])
def test_one_process_group_equals_no_group(one_process_group: None, stop_grad: bool) -> None:
    views = _whole_batch().requires_grad_()
    results = []
    for distributed in (True, False):
        value = GroCoLoss(**HPARAMS, stop_grad=stop_grad, distributed=distributed)(views)
        results.append((value, *torch.autograd.grad(value, views)))
    torch.testing.assert_close(results[0], results[1], rtol=0, atol=0)


class _SimulatedRank:
    """torch.distributed as rank ``rank`` of 2 sees it: all_gather fills in every rank's slice of ``whole``."""

    def __init__(self, rank: int, whole: torch.Tensor) -> None:
        self.rank, self.whole = rank, whole

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(dist, "is_initialized", lambda: True)
        monkeypatch.setattr(dist, "get_world_size", lambda: WORLD)
        monkeypatch.setattr(dist, "get_rank", lambda: self.rank)
        monkeypatch.setattr(dist, "all_gather", self.all_gather)

    def all_gather(self, parts: list[torch.Tensor], tensor: torch.Tensor) -> None:
        for rank, part in enumerate(parts):
            part.copy_(self._local(rank, tensor))

    def _local(self, rank: int, like: torch.Tensor) -> torch.Tensor:
        """Rank ``rank``'s share of what is gathered: its views, normalised as the loss normalises them."""
        if rank == self.rank:
            return like.detach()
        share = self.whole[:, rank * LOCAL : (rank + 1) * LOCAL]
        return share / share.norm(dim=-1, keepdim=True).clamp_min(1e-8)


def test_two_simulated_ranks_equal_one_process_on_the_whole_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each rank's loss is the mean over its anchors with all 12 images as negatives (7 negatives: more than one
    rank holds), so the ranks' mean is the single-process loss. With stop_grad=True each rank's gradient is its
    rows of the single-process gradient times 2; with stop_grad=False the gathered negatives pass back only this
    rank's slice (the official GatherLayer), so the other rank's anchors' terms are missing and they differ."""
    whole = _whole_batch()
    for stop_grad in (True, False):
        views = whole.clone().requires_grad_()
        reference = GroCoLoss(**HPARAMS, stop_grad=stop_grad)(views)
        (reference_gradient,) = torch.autograd.grad(reference, views)
        values, gradients = [], []
        for rank in range(WORLD):
            with monkeypatch.context() as patch:
                _SimulatedRank(rank, whole).install(patch)
                local = whole[:, rank * LOCAL : (rank + 1) * LOCAL].clone().requires_grad_()
                value = GroCoLoss(**HPARAMS, stop_grad=stop_grad, distributed=True)(local)
                values.append(value.detach())
                gradients.append(torch.autograd.grad(value, local)[0])
        torch.testing.assert_close(sum(values) / WORLD, reference.detach(), rtol=0, atol=1e-13)
        gathered = torch.cat(gradients, 1) / WORLD
        if stop_grad:
            torch.testing.assert_close(gathered, reference_gradient, rtol=0, atol=1e-13)
        else:
            assert (gathered - reference_gradient).abs().max() > 1e-6
