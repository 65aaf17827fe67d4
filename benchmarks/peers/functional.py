"""Functional methods against what a user writes inline or imports: AnyLoss and gradient reversal.

Rows:

* ``any_fbeta`` (F1, L = 73) on a batch of 65,536 and on 8 elements (the per-call overhead row),
  forward and backward, against the same math written inline (sigmoid amplification, soft TP and
  FP, the official ``b^2 y1 + sum A + eps`` denominator): gradhub's frame validates the call,
  checks the inputs' shapes, dtypes and devices, and checks the loss is finite (one read of the
  scalar); value checks (``check_values``) are opt-in and off here, as by default.
* ``grad_reverse`` on 65,536 elements, forward and backward, against ``pytorch_revgrad.revgrad``
  (the PyPI layer users pick), and on 8 elements forward only against a minimal
  ``autograd.Function`` (identity forward, ``-lambda * g`` backward): the per-call overhead row.
"""

from __future__ import annotations

import argparse

import torch
from kinds import Comparison

import gradhub


def _inline_fbeta(p: torch.Tensor, y: torch.Tensor, L: float = 73.0, beta: float = 1.0, eps: float = 1e-5):
    a = torch.sigmoid(L * (p - 0.5))
    tp = (y * a).sum()
    fp = ((1 - y) * a).sum()
    b2 = beta * beta
    return 1 - (1 + b2) * tp / (b2 * y.sum() + (tp + fp) + eps)


class _Minimal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lambd):  # type: ignore[override]
        ctx.lambd = lambd
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        return grad * (-ctx.lambd), None


def _close(rtol: float, atol: float):
    def check(ours, peer) -> None:
        for a, b in zip(ours if isinstance(ours, tuple) else (ours,), peer if isinstance(peer, tuple) else (peer,)):
            torch.testing.assert_close(a, b, rtol=rtol, atol=atol)

    return check


def comparisons(args: argparse.Namespace) -> list[Comparison]:
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    any_fbeta = gradhub.get("any_fbeta")
    grad_reverse = gradhub.get("grad_reverse")
    from pytorch_revgrad.functional import revgrad

    generator = torch.Generator().manual_seed(0)
    rows = []
    for n, repeats in ((65_536, 20), (8, 2000)):
        p = torch.rand(n, generator=generator).to(device).requires_grad_()
        y = (torch.rand(n, generator=generator) > 0.7).float().to(device)

        def ours(p=p, y=y):
            value = any_fbeta(p, y)
            (grad,) = torch.autograd.grad(value, p)
            return value.detach(), grad

        def peer(p=p, y=y):
            value = _inline_fbeta(p, y)
            (grad,) = torch.autograd.grad(value, p)
            return value.detach(), grad

        rows.append(
            Comparison(
                "functional",
                f"any_fbeta forward+backward, batch {n:,}",
                ours,
                peer,
                _close(1e-5, 1e-6),
                peer_name="the same math inline",
                repeats=repeats,
                sync=sync,
            )
        )
    p8 = torch.rand(8, generator=generator).to(device)
    y8 = (torch.rand(8, generator=generator) > 0.5).float().to(device)
    rows.append(
        Comparison(
            "functional",
            "any_fbeta forward (per-call overhead), batch 8",
            lambda: any_fbeta(p8, y8),
            lambda: _inline_fbeta(p8, y8),
            _close(1e-6, 1e-7),
            peer_name="the same math inline",
            repeats=2000,
            sync=sync,
        )
    )
    x = torch.randn(65_536, generator=generator).to(device).requires_grad_()
    alpha = torch.tensor(0.7, device=device)

    def reverse_ours(x=x):
        (grad,) = torch.autograd.grad(grad_reverse(x, lambd=0.7).square().sum(), x)
        return grad

    def reverse_peer(x=x):
        (grad,) = torch.autograd.grad(revgrad(x, alpha).square().sum(), x)
        return grad

    rows.append(
        Comparison(
            "functional",
            "grad_reverse forward+backward, 65,536 elements",
            reverse_ours,
            reverse_peer,
            _close(1e-6, 1e-6),
            peer_name="pytorch_revgrad 0.2.0",
            repeats=20,
            sync=sync,
        )
    )
    small = torch.randn(8, generator=generator).to(device).requires_grad_()
    rows.append(
        Comparison(
            "functional",
            "grad_reverse forward (per-call overhead), 8 elements",
            lambda: grad_reverse(small, lambd=0.7),
            lambda: _Minimal.apply(small, 0.7),
            _close(0, 0),
            peer_name="a minimal autograd.Function",
            repeats=5000,
            sync=sync,
        )
    )
    return rows
