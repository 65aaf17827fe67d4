"""DCDMNet: the paper's fully convolutional two-level residual network (paper §3.4, Fig. 2).

Paper: "A Deep Conjugate Direction Method for Iteratively Solving Linear Systems",
Ayano Kaneda, Osman Akar, Jingyu Chen, Victoria Kala, David Hyde, Joseph Teran, ICML 2023,
arXiv:2205.10763. Official code: https://github.com/ayano721/2023_DCDM (``src/train.py``, Keras).

Layout, read from the official Keras model (all convolutions 3x3(x3), "same" padding,
with bias, ``channels`` = 16 filters):

    h   = conv(b)                               # linear
    h   = relu(conv(h))
    n_res_fine x   h = relu(conv(relu(conv(h)))) + h          (official: 1)
    s   = relu(conv(h))                         # the skip connection
    c   = avgpool2(s)
    n_res_coarse x c = relu(conv(relu(conv(c)))) + c          (official: 3)
    u   = upsample2(c) + s                      # nearest-neighbour upsampling
    n_res_up x     u = relu(conv(relu(conv(u)))) + u          (official: 2)
    out = pointwise linear(u)                   # Keras Dense(1) on the channel axis = 1x1 conv

The official network is 3-D; ``dim=2`` uses the same layout with 2-D layers. The fine level
is one residual block between two plain ReLU convolutions (``n_res_fine=1``), not two
residual blocks, as read from the official code. For odd grid sizes
pooling uses ceil mode averaging only the cells inside the grid (Keras ``padding='same'``)
and the upsampled map is cropped to the input size (the official code only runs even N).
The network maps (B, 1, *grid) to (B, 1, *grid) on any grid size (no dense layers).
"""

from __future__ import annotations

import torch.nn.functional as functional
from torch import Tensor, nn

from gradhub.errors import UnsupportedInputError
from gradhub.hyperparameters import validated
from gradhub_dcdm import DCDM_NET


class _ResidualBlock(nn.Module):
    """``x + relu(conv(relu(conv(x))))``: the official pattern ``a = relu(conv(relu(conv(a)))) + a``."""

    def __init__(self, convolution: type[nn.Module], channels: int) -> None:
        super().__init__()
        self.first = convolution(channels, channels, 3, padding=1)
        self.second = convolution(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return functional.relu(self.second(functional.relu(self.first(x)))) + x


@validated(DCDM_NET)
class DCDMNet(nn.Module):
    """Approximates ``A^-1 b`` up to scale for a fixed grid Laplacian-like ``A``; input/output (B, 1, *grid)."""

    def __init__(self, *, dim: int, channels: int, n_res_fine: int, n_res_coarse: int, n_res_up: int) -> None:
        super().__init__()
        self.dim = dim
        convolution = nn.Conv2d if dim == 2 else nn.Conv3d
        self.lift = convolution(1, channels, 3, padding=1)
        self.fine_in = convolution(channels, channels, 3, padding=1)
        self.fine = nn.Sequential(*(_ResidualBlock(convolution, channels) for _ in range(n_res_fine)))
        self.fine_out = convolution(channels, channels, 3, padding=1)
        self.coarse = nn.Sequential(*(_ResidualBlock(convolution, channels) for _ in range(n_res_coarse)))
        self.up = nn.Sequential(*(_ResidualBlock(convolution, channels) for _ in range(n_res_up)))
        self.project = convolution(channels, 1, 1)

    def forward(self, b: Tensor) -> Tensor:
        if b.dim() != self.dim + 2 or b.shape[1] != 1:
            raise UnsupportedInputError(
                DCDM_NET.name,
                "input",
                f"shape {tuple(b.shape)}",
                f"DCDMNet(dim={self.dim}) takes (B, 1, " + ", ".join("N" * self.dim) + ")",
            )
        weight = self.lift.weight
        if b.dtype != weight.dtype:
            # Not cast: a silent float64 -> float32 cast would lose the precision the caller asked for, and
            # nn layers do not cast. dcdm() casts the residuals to the net's dtype itself.
            raise UnsupportedInputError(
                DCDM_NET.name,
                "input dtype",
                b.dtype,
                f"input must be {weight.dtype} like the layer's weights (convert the input with "
                f".to({weight.dtype}), or the layer with .to({b.dtype}))",
            )
        pool = functional.avg_pool2d if self.dim == 2 else functional.avg_pool3d
        h = functional.relu(self.fine_in(self.lift(b)))
        skip = functional.relu(self.fine_out(self.fine(h)))
        coarse = self.coarse(pool(skip, 2, ceil_mode=True, count_include_pad=False))
        upsampled = coarse
        for axis in range(2, 2 + self.dim):
            upsampled = upsampled.repeat_interleave(2, dim=axis).narrow(axis, 0, skip.shape[axis])
        return self.project(self.up(upsampled + skip))
