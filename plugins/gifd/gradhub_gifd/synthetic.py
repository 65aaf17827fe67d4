"""The claim's world, built here in seconds: coloured-blob images, a tiny decoder trained on them, a small CNN.

No weights are downloaded: the generator is the decoder of a tiny autoencoder trained for a few
hundred Adam steps on synthetic 3x16x16 images of 2-3 coloured Gaussian blobs on black. Its
latent (16-D) lies on the sphere of radius 4 = sqrt(16) (the encoder's output is normalised
there), the sphere GIFD's stage 0 searches (a standard normal latent has about that norm). The
decoder is four blocks, so GIFD has the latent and three intermediate features to search:

    B_1: Linear 16 -> 128, reshape 8x4x4;  B_2: ReLU, ConvTranspose 8 -> 8 (8x8);
    B_3: ReLU, ConvTranspose 8 -> 8 (16x16);  B_4: ReLU, Conv 8 -> 3, tanh.

Out-of-distribution images add a pattern of thin stripes the decoder never saw.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from gradhub.progress import ProgressCallback, tracker
from gradhub_gifd.prior import SequentialGenerator

SIDE = 16
LATENT = 16


def blob_images(count: int, generator: torch.Generator, device: Any = "cpu") -> torch.Tensor:
    """``count`` images (count, 3, 16, 16) in [0, 1]: 2 or 3 Gaussian blobs of random centre, width, colour."""
    blobs = 3
    centres = torch.rand(count, blobs, 2, generator=generator, device=generator.device) * (SIDE - 5) + 2.5
    widths = torch.rand(count, blobs, generator=generator, device=generator.device) * 2.0 + 1.5
    colours = torch.rand(count, blobs, 3, generator=generator, device=generator.device) * 0.8 + 0.2
    present = (torch.arange(blobs, device=generator.device) < 2) | (
        torch.rand(count, blobs, generator=generator, device=generator.device) < 0.5
    )
    grid = torch.arange(SIDE, dtype=torch.float32, device=generator.device)
    rows, cols = grid.view(1, 1, SIDE, 1), grid.view(1, 1, 1, SIDE)
    distance = (rows - centres[..., 0, None, None]).square() + (cols - centres[..., 1, None, None]).square()
    bumps = torch.exp(-distance / (2 * widths[..., None, None].square())) * present[..., None, None]
    images = (bumps[:, :, None] * colours[..., None, None]).sum(1)  # (count, 3, H, W)
    return images.clamp(0, 1).to(device)


def with_stripes(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Out-of-distribution images: thin bright stripes (1 pixel wide, period 4, random phase and axis)."""
    count = images.shape[0]
    grid = torch.arange(SIDE, device=generator.device)
    phase = torch.randint(0, 4, (count, 1), generator=generator, device=generator.device)
    lines = ((grid[None] + phase) % 4 == 0).float()  # (count, SIDE)
    vertical = torch.rand(count, generator=generator, device=generator.device) < 0.5
    stripes = torch.where(
        vertical[:, None, None], lines[:, None, :].expand(-1, SIDE, -1), lines[:, :, None].expand(-1, -1, SIDE)
    )
    colour = torch.rand(count, 3, generator=generator, device=generator.device) * 0.5 + 0.5
    pattern = stripes[:, None] * colour[..., None, None]
    return torch.maximum(images, pattern.to(images.device)).clamp(0, 1)


def decoder(seed: int = 0) -> SequentialGenerator:
    """The 4-block decoder (untrained); its output is in [-1, 1] (tanh)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SequentialGenerator(
            [
                nn.Sequential(nn.Linear(LATENT, 128), nn.Unflatten(1, (8, 4, 4))),
                nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(8, 8, 4, stride=2, padding=1)),
                nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(8, 8, 4, stride=2, padding=1)),
                nn.Sequential(nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1), nn.Tanh()),
            ],
            (LATENT,),
        )


def encoder(seed: int = 0) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(
            nn.Conv2d(3, 8, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 16, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(16 * 4 * 4, LATENT),
        )


def to_sphere(codes: torch.Tensor) -> torch.Tensor:
    """Codes on the sphere of radius sqrt(d), where a standard normal latent concentrates."""
    return codes / codes.norm(dim=1, keepdim=True).clamp_min(1e-12) * math.sqrt(codes.shape[1])


def train_decoder(
    steps: int = 300, batch: int = 64, seed: int = 0, progress: ProgressCallback | None = None
) -> SequentialGenerator:
    """Train the decoder of a tiny autoencoder on fresh blob images (Adam 3e-3, MSE in pixel space)."""
    generator = torch.Generator().manual_seed(seed)
    g, e = decoder(seed), encoder(seed + 1)
    optimizer = torch.optim.Adam([*g.parameters(), *e.parameters()], lr=3e-3)
    with tracker(progress, total=steps, task="gifd: train the decoder") as bar:
        for _ in range(steps):
            images = blob_images(batch, generator)
            reconstruction = (g(to_sphere(e(images))) + 1) / 2
            loss = (reconstruction - images).square().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            bar.update(loss=loss.detach())
    return g.eval().requires_grad_(False)


def classifier(seed: int = 0, classes: int = 10) -> nn.Module:
    """The federated model: 2 convolutions and a linear layer, no BatchNorm, random init."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 16, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(16 * 8 * 8, classes),
        )
