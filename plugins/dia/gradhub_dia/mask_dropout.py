"""MaskDropout: ``nn.Dropout`` whose mask can be recorded or supplied (Scheliga et al., §4).

Paper: "Dropout is NOT All You Need to Prevent Gradient Leakage", Daniel Scheliga, Patrick
Mäder, Marco Seeland, AAAI 2023, arXiv:2208.06163. Official code:
https://github.com/dAI-SY-Group/DropoutInversionAttack (``src/models/modules.py``).

Dropout in train mode computes ``h * m / (1 - p)`` with ``m ~ Bernoulli(1 - p)`` (the
paper's Eq. 1 context). The Dropout Inversion Attack treats ``m`` as an unknown to be
optimised, so the layer has three modes:

- normal: exactly ``nn.Dropout`` (train: random mask; eval: identity);
- ``track = True``: the next train-mode forward samples its mask explicitly, stores it in
  ``mask`` (full activation shape, batch included) and switches tracking off; the output is
  bit-for-bit the one ``nn.Dropout`` gives from the same RNG state (CPU);
- ``use_mask = True``: the forward returns ``h * (mask / (1 - p))`` with the stored,
  possibly continuous, mask, in train and eval mode alike.

Differences from the official code: the official layer recovers the tracked mask as
``output != 0``, which marks as dropped every unit whose input was already 0 (after a
ReLU, about half of them); here the sampled Bernoulli mask itself is kept, so mask
agreement is measured against the true mask. A ``generator`` attribute (default None: the
global RNG, as ``nn.Dropout``) lets a caller draw tracked masks reproducibly; the mask is drawn on the
generator's device and moved to the input's, so a host generator gives the same masks on every device.
"""

from __future__ import annotations

import torch
from torch import nn

from gradhub.errors import UnsupportedInputError
from gradhub.hyperparameters import validated
from gradhub_dia import MASK_DROPOUT

__all__ = ["MaskDropout", "dropout_layers", "swap_dropout"]


@validated(MASK_DROPOUT)
class MaskDropout(nn.Dropout):
    """``nn.Dropout(p)`` that can record its Bernoulli mask (``track``) or apply a given one (``use_mask``).

    ``mask`` (a non-persistent buffer, so ``state_dict`` matches ``nn.Dropout``'s) may be
    given at construction, which turns ``use_mask`` on: a fixed-mask dropout.
    """

    mask: torch.Tensor | None

    def __init__(self, p: float, mask: torch.Tensor | None = None) -> None:
        super().__init__(p)
        self.track = False
        self.use_mask = mask is not None
        self.generator: torch.Generator | None = None
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 - nn.Dropout.forward's name
        if self.use_mask:
            if self.mask is None:
                raise UnsupportedInputError(
                    MASK_DROPOUT.name,
                    "mask",
                    None,
                    "set layer.mask (a tensor shaped like the input) before use_mask=True",
                )
            if self.mask.shape != input.shape and not _broadcasts_to(self.mask.shape, input.shape):
                raise UnsupportedInputError(
                    MASK_DROPOUT.name,
                    "mask shape",
                    tuple(self.mask.shape),
                    f"the mask must have the input's shape {tuple(input.shape)} (or broadcast to it)",
                )
            return input * (self.mask / (1 - self.p))
        if self.track and self.training:
            # Same draw as ATen's CPU dropout (bernoulli_(1 - p), then scaled, then multiplied).
            generator = self.generator
            where = generator.device if generator is not None else input.device
            keep = torch.empty_like(input, device=where).bernoulli_(1 - self.p, generator=generator)
            keep = keep.to(input.device)
            self.mask = keep
            self.track = False
            return input * (keep / (1 - self.p))
        return super().forward(input)

    def extra_repr(self) -> str:
        return f"p={self.p}, track={self.track}, use_mask={self.use_mask}"


def _broadcasts_to(shape: torch.Size, target: torch.Size) -> bool:
    try:
        return torch.broadcast_shapes(shape, target) == target
    except RuntimeError:
        return False


def dropout_layers(model: nn.Module) -> list[nn.Dropout]:
    """Every elementwise ``nn.Dropout`` (``MaskDropout`` included) of ``model``, in ``named_modules`` order."""
    return [module for module in model.modules() if isinstance(module, nn.Dropout)]


def swap_dropout(model: nn.Module) -> nn.Module:
    """Replace, in place, every ``nn.Dropout`` of ``model`` by a ``MaskDropout`` with the same ``p``; return ``model``.

    Each new layer keeps its predecessor's training flag; parameters, buffers and their
    names and order are untouched (dropout has none), so ``state_dict`` is unchanged. A
    model that is itself an ``nn.Dropout`` is returned as a new ``MaskDropout``. Other
    dropout variants (``Dropout2d``, ``AlphaDropout``...) are not elementwise Bernoulli
    masks of this form and are left alone.
    """

    def convert(module: nn.Dropout) -> MaskDropout:
        replacement = MaskDropout(float(module.p))
        replacement.train(module.training)
        return replacement

    if isinstance(model, nn.Dropout) and not isinstance(model, MaskDropout):
        return convert(model)
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.Dropout) and not isinstance(child, MaskDropout):
                setattr(parent, name, convert(child))
    return model
