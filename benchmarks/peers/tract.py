"""TrAct first layers against the official implementation, PyPI ``torch-tract`` 1.0.0 (``import torch_tract``).

Rows (forward and backward of ``sum(z * G)`` for a fixed G; the weight and bias gradients, not the
input's, as for a first layer; lambda 0.1; the same parameters and inputs on both sides):

* ``tract_linear``: a ViT-style patch embedding Linear(768, 384) on 256 tokens (N = 256 < n = 768:
  the N x N branch) and on 8 x 196 tokens (N = 1,568 >= n: the n x n branch), with the default
  ``inv_type="inverse"`` (an LU solve; the official code inverts explicitly and multiplies), and
  once with ``inv_type="cholesky"`` (the official ``"cholesky_inverse"`` is not the same math: it
  passes the matrix to ``torch.cholesky_inverse``, which expects its Cholesky factor);
* ``tract_conv2d``: Conv2d(3, 64, 3, padding 1) on 64 x 3 x 32 x 32 (N = 65,536 patches, n = 27).

Each pair is checked to give the same output and gradients (float32, relative 1e-4) before timing.
"""

from __future__ import annotations

import argparse

import torch
from kinds import Comparison

import gradhub


def _close(ours: tuple[torch.Tensor, ...], peer: tuple[torch.Tensor, ...]) -> None:
    for a, b in zip(ours, peer):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * float(b.abs().max()))


def _pair(ours: torch.nn.Module, peer: torch.nn.Module, x: torch.Tensor, g: torch.Tensor):
    def run(layer: torch.nn.Module):
        def call() -> tuple[torch.Tensor, ...]:
            output = layer(x)
            weight, bias = torch.autograd.grad((output * g).sum(), [layer.weight, layer.bias])
            return output.detach(), weight, bias

        return call

    return run(ours), run(peer)


def comparisons(args: argparse.Namespace) -> list[Comparison]:
    import torch_tract

    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    TrActLinear = gradhub.get("tract_linear")
    TrActConv2d = gradhub.get("tract_conv2d")
    generator = torch.Generator().manual_seed(0)
    rows = []
    for shape, branch, inv_type, repeats in (
        ((256, 768), "N x N branch", "inverse", 10),
        ((8, 196, 768), "n x n branch", "inverse", 5),
        ((256, 768), "N x N branch", "cholesky", 10),
    ):
        peer = torch_tract.TrActLinear(768, 384, 0.1).to(device)
        ours = TrActLinear(768, 384, l=0.1, inv_type=inv_type).to(device)
        ours.load_state_dict(peer.state_dict())
        x = torch.randn(shape, generator=generator).to(device)
        g = torch.randn(*shape[:-1], 384, generator=generator).to(device)
        call_ours, call_peer = _pair(ours, peer, x, g)
        tokens = " x ".join(str(size) for size in shape[:-1])
        solver = "" if inv_type == "inverse" else f", inv_type={inv_type!r} (peer: 'inverse')"
        rows.append(
            Comparison(
                "tract",
                f"tract_linear 768 -> 384 forward+backward, {tokens} tokens ({branch}{solver})",
                call_ours,
                call_peer,
                _close,
                peer_name="torch-tract 1.0.0",
                repeats=repeats,
                sync=sync,
            )
        )
    peer = torch_tract.TrActConv2d(3, 64, 3, 1, 1, 0.1).to(device)
    ours = TrActConv2d(3, 64, 3, padding=1, l=0.1).to(device)
    ours.load_state_dict(peer.state_dict())
    x = torch.randn(64, 3, 32, 32, generator=generator).to(device)
    g = torch.randn(64, 64, 32, 32, generator=generator).to(device)
    call_ours, call_peer = _pair(ours, peer, x, g)
    rows.append(
        Comparison(
            "tract",
            "tract_conv2d 3 -> 64, k3, padding 1, forward+backward, 64 x 3 x 32 x 32",
            call_ours,
            call_peer,
            _close,
            peer_name="torch-tract 1.0.0",
            repeats=5,
            sync=sync,
        )
    )
    return rows
