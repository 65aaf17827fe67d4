"""The staged attack: stage 0 is the latent baseline, stages lower the matching loss, radii bind, selection."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from gradhub_dia.inversion import total_variation
from gradhub_gifd.attack import GIFDAttack, _Matcher, _radii, gifd, gifd_latent
from gradhub_gifd.matching import ilo_lr
from gradhub_gifd.prior import SequentialGenerator
from torch import nn

import gradhub


def test_registered_targets() -> None:
    assert gradhub.get("gifd") is gifd and gradhub.get("gifd_latent") is gifd_latent


@pytest.mark.parametrize("restarts", [1, 3])
def test_stage_zero_is_the_latent_baseline(world, restarts: int) -> None:
    model, gradients, _, _ = world.client(0)
    common = {"steps_per_stage": 20, "restarts": restarts}
    staged = gifd(model, gradients, world.prior(), generator=world.generator(5), l1_relative=0.5, **common)
    latent = gifd_latent(model, gradients, world.prior(), generator=world.generator(5), **common)
    assert torch.equal(staged.per_stage_images[0], latent.output)
    assert torch.equal(staged.per_stage_grad_loss[0], latent.per_stage_grad_loss[0])
    assert torch.equal(staged.history[:20], latent.history)
    other = gifd_latent(model, gradients, world.prior(), generator=world.generator(6), **common)
    assert not torch.equal(other.output, latent.output)  # the seed matters: the equality is not vacuous


def plain_latent_attack(model, gradients, labels, prior, z, steps, lr, tv_weight, image_norm_weight):
    """An independent latent-space attack: Adam on z, ILO lr, sphere projection, TV + norm, clamp at the end."""
    radius = (z.square().sum() + 1e-9).sqrt()
    z = z.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=lr)
    parameters = list(model.parameters())
    for step in range(steps):
        optimizer.param_groups[0]["lr"] = ilo_lr(step / steps, lr)
        x = (prior(z) + 1) / 2
        trial = torch.autograd.grad(nn.functional.cross_entropy(model(x), labels), parameters, create_graph=True)
        inner = sum((t * g).sum() for t, g in zip(trial, gradients))
        norms = math.sqrt(sum(float(g.square().sum()) for g in gradients)) * sum(t.square().sum() for t in trial).sqrt()
        objective = 1 - inner / norms + tv_weight * total_variation(x) + image_norm_weight * x.norm() / 16
        (z.grad,) = torch.autograd.grad(objective, [z])
        optimizer.step()
        with torch.no_grad():
            z.copy_(z / (z.square().sum() + 1e-9).sqrt() * radius)
    with torch.no_grad():
        return ((prior(z) + 1) / 2).clamp(0, 1)


def test_latent_baseline_equals_a_plain_latent_attack(world) -> None:
    model, gradients, labels, _ = world.client(1)
    prior = world.prior(2)
    result = gifd_latent(
        model,
        gradients,
        prior,
        labels,
        world.generator(3),
        steps_per_stage=30,
        restarts=1,
        tv_weight=1e-2,
        image_norm_weight=1e-3,
    )
    z = torch.randn((1, 4), generator=world.generator(3), dtype=torch.float64)
    expected = plain_latent_attack(model, gradients, labels, prior, z, 30, 0.1, 1e-2, 1e-3)
    torch.testing.assert_close(result.output, expected, rtol=0, atol=1e-12)
    assert not torch.equal(expected, ((prior(z) + 1) / 2).clamp(0, 1))


def test_batched_restarts_equal_one_at_a_time(world) -> None:
    """The vmapped per-restart gradient matching equals separate single-restart evaluations, values and gradients."""
    model, gradients, labels, _ = world.client(2)
    state = {name: p.detach() for name, p in model.named_parameters()}
    names = list(state)
    target = torch.cat([g.reshape(-1) for g in gradients])
    loss = nn.CrossEntropyLoss()
    batched = _Matcher(model, state, names, target, labels, loss, "cosine", 3)
    single = _Matcher(model, state, names, target, labels, loss, "cosine", 1)
    x = torch.rand(3, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    together = batched.distances(x, create_graph=True)
    (grad_together,) = torch.autograd.grad(together.sum(), [x])
    apart = torch.cat([single.distances(x[r : r + 1], create_graph=True) for r in range(3)])
    (grad_apart,) = torch.autograd.grad(apart.sum(), [x])
    torch.testing.assert_close(together, apart, rtol=0, atol=1e-13)
    torch.testing.assert_close(grad_together, grad_apart, rtol=0, atol=1e-13)


@pytest.mark.parametrize("seed", [0, 2])
def test_stages_lower_the_matching_loss(world, seed: int) -> None:
    model, gradients, _, _ = world.client(seed)
    result = gifd(
        model,
        gradients,
        world.prior(seed + 1),
        generator=world.generator(seed),
        steps_per_stage=100,
        restarts=2,
        l1_relative=0.5,
    )
    losses = result.per_stage_grad_loss.tolist()
    assert all(later <= earlier + 1e-4 for earlier, later in itertools.pairwise(losses)), losses
    assert losses[-1] < 0.75 * losses[0], losses
    assert result.best_stage == len(losses) - 1 and torch.equal(result.output, result.per_stage_images[-1])


def test_l1_radius_keeps_features_near_their_start(world) -> None:
    """A tiny radius pins each feature stage where the previous stage ended (the same image); a large one frees it."""
    model, gradients, _, _ = world.client(0)
    tight = gifd(
        model, gradients, world.prior(), generator=world.generator(0), steps_per_stage=15, restarts=1, l1_relative=1e-9
    )
    for image in tight.per_stage_images[1:]:
        torch.testing.assert_close(image, tight.per_stage_images[0], rtol=0, atol=1e-7)
    loose = gifd(
        model,
        gradients,
        world.prior(),
        generator=world.generator(0),
        steps_per_stage=15,
        restarts=1,
        l1_radii=(1e3, 1e3),
    )
    assert (loose.per_stage_images[2] - loose.per_stage_images[0]).abs().max() > 1e-3
    unbounded = gifd(
        model,
        gradients,
        world.prior(),
        generator=world.generator(0),
        steps_per_stage=15,
        restarts=1,
        l1_radii=(None, None),
    )
    torch.testing.assert_close(unbounded.per_stage_images[2], loose.per_stage_images[2], rtol=0, atol=1e-14)


def test_official_radii_schedule() -> None:
    from gradhub_gifd import GIFDHyperparameters

    options = GIFDHyperparameters()
    assert _radii("gifd", options, (0, 1, 2, 3)) == [None, 2000.0, 2500.0, 3000.0]
    assert _radii("gifd", options, (2, 3)) == [2000.0, 2500.0]
    given = GIFDHyperparameters(l1_radii=(1.0, None))
    assert _radii("gifd", given, (0, 1, 2)) == [None, 1.0, None]


def test_select_by(world) -> None:
    model, gradients, _, _ = world.client(4)
    common = {"steps_per_stage": 10, "restarts": 2, "l1_relative": 0.5}
    best = gifd(model, gradients, world.prior(5), generator=world.generator(1), **common)
    assert best.best_stage == int(best.per_stage_grad_loss.argmin())
    assert torch.equal(best.output, best.per_stage_images[best.best_stage])
    last = gifd(model, gradients, world.prior(5), generator=world.generator(1), select_by="last", **common)
    assert last.best_stage == 2 and torch.equal(last.output, last.per_stage_images[2])
    chosen = best.restart_grad_loss.argmin(1)
    torch.testing.assert_close(best.per_stage_grad_loss, best.restart_grad_loss.gather(1, chosen[:, None])[:, 0])


def test_labels_inferred_or_given(world) -> None:
    model, gradients, labels, _ = world.client(3)
    inferred = gifd_latent(model, gradients, world.prior(), generator=world.generator(0), steps_per_stage=2, restarts=1)
    assert torch.equal(inferred.labels, labels)
    given = torch.tensor([1])
    result = gifd_latent(model, gradients, world.prior(), given, world.generator(0), steps_per_stage=2, restarts=1)
    assert torch.equal(result.labels, given)
    model2, gradients2, labels2, _ = world.client(3, batch=2)
    batch = gifd_latent(
        model2, gradients2, world.prior(), generator=world.generator(0), steps_per_stage=2, restarts=2, batch_size=2
    )
    assert batch.labels.tolist() == sorted(labels2.tolist()) and batch.output.shape == (2, 1, 4, 4)


class LabelledBlock(nn.Module):
    """A block that reads a class vector from the context (as BigGAN's do)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4 + 3, 16)
        self.seen: list[int] = []

    def forward(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.seen.append(y.shape[0])
        return self.linear(torch.cat([h, y], 1))


def test_context_reaches_every_block_with_the_whole_batch(world) -> None:
    model, gradients, labels, _ = world.client(0)
    torch.manual_seed(0)
    block = LabelledBlock().double()
    prior = SequentialGenerator([block, nn.Unflatten(1, (1, 4, 4))], (4,))
    shapes = []

    def context(batch_labels: torch.Tensor) -> dict[str, torch.Tensor]:
        shapes.append(tuple(batch_labels.shape))
        return {"y": nn.functional.one_hot(batch_labels, 3).double()}

    wrapper = [lambda h, y: block(h, y), lambda h, y: h.view(-1, 1, 4, 4)]
    result = gifd(
        model,
        gradients,
        wrapper,
        labels,
        world.generator(0),
        latent_shape=(4,),
        context=context,
        steps_per_stage=3,
        restarts=3,
        l1_relative=0.5,
    )
    assert shapes == [(3,)] and set(block.seen) == {3} and result.output.shape == (1, 1, 4, 4)
    del prior


def test_metrics_object_form_and_bookkeeping(world) -> None:
    model, gradients, labels, images = world.client(0)
    hparams = {"steps_per_stage": 4, "restarts": 2, "l1_relative": 0.5, "mean_std": ((0.5,), (0.25,))}
    result = gifd(
        model, gradients, world.prior(), labels, world.generator(0), ground_truth=(images - 0.5) / 0.25, **hparams
    )
    pixels = result.output * 0.25 + 0.5
    assert bool(((pixels >= 0) & (pixels <= 1)).all())
    mse = (pixels - images).square().mean()
    torch.testing.assert_close(result.metrics["mse"], mse, rtol=1e-12, atol=0)
    torch.testing.assert_close(result.metrics["psnr"], result.metrics["psnr_per_stage"][result.best_stage])
    assert result.iterations == 12 and result.history.shape == (12, 2) and result.model_calls == 12 + 3 + 1
    again = GIFDAttack(model, world.prior(), **hparams).attack(
        gradients, labels, generator=world.generator(0), ground_truth=(images - 0.5) / 0.25
    )
    assert torch.equal(again.output, result.output) and again.stages == (0, 1, 2)
