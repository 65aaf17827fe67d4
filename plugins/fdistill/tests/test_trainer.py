"""FDistillTrainer on a Gaussian teacher: it distils, records, reports progress, checkpoints, and touches only
what it trains."""

from __future__ import annotations

import io

import pytest
import torch
from gradhub_diffusion.gmm import GaussianMixture
from gradhub_fdistill.loss import FDistillLoss
from gradhub_fdistill.trainer import FDistillTrainer
from torch import nn

from gradhub.claims import single_thread
from gradhub.errors import HyperparameterError, UnsupportedInputError
from gradhub.progress import ProgressEvent

TEACHER_MEAN = torch.tensor([2.0, -1.0])


class GaussianGenerator(nn.Module):
    """One-step student x = mean + std * z, fed x_T = 80 z at t = 80 (EDM path)."""

    def __init__(self) -> None:
        super().__init__()
        self.mean = nn.Parameter(torch.zeros(2))
        self.log_std = nn.Parameter(torch.zeros(2))

    def forward(self, x_T: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.mean + self.log_std.exp() * x_T / t[:, None]


class GaussianDenoiser(nn.Module):
    """Fake score: the exact x0 predictor of a Gaussian N(mean, std^2), with learnable mean and std."""

    def __init__(self) -> None:
        super().__init__()
        self.mean = nn.Parameter(torch.zeros(2))
        self.log_std = nn.Parameter(torch.zeros(2))

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        variance = (2 * self.log_std).exp()
        return self.mean + variance / (variance + t[:, None] ** 2) * (x_t - self.mean)


class Critic(nn.Module):
    """Discriminator logit from (x, x^2, log sigma)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(5, 32), nn.SiLU(), nn.Linear(32, 1))

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x_t, x_t.square(), t[:, None].log()], 1)).squeeze(1)


def teacher() -> GaussianMixture:
    return GaussianMixture(TEACHER_MEAN[None].clone(), 0.5)


def make_trainer(seed: int = 0, **options) -> FDistillTrainer:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        networks = GaussianGenerator(), GaussianDenoiser(), Critic()
    adam = lambda parameters: torch.optim.Adam(parameters, lr=2e-2)  # noqa: E731
    options = {
        "t_range": (0.05, 3.0),
        "student_optimizer": adam,
        "fake_optimizer": adam,
        "discriminator_optimizer": adam,
        "generator": torch.Generator().manual_seed(seed),
        **options,
    }
    student, fake, critic = networks
    return FDistillTrainer(student, teacher().denoiser, fake, critic, "edm", **options)


DATA = teacher().sample(2048, torch.Generator().manual_seed(1))


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks: one intra-op thread (as the claim checks run), much faster on a busy 2-core machine."""
    with single_thread():
        yield


def distilled_distance(trainer: FDistillTrainer, steps: int = 150) -> float:
    trainer.train(DATA, steps=steps, batch_size=128)
    return (trainer.student.mean.detach() - TEACHER_MEAN).norm().item()


def test_js_trainer_distils_the_teacher_and_records_history():
    trainer = make_trainer()
    start = (trainer.student.mean.detach() - TEACHER_MEAN).norm().item()
    history = trainer.train(DATA, steps=150, batch_size=128)
    distance = (trainer.student.mean.detach() - TEACHER_MEAN).norm().item()
    assert start > 2.2 and distance < 0.5  # measured 0.30 (from 2.24)
    assert ((trainer.student.log_std.exp() - 0.5).abs() < 0.3).all()  # measured (0.50, 0.63) against 0.5
    for name in (
        "divergence_loss",
        "gan_loss_gen",
        "h_min",
        "h_mean",
        "h_max",
        "fake_score_loss",
        "discriminator_loss",
    ):
        values = getattr(history, name)
        assert values.shape == (150,) and torch.isfinite(values).all(), name
    torch.testing.assert_close(history.h_mean, torch.ones(150), rtol=1e-5, atol=0)  # h divided by its batch mean
    assert (history.h_max > history.h_min).all()


class SwappedLoss(FDistillLoss):
    """A wrong student loss: teacher and fake predictions exchanged (the score difference reversed)."""

    def forward(self, x_gen, teacher_x0, fake_x0, disc_logits, t=None):
        return super().forward(x_gen, fake_x0, teacher_x0, disc_logits, t)


def test_wrong_student_loss_fails_the_same_criterion():
    trainer = make_trainer()
    trainer.loss = SwappedLoss(t_range=trainer.t_range)
    assert distilled_distance(trainer) > 2.0


def test_each_step_trains_only_its_networks():
    trainer = make_trainer(fake_updates_per_student=2)
    batch = DATA[:64]

    def snapshot(module):
        return [p.detach().clone() for p in module.parameters()]

    student, fake, critic = snapshot(trainer.student), snapshot(trainer.fake_score), snapshot(trainer.discriminator)
    record = trainer.critic_step(batch)
    assert set(record) == {"fake_score_loss", "discriminator_loss"}
    assert all(torch.equal(a, b) for a, b in zip(student, trainer.student.parameters()))
    assert not any(torch.equal(a, b) for a, b in zip(fake, trainer.fake_score.parameters()))
    fake, critic = snapshot(trainer.fake_score), snapshot(trainer.discriminator)
    critic_grads = [p.grad.clone() for p in trainer.discriminator.parameters()]
    trainer.student_step(batch)
    assert not any(torch.equal(a, b) for a, b in zip(student, trainer.student.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(fake, trainer.fake_score.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(critic, trainer.discriminator.parameters()))
    assert all(torch.equal(g, p.grad) for g, p in zip(critic_grads, trainer.discriminator.parameters()))
    history = trainer.train(DATA, steps=3, batch_size=16)
    assert history.fake_score_loss.shape == (6,) and history.divergence_loss.shape == (3,)


def test_progress_reported_and_silent_without(capsys):
    events: list[ProgressEvent] = []
    listened = make_trainer().train(DATA, steps=4, batch_size=16, progress=events.append)
    assert [event.step for event in events if not event.done] == [1, 2, 3, 4] and events[-1].done
    silent = make_trainer().train(DATA, steps=4, batch_size=16)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    assert torch.equal(listened.divergence_loss, silent.divergence_loss)


def test_checkpoint_round_trip_resumes_exactly():
    first = make_trainer()
    first.train(DATA, steps=5, batch_size=32)
    assert not torch.equal(first.loss.bins, torch.ones(10))
    saved = io.BytesIO()
    torch.save(first.state_dict(), saved)  # a real checkpoint (an optimizer's loaded state aliases the saved one)
    saved.seek(0)
    second = make_trainer(seed=3)
    second.load_state_dict(torch.load(saved, weights_only=True))
    for trainer in (first, second):
        trainer.generator.manual_seed(7)
        trainer.train(DATA, steps=3, batch_size=32)
    for a, b in zip(
        [*first.student.parameters(), *first.discriminator.parameters(), first.loss.bins],
        [*second.student.parameters(), *second.discriminator.parameters(), second.loss.bins],
    ):
        assert torch.equal(a, b)


def test_one_step_generation_matches_the_sampler():
    from gradhub_fdistill.sampler import fdistill_sampler

    trainer = make_trainer()
    z = torch.randn(8, 2)
    result = fdistill_sampler(trainer.student, 80 * z, [80.0, 0.0])
    with torch.no_grad():
        trainer.generator.manual_seed(11)
        generated = trainer.generate(8, DATA)
    expected = fdistill_sampler(
        trainer.student, 80 * torch.randn(8, 2, generator=torch.Generator().manual_seed(11)), [80.0, 0.0]
    )
    torch.testing.assert_close(generated, expected.samples, rtol=1e-6, atol=1e-6)
    assert result.evaluations == 1


@pytest.mark.parametrize(
    ("options", "error", "pattern"),
    [
        ({"gan_weight_gen": -1.0}, HyperparameterError, "gan_weight_gen"),
        ({"gan_weight_gen": float("nan")}, HyperparameterError, "gan_weight_gen"),
        ({"fake_updates_per_student": 0}, HyperparameterError, "fake_updates_per_student"),
        ({"t_range": (0.0, 100.0)}, HyperparameterError, "t_range"),
        ({"t_range": (2.0, 1.0)}, HyperparameterError, "t_range"),
        ({"divergence": "tv"}, HyperparameterError, "divergence"),
        ({"ratio_clip": (5.0, 1.0)}, HyperparameterError, "ratio_clip"),
        ({"time_sampler": 3}, UnsupportedInputError, "time_sampler"),
    ],
)
def test_bad_options(options, error, pattern):
    with pytest.raises(error, match=pattern):
        make_trainer(**options)


def test_bad_networks_and_arguments():
    adam = lambda parameters: torch.optim.Adam(parameters)  # noqa: E731
    with pytest.raises(UnsupportedInputError, match=r"fdistill_trainer.*student.*nn.Module"):
        FDistillTrainer(lambda x, t: x, teacher().denoiser, GaussianDenoiser(), Critic(), student_optimizer=adam)
    with pytest.raises(UnsupportedInputError, match=r"fdistill_trainer.*teacher"):
        FDistillTrainer(GaussianGenerator(), None, GaussianDenoiser(), Critic())
    with pytest.raises(HyperparameterError, match=r"gaussian_path.*kind"):
        FDistillTrainer(GaussianGenerator(), teacher().denoiser, GaussianDenoiser(), Critic(), "cosine")
    trainer = make_trainer()
    with pytest.raises(HyperparameterError, match=r"fdistill_trainer.*steps"):
        trainer.train(DATA, steps=0, batch_size=4)
    with pytest.raises(UnsupportedInputError, match=r"fdistill_trainer.*batch"):
        trainer.student_step([1.0, 2.0])
