"""The generator contract: a prior split into blocks, ``image = B_L(... B_2(B_1(z)))``.

GIFD (Fang et al., ICCV 2023, §3.2) searches the input of each block of a pretrained generator
in turn. The official code hard-wires BigGAN and StyleGAN2 (``G.start_layer``/``G.end_layer``);
here any generator works that is handed over as its blocks:

- a :class:`SequentialGenerator` (``blocks`` and ``latent_shape``), or any object with a
  ``blocks`` sequence and a ``latent_shape``;
- a plain sequence of callables (a list, ``nn.Sequential`` or ``nn.ModuleList``, e.g. what a
  user's ``split(G)`` returns) together with ``latent_shape=``.

Extras every block needs (BigGAN's class vector, a truncation) come as ``context``: a mapping
passed to every block as keyword arguments, or a callable ``context(labels)`` returning it, called
with the labels of the whole batch the blocks see (restarts x images, restart-major), so a class
vector built from them has the right batch size.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from gradhub.errors import UnsupportedInputError

Block = Callable[..., torch.Tensor]
Context = Mapping[str, Any] | Callable[[torch.Tensor], Mapping[str, Any]] | None


class SequentialGenerator(nn.Module):
    """A generator given as its blocks: ``forward(z) = blocks[-1](... blocks[0](z))``.

    ``latent_shape`` is one latent's shape without the batch dimension (e.g. ``(128,)``).
    ``forward(z, **context)`` passes ``context`` to every block.
    """

    def __init__(self, blocks: Sequence[nn.Module], latent_shape: Sequence[int]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.latent_shape = tuple(latent_shape)

    def forward(self, z: torch.Tensor, **context: Any) -> torch.Tensor:
        for block in self.blocks:
            z = block(z, **context) if context else block(z)
        return z


@dataclass
class Prior:
    """The blocks, the latent shape, and the keyword arguments every block gets."""

    blocks: list[Block]
    latent_shape: tuple[int, ...]
    modules: list[nn.Module]
    context: Mapping[str, Any]

    def run(self, h: torch.Tensor, start: int, stop: int | None = None) -> torch.Tensor:
        """``B_stop(... B_{start+1}(h))``: blocks ``start .. stop - 1`` (0-based) applied to ``h``."""
        for block in self.blocks[start:stop]:
            h = block(h, **self.context) if self.context else block(h)
        return h

    @contextlib.contextmanager
    def evaluation(self) -> Iterator[None]:
        """Every module of the prior in eval mode (the official ``G.eval()``), modes restored after."""
        modes = [(module, module.training) for root in self.modules for module in root.modules()]
        for root in self.modules:
            root.eval()
        try:
            yield
        finally:
            for module, training in modes:
                module.training = training


def resolve_prior(method: str, prior: Any, latent_shape: Sequence[int] | None) -> Prior:
    """The blocks and latent shape of ``prior`` (see the module docstring), or a clear error."""
    if hasattr(prior, "blocks") and not isinstance(prior, (nn.Sequential, nn.ModuleList)):
        blocks = prior.blocks
        latent_shape = latent_shape if latent_shape is not None else getattr(prior, "latent_shape", None)
    elif isinstance(prior, (nn.Sequential, nn.ModuleList, list, tuple)):
        blocks = prior
    else:
        raise UnsupportedInputError(
            method,
            "prior",
            type(prior).__name__,
            "a SequentialGenerator, an object with .blocks and .latent_shape, or a sequence of blocks "
            "(with latent_shape=) whose composition maps a latent to an image",
        )
    blocks = list(blocks)
    if not blocks:
        raise UnsupportedInputError(method, "prior", "no blocks", "at least one block")
    for index, block in enumerate(blocks):
        if not callable(block):
            raise UnsupportedInputError(
                method, f"prior block {index}", type(block).__name__, "every block must be callable (an nn.Module)"
            )
    if latent_shape is None:
        raise UnsupportedInputError(
            method,
            "latent_shape",
            "None",
            "the shape of one latent (e.g. (128,)): give latent_shape= or prior.latent_shape",
        )
    if (
        not isinstance(latent_shape, Sequence)
        or isinstance(latent_shape, str)
        or not latent_shape
        or not all(isinstance(size, int) and not isinstance(size, bool) and size > 0 for size in latent_shape)
    ):
        raise UnsupportedInputError(
            method, "latent_shape", repr(latent_shape), "a non-empty tuple of positive ints, e.g. (128,)"
        )
    modules = [prior] if isinstance(prior, nn.Module) else [block for block in blocks if isinstance(block, nn.Module)]
    return Prior(blocks, tuple(latent_shape), modules, {})


def with_context(method: str, prior: Prior, context: Context, labels: torch.Tensor) -> Prior:
    """``prior`` with its blocks' keyword arguments: ``context``, or ``context(labels)`` when callable."""
    if context is None:
        return prior
    extras = context(labels) if callable(context) else context
    if not isinstance(extras, Mapping):
        raise UnsupportedInputError(
            method, "context", type(extras).__name__, "a mapping of keyword arguments (or a callable returning one)"
        )
    return Prior(prior.blocks, prior.latent_shape, prior.modules, dict(extras))


def trace_shapes(method: str, prior: Prior, z: torch.Tensor) -> list[tuple[int, ...]]:
    """Run ``z`` through the blocks one by one (no grad): the input shape of every block, then the output's.

    A block that fails on its predecessor's output (shapes that do not chain, a wrong latent shape)
    is an error naming the block, the shape it got and torch's reason.
    """
    shapes = [tuple(z.shape)]
    h = z
    with torch.no_grad():
        for index, block in enumerate(prior.blocks):
            try:
                h = block(h, **prior.context) if prior.context else block(h)
            except torch.cuda.OutOfMemoryError:
                raise
            except (RuntimeError, TypeError, ValueError) as error:
                reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                given = "the latent" if index == 0 else f"the output of block {index - 1}"
                raise UnsupportedInputError(
                    method,
                    "prior blocks",
                    f"block {index} ({type(block).__name__}) failed on {given}, of shape {tuple(h.shape)}: {reason!r}",
                    "blocks that compose: each block takes its predecessor's output (the first, a latent of "
                    "latent_shape) and the last returns an image batch",
                ) from error
            if not isinstance(h, torch.Tensor):
                raise UnsupportedInputError(
                    method,
                    "prior blocks",
                    f"block {index} ({type(block).__name__}) returned {type(h).__name__}",
                    "every block returns one tensor (wrap blocks that return tuples)",
                )
            shapes.append(tuple(h.shape))
    return shapes
