"""Differentiable sorting networks: gradhub-groco's ``diff_sort`` against PyPI ``diffsort`` 0.2.0's ``DiffSortNet``.

Rows: forward and backward of the relaxed sort of a batch of 128 vectors in float32 (Cauchy relaxation,
steepness 10, diffsort's default), through the odd-even network on 16 values and the bitonic network on 32:
both outputs (the soft-sorted values and the relaxed permutation matrix P) are differentiated through a fixed
random projection, so the backward runs through P as GroCo's loss does. Outputs and input gradients are
checked equal first. diffsort multiplies by 0/1 matrices per layer (O(n^3) per sample and layer);
gradhub's layers are strided views of the wires with a hand-written backward (O(n^2)).
"""

from __future__ import annotations

import argparse

import torch
from kinds import Comparison

import gradhub


def _check(ours, peer) -> None:
    """Values and P to 1e-5; the input gradient (sums over the n x n entries of P, O(10)) to 1e-4."""
    for a, b, tolerance in zip(ours, peer, (1e-5, 1e-5, 1e-4)):
        torch.testing.assert_close(a, b, rtol=tolerance, atol=tolerance)


def comparisons(args: argparse.Namespace) -> list[Comparison]:
    import diffsort

    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    DiffSortNet = gradhub.get("diff_sort")
    generator = torch.Generator().manual_seed(0)
    rows = []
    for network, n in (("odd_even", 16), ("bitonic", 32)):
        x = torch.randn(128, n, generator=generator).to(device).requires_grad_()
        weights = torch.randn(128, n, generator=generator).to(device)
        mixing = torch.randn(128, n, n, generator=generator).to(device)
        ours_sorter = DiffSortNet(n, sorting_network=network, steepness=10.0, relaxation="cauchy")
        peer_sorter = diffsort.DiffSortNet(network, n, device=str(device), steepness=10.0, distribution="cauchy")

        def run(sorter, x=x, weights=weights, mixing=mixing):
            values, P = sorter(x)
            (gradient,) = torch.autograd.grad((values * weights).sum() + (P * mixing).sum(), x)
            return values.detach(), P.detach(), gradient

        rows.append(
            Comparison(
                "groco",
                f"diff_sort {network} n={n} forward+backward, batch 128, float32",
                lambda run=run, sorter=ours_sorter: run(sorter),
                lambda run=run, sorter=peer_sorter: run(sorter),
                _check,
                peer_name="diffsort 0.2.0 DiffSortNet",
                repeats=20,
                sync=sync,
            )
        )
    return rows
