"""The mean teacher's update teacher <- m teacher + (1 - m) student, exactly, and its momentum schedule."""

from __future__ import annotations

from unittest import mock

import pytest
import torch
from gradhub_rmt.ema import ema_update, mean_teacher_ema
from torch import nn

from gradhub.errors import HyperparameterError, UnsupportedInputError


def _pair(seed: int = 0, dtype: torch.dtype = torch.float64) -> tuple[nn.Module, nn.Module]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        student = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)).to(dtype)
        teacher = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)).to(dtype)
    teacher.requires_grad_(False)
    return teacher, student


def _swapped_ema(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """Wrong: momentum on the student, 1 - momentum on the teacher."""
    ema_update(teacher, student, 1.0 - momentum)


@pytest.mark.parametrize(
    ("update", "passes"), [(ema_update, True), (_swapped_ema, False)], ids=["implemented", "wrong-swapped"]
)
def test_ema_is_the_formula(update, passes: bool) -> None:
    teacher, student = _pair()
    before = [t.clone() for t in teacher.parameters()]
    update(teacher, student, 0.9)
    expected = [0.9 * t + (1 - 0.9) * s for t, s in zip(before, student.parameters())]
    # One rounding step apart at most (a fused multiply-add may round once instead of twice).
    agree = all(torch.allclose(t, e, rtol=1e-15, atol=1e-16) for t, e in zip(teacher.parameters(), expected))
    assert agree is passes


def test_momentum_zero_copies_the_student_and_one_keeps_the_teacher() -> None:
    """(c) exactly, bit for bit."""
    teacher, student = _pair()
    ema_update(teacher, student, 0.0)
    assert all(torch.equal(t, s) for t, s in zip(teacher.parameters(), student.parameters()))
    teacher, student = _pair(seed=1)
    before = [t.clone() for t in teacher.parameters()]
    ema_update(teacher, student, 1.0)
    assert all(torch.equal(t, b) for t, b in zip(teacher.parameters(), before))


def test_ema_leaves_buffers_and_the_student_alone() -> None:
    teacher, student = _pair()
    student_before = [s.clone() for s in student.state_dict().values()]
    buffers_before = [b.clone() for b in teacher.buffers()]
    ema_update(teacher, student, 0.5)
    assert all(torch.equal(a, b) for a, b in zip(student.state_dict().values(), student_before))
    assert all(torch.equal(a, b) for a, b in zip(teacher.buffers(), buffers_before))


def test_ema_is_one_foreach_pass_per_device_and_dtype() -> None:
    """Vectorised: one _foreach_mul_ and one _foreach_add_ per (device, dtype) group, whatever the parameter count."""
    teacher, student = _pair()
    mixed_teacher = [*teacher.parameters(), torch.zeros(3, dtype=torch.float32)]
    mixed_student = [*student.parameters(), torch.ones(3, dtype=torch.float32)]
    with mock.patch("torch._foreach_add_", wraps=torch._foreach_add_) as adds:
        ema_update(mixed_teacher, mixed_student, 0.25)
    assert adds.call_count == 2
    torch.testing.assert_close(mixed_teacher[-1], torch.full((3,), 0.75))


def test_ema_on_tensor_lists_returns_the_teacher() -> None:
    teacher, student = [torch.zeros(2)], [torch.ones(2)]
    assert ema_update(teacher, student, momentum=0.75) is teacher
    torch.testing.assert_close(teacher[0], torch.full((2,), 0.25))


@pytest.mark.parametrize("momentum", [-0.1, 1.5, float("nan")])
def test_momentum_outside_unit_interval_is_an_error(momentum: float) -> None:
    teacher, student = _pair()
    with pytest.raises(HyperparameterError, match="momentum"):
        ema_update(teacher, student, momentum)
    with pytest.raises(HyperparameterError, match="momentum"):
        mean_teacher_ema(0, momentum=momentum)


def test_mismatched_teacher_is_an_error() -> None:
    teacher, student = _pair()
    with pytest.raises(UnsupportedInputError, match="teacher must be a copy of the student"):
        ema_update(list(teacher.parameters())[:-1], student, 0.9)
    with pytest.raises(UnsupportedInputError, match="shape, dtype and device"):
        ema_update([torch.zeros(2)], [torch.zeros(3)], 0.9)
    with pytest.raises(UnsupportedInputError, match="floating-point"):
        ema_update([torch.zeros(2, dtype=torch.long)], [torch.zeros(2, dtype=torch.long)], 0.9)


def test_momentum_schedule_is_the_official_constant() -> None:
    assert [mean_teacher_ema(step) for step in range(3)] == [0.999] * 3
    assert mean_teacher_ema(10, momentum=0.9) == 0.9
    with pytest.raises(UnsupportedInputError, match="step"):
        mean_teacher_ema(-1)
    with pytest.raises(UnsupportedInputError, match="step"):
        mean_teacher_ema(1.5)
