"""Bad input gives gradhub errors that name the method, the parameter and the value."""

from __future__ import annotations

import pytest
import torch
from gradhub_harpg.gpomdp import gpomdp_surrogate
from gradhub_harpg.harpg import HARPG, NHARPG
from gradhub_harpg.npg_igt import NPGIGT

import gradhub


@pytest.mark.parametrize(
    ("cls", "name", "value"),
    [
        (NPGIGT, "lr", -1.0),
        (NPGIGT, "eta", 0.0),
        (NPGIGT, "eta", 1.5),
        (NPGIGT, "eta_schedule", "cosine"),
        (HARPG, "lr_schedule", "linear"),
        (HARPG, "seed", -1),
        (NHARPG, "eps", -1e-3),
    ],
)
def test_bad_hyperparameters(cls, name: str, value: object) -> None:
    with pytest.raises(gradhub.HyperparameterError, match=rf"{cls.method}: invalid {name}="):
        cls([torch.zeros(2, requires_grad=True)], **{name: value})


@pytest.mark.parametrize("cls", [NPGIGT, HARPG, NHARPG])
def test_step_needs_closure(cls) -> None:
    optimizer = cls([torch.zeros(2, requires_grad=True)])
    with pytest.raises(gradhub.UnsupportedInputError, match=rf"{cls.method}: .*closure"):
        optimizer.step()


@pytest.mark.parametrize("cls", [NPGIGT, HARPG])
@pytest.mark.parametrize("output", [1.0, ("loss",), (torch.zeros(()), 3), (torch.zeros(2), None)])
def test_bad_closure_output(cls, output) -> None:
    theta = torch.zeros(2, requires_grad=True)
    optimizer = cls([theta])
    with pytest.raises(gradhub.UnsupportedInputError, match=rf"{cls.method}: unsupported closure output"):
        optimizer.step(lambda: output)
    assert torch.equal(theta.detach(), torch.zeros(2)) and not any(optimizer.state.values())


def test_gpomdp_errors() -> None:
    good = torch.zeros(3)
    with pytest.raises(gradhub.HyperparameterError, match=r"gpomdp_surrogate: invalid gamma=1\.5"):
        gpomdp_surrogate(good, good, 1.5)
    with pytest.raises(gradhub.UnsupportedInputError, match=r"gpomdp_surrogate: unsupported shapes.*\(3,\).*\(4,\)"):
        gpomdp_surrogate(good, torch.zeros(4), 0.9)
    with pytest.raises(gradhub.UnsupportedInputError, match="shape \\[H\\]"):
        gpomdp_surrogate(torch.zeros(2, 3), torch.zeros(2, 3), 0.9)
    with pytest.raises(gradhub.UnsupportedInputError, match="gpomdp_surrogate: unsupported dtypes"):
        gpomdp_surrogate(torch.zeros(3, dtype=torch.long), good, 0.9)


@pytest.mark.parametrize("cls", [NPGIGT, HARPG, NHARPG])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_gradient_is_refused_and_nothing_changes(cls, bad: float) -> None:
    """A normalised step would put one NaN into every parameter (torch.optim.Adam: only its own entry);
    all three refuse it before anything changes, and the next finite step goes on from where they were."""
    theta = torch.nn.Parameter(torch.tensor([0.5, -1.0, 2.0]))
    optimizer = cls([theta], lr=0.1)
    poisoned = [False]

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = (theta**2).sum()
        loss.backward()
        if poisoned[0]:
            theta.grad[1] = bad
        return loss

    for _ in range(2):
        optimizer.step(closure)
    before = theta.detach().clone()
    state = {key: value.clone() if torch.is_tensor(value) else value for key, value in optimizer.state[theta].items()}
    poisoned[0] = True
    with pytest.raises(gradhub.UnsupportedInputError, match=rf"{cls.method}: unsupported gradient values: 1 of 3"):
        optimizer.step(closure)
    assert torch.equal(theta.detach(), before)
    assert optimizer.state[theta].keys() == state.keys()
    for key, value in state.items():
        now = optimizer.state[theta][key]
        assert torch.equal(now, value) if torch.is_tensor(value) else now == value, key
    poisoned[0] = False
    optimizer.step(closure)
    assert torch.isfinite(theta).all() and not torch.equal(theta.detach(), before)
