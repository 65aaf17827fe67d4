"""The denoising trainer: the constraint holds after every step, runs are seeded, progress is reported."""

from __future__ import annotations

import torch
from gradhub_lpn import training
from gradhub_lpn.networks import LPN
from gradhub_lpn.training import Stage, laplace_sampler, train_lpn

from gradhub.progress import ProgressEvent


def _train(seed: int = 0, **options) -> tuple[LPN, list[float]]:
    torch.manual_seed(123)  # the same initial weights; the training's randomness comes from ``seed`` only
    model = LPN(1, hidden=8, layers=1)
    stages = options.pop("stages", [Stage("l2", 40, 1e-2), Stage("pm", 20, 1e-3, 0.5)])
    losses = train_lpn(model, laplace_sampler(), sigma=1.0, stages=stages, batch_size=64, seed=seed, **options)
    return model, losses


def test_constraint_holds_and_loss_decreases() -> None:
    model, losses = _train()
    assert model.convexity_violation() == 0.0
    assert len(losses) == 60 and sum(losses[30:40]) < 0.7 * sum(losses[:10])
    grid = torch.linspace(-4, 4, 101).unsqueeze(1)
    with torch.no_grad():
        assert (model(grid).diff(dim=0) >= 0).all()


def test_seeded_and_progress() -> None:
    events: list[ProgressEvent] = []
    first, losses = _train(seed=3, progress=events.append)
    second, again = _train(seed=3)
    _, different = _train(seed=4)
    assert losses == again and losses != different
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    assert [event.step for event in events[:-1]] == list(range(1, 61)) and events[-1].done
    assert events[45].metrics["gamma"] == 0.5 and events[0].metrics["gamma"] == 0.0


def test_antithetic_batches_are_symmetric(monkeypatch) -> None:
    """antithetic=True: every step sees (x, y) and (-x, -y) (half the batch drawn)."""
    seen: list[torch.Tensor] = []
    original = training.potential_and_gradient

    def record(model, y, create_graph):
        seen.append(y.detach().clone())
        return original(model, y, create_graph)

    monkeypatch.setattr(training, "potential_and_gradient", record)
    _train(antithetic=True, stages=[Stage("l1", 2, 1e-3)])
    assert len(seen) == 2 and all(torch.equal(y[32:], -y[:32]) for y in seen)
