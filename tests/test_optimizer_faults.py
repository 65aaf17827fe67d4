"""Optimizer state that cannot be corrupted (issue 11): validated when it changes, checked when loaded,
and a step that raises changes nothing. Run on the first-party optimizers through the public API."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import gradhub
from gradhub.errors import HyperparameterError, UnsupportedInputError


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))


def _trained(name: str, steps: int = 2, **hparams: object) -> tuple[nn.Module, torch.optim.Optimizer]:
    model = _model()
    optimizer = gradhub.get(name)(model.parameters(), **({"lr": 0.01} | hparams))
    data = torch.randn(8, 4, generator=torch.Generator().manual_seed(1))
    for _ in range(steps):
        optimizer.zero_grad()
        model(data).square().mean().backward()
        optimizer.step()
    return model, optimizer


def _snapshot(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[list[torch.Tensor], dict]:
    return [p.detach().clone() for p in model.parameters()], copy.deepcopy(optimizer.state_dict())


def _assert_unchanged(before: tuple[list[torch.Tensor], dict], model: nn.Module, optimizer: torch.optim.Optimizer):
    params, state = before
    assert all(torch.equal(a, b) for a, b in zip(params, model.parameters())), "parameters changed"
    now = optimizer.state_dict()
    assert now["param_groups"] == state["param_groups"], "param groups changed"
    for key, saved in state["state"].items():
        for name, value in saved.items():
            current = now["state"][key][name]
            same = torch.equal(current, value) if isinstance(value, torch.Tensor) else current == value
            assert same, f"state {name!r} of parameter {key} changed"


ELEMENTWISE = ["adamp", "sgdp", "diffgrad"]


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_a_negative_lr_set_in_param_groups_is_caught_before_the_step(name: str) -> None:
    model, optimizer = _trained(name)
    optimizer.param_groups[0]["lr"] = -1.0
    before = _snapshot(model, optimizer)
    model(torch.ones(1, 4)).sum().backward()
    with pytest.raises(HyperparameterError, match=rf"^{name}: invalid lr=-1.0; lr must be a finite number >= 0"):
        optimizer.step()
    _assert_unchanged(before, model, optimizer)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_a_negative_lr_in_a_loaded_state_is_refused_before_anything_changes(name: str) -> None:
    model, optimizer = _trained(name)
    state = copy.deepcopy(optimizer.state_dict())
    state["param_groups"][0]["lr"] = -1.0
    state["param_groups"][0]["bogus_extra_key"] = 3
    before = _snapshot(model, optimizer)
    with pytest.raises(HyperparameterError, match=rf"^{name}: invalid lr=-1.0"):
        optimizer.load_state_dict(state)
    _assert_unchanged(before, model, optimizer)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_a_torch_sgd_state_is_named_as_such(name: str) -> None:
    model, optimizer = _trained(name)
    other = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(1, 4)).sum().backward()
    other.step()
    before = _snapshot(model, optimizer)
    foreign = other.state_dict()
    foreign["param_groups"][0] = {**optimizer.state_dict()["param_groups"][0]}
    with pytest.raises(UnsupportedInputError, match=r"this state was saved by torch\.optim\.SGD") as caught:
        optimizer.load_state_dict(foreign)
    assert str(caught.value).startswith(f"{name}:")
    _assert_unchanged(before, model, optimizer)


def test_a_state_missing_a_tensor_is_refused_at_load() -> None:
    model, optimizer = _trained("adamp")
    state = copy.deepcopy(optimizer.state_dict())
    del state["state"][0]["exp_avg_sq"]
    before = _snapshot(model, optimizer)
    with pytest.raises(UnsupportedInputError, match=r"adamp: .*state of parameter 0.*missing \['exp_avg_sq'\]"):
        optimizer.load_state_dict(state)
    _assert_unchanged(before, model, optimizer)


def test_a_wrong_shaped_state_tensor_is_refused_at_load() -> None:
    _, optimizer = _trained("diffgrad")
    state = copy.deepcopy(optimizer.state_dict())
    state["state"][0]["exp_avg"] = torch.zeros(5)
    with pytest.raises(
        UnsupportedInputError, match=r"diffgrad: .*state 'exp_avg' of parameter 0.*shape \(5,\).*\(3, 4\)"
    ):
        optimizer.load_state_dict(state)


def test_a_step_on_a_corrupted_state_raises_and_changes_nothing() -> None:
    """State edited by hand past load_state_dict: the step checks it first, step counters included."""
    model, optimizer = _trained("adamp")
    first = next(iter(optimizer.state.values()))
    del first["exp_avg_sq"]
    before = [p.detach().clone() for p in model.parameters()]
    steps = [state.get("step") for state in optimizer.state.values()]
    model(torch.ones(1, 4)).sum().backward()
    with pytest.raises(UnsupportedInputError, match=r"adamp: .*missing \['exp_avg_sq'\]"):
        optimizer.step()
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert [state.get("step") for state in optimizer.state.values()] == steps


@pytest.mark.parametrize(("name", "dtype"), [("adamp", torch.float16), ("diffgrad", torch.float16)])
def test_undeclared_dtypes_are_refused_at_construction(name: str, dtype: torch.dtype) -> None:
    spec = gradhub.spec(name)
    assert str(dtype).removeprefix("torch.") not in spec.dtypes
    weight = nn.Parameter(torch.zeros(3, dtype=dtype))
    with pytest.raises(
        UnsupportedInputError, match=rf"^{name}: .*parameter 0 .*dtype torch\.{str(dtype)[6:]}"
    ) as caught:
        gradhub.get(name)([weight], lr=0.1)
    assert all(declared in str(caught.value) for declared in spec.dtypes)


def test_a_first_step_that_fails_leaves_no_state_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model()
    optimizer = gradhub.get("diffgrad")(model.parameters(), lr=0.1, foreach=False)

    def broken(*args: object) -> None:
        raise RuntimeError("kernel failed")

    monkeypatch.setattr(type(optimizer), "single_tensor", staticmethod(broken))
    model(torch.ones(1, 4)).sum().backward()
    with pytest.raises(RuntimeError, match="kernel failed"):
        optimizer.step()
    assert len(optimizer.state) == 0


def test_compare_with_names_the_first_step_that_differs() -> None:
    from gradhub.testing import compare_with

    model = _model().double()
    untouched = [p.detach().clone() for p in model.parameters()]
    data = torch.randn(8, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))

    def loss(net: nn.Module) -> torch.Tensor:
        return net(data).square().mean()

    compare_with(
        torch.optim.SGD,
        torch.optim.SGD,
        model=model,
        loss=loss,
        hparams={"lr": 0.1, "momentum": 0.9},
        state={"momentum_buffer": "momentum_buffer"},
        steps=5,
        atol=0,
    )
    off_by_a_little = lambda groups, **hparams: torch.optim.SGD(groups, lr=hparams["lr"] * (1 + 1e-6))  # noqa: E731
    with pytest.raises(AssertionError, match=r"^step 1, parameter 0: ours differs from the reference by up to"):
        compare_with(torch.optim.SGD, off_by_a_little, model=model, loss=loss, hparams={"lr": 0.1}, steps=3)
    assert all(torch.equal(a, b) for a, b in zip(untouched, model.parameters())), "the caller's model was trained"


@pytest.mark.parametrize("name", [*ELEMENTWISE, "mfac"])
def test_a_state_loads_again_after_a_load_a_deepcopy_or_a_pickle(name: str) -> None:
    """torch's __setstate__ (every load, deepcopy and unpickling) adds keys such as `differentiable` to
    `defaults`; the next load must not read them as unknown hyperparameters (accelerate loads twice)."""
    import pickle

    _model, optimizer = _trained(name)
    state = copy.deepcopy(optimizer.state_dict())
    optimizer.load_state_dict(state)
    optimizer.load_state_dict(state)
    copy.deepcopy(optimizer).load_state_dict(state)
    pickle.loads(pickle.dumps(optimizer)).load_state_dict(state)
    assert "differentiable" in optimizer.defaults  # what torch added, and what the loads above survived
