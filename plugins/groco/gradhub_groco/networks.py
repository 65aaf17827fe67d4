"""Sorting networks as strided layers: each layer's comparators are one reshaped view of the wires.

A sorting network is a fixed sequence of layers; each layer compares disjoint pairs of wires
(positions) ``(a, b)``, ``a < b``, and writes the smaller value to one of them and the larger to
the other. In both networks used here the pairs of a layer are regular: the wires
``start .. start + 2 * groups * stride`` split into ``groups`` blocks of ``2 * stride`` wires, and
wire ``j`` of a block's first half is compared with wire ``j`` of its second half. So a layer is
applied as elementwise operations on two strided views (``wires.view(groups, 2, stride)[:, 0]``
and ``[:, 1]``), never a Python loop over comparators. ``ascending[g, j]`` says whether the first
wire of pair ``(g, j)`` receives the minimum (otherwise the maximum).

Two networks, as in Petersen et al. ("Differentiable Sorting Networks for Scalable Sorting and
Ranking Supervision", ICML 2021; "Monotonic Differentiable Sorting Networks", ICLR 2022) and
their ``diffsort`` package:

* **odd-even transposition**: ``n`` layers; layer ``l`` compares ``(i, i + 1)`` for ``i = l mod 2,
  l mod 2 + 2, ...`` (``start = l mod 2``, ``stride = 1``), always ascending. Sorts any ``n``.
* **bitonic** (Batcher): for ``n = 2^m``, blocks ``j = 0..m-1`` of ``j + 1`` layers with stride
  ``2^(j - l)``; wire ``a`` is compared with ``a + stride``, ascending when
  ``floor(a / 2^(j + 1))`` is even and descending otherwise. ``m (m + 1) / 2`` layers.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

__all__ = ["Layer", "comparators", "network", "scaled_network"]


@dataclass(frozen=True)
class Layer:
    """One layer: wires ``start .. start + 2 * groups * stride`` as ``groups`` blocks of two halves of ``stride``."""

    start: int
    groups: int
    stride: int
    ascending: torch.Tensor | None
    """(groups, stride) booleans: the pair's first wire gets the minimum; None: every pair ascends."""

    @property
    def end(self) -> int:
        return self.start + 2 * self.groups * self.stride


def _odd_even(n: int) -> list[Layer]:
    return [Layer(layer % 2, (n - layer % 2) // 2, 1, None) for layer in range(n) if (n - layer % 2) // 2 > 0]


def _bitonic(n: int) -> list[Layer]:
    if n < 1 or n & (n - 1):
        raise ValueError(f"a bitonic network needs a power of two of wires, not n={n}")
    result = []
    for block in range(n.bit_length() - 1):
        for layer in range(block + 1):
            stride = 1 << (block - layer)
            groups = n // (2 * stride)
            first = torch.arange(groups, device="cpu")[:, None] * 2 * stride + torch.arange(stride, device="cpu")
            ascending = (first >> (block + 1)) % 2 == 0
            result.append(Layer(0, groups, stride, None if bool(ascending.all()) else ascending))
    return result


@functools.lru_cache(maxsize=64)
def network(kind: str, n: int) -> tuple[Layer, ...]:
    """The layers of the ``kind`` network ("odd_even" or "bitonic") on ``n`` wires (cached, on the CPU).

    The odd-even network has ``n`` layers, as diffsort's (layers without a comparator, for ``n = 1``
    and the second layer of ``n = 2``, are left out: they change nothing).
    """
    if kind == "odd_even":
        return tuple(_odd_even(n))
    if kind == "bitonic":
        return tuple(_bitonic(n))
    raise ValueError(f"unknown sorting network {kind!r}; use 'odd_even' or 'bitonic'")


def comparators(kind: str, n: int) -> list[list[tuple[int, int]]]:
    """Each layer's comparators as ``(wire receiving the minimum, wire receiving the maximum)`` (for tests, plots)."""
    result = []
    for layer in network(kind, n):
        pairs = []
        for group in range(layer.groups):
            for j in range(layer.stride):
                a = layer.start + 2 * group * layer.stride + j
                b = a + layer.stride
                up = True if layer.ascending is None else bool(layer.ascending[group, j])
                pairs.append((a, b) if up else (b, a))
        result.append(pairs)
    return result


@functools.lru_cache(maxsize=256)
def scaled_network(
    kind: str, n: int, steepness: float, device: torch.device, dtype: torch.dtype
) -> tuple[tuple[Layer, float | torch.Tensor], ...]:
    """Each layer with its signed steepness: ``+steepness`` for an ascending pair, ``-steepness`` for a
    descending one; a float when every pair of the layer ascends, else a (groups, stride, 1) tensor on
    ``device`` in ``dtype`` (cached)."""
    result = []
    for layer in network(kind, n):
        if layer.ascending is None:
            result.append((layer, steepness))
        else:
            sign = layer.ascending.to(torch.float64) * 2 - 1
            result.append((layer, (sign * steepness).unsqueeze(-1).to(device=device, dtype=dtype)))
    return tuple(result)
