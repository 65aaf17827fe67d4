"""Faults found by an adversarial tester (issue 11): non-finite gradients, momentum switched on mid-run,
torch.distributed.checkpoint round trips (and 0.2.0 state dicts), half-precision parameters."""

from __future__ import annotations

import copy
import io
import warnings

import pytest
import torch
from gradhub_mfac.optimizer import MFAC
from torch import nn
from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict

import gradhub

HPARAMS = {"lr": 0.05, "momentum": 0.5, "weight_decay": 0.01, "ngrads": 3, "damp": 1e-2}


def gradients(count: int, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(9, generator=generator, dtype=torch.float64) for _ in range(count)]


def two_params() -> tuple[nn.Parameter, nn.Parameter]:
    generator = torch.Generator().manual_seed(1)
    return (
        nn.Parameter(torch.randn(2, 2, generator=generator, dtype=torch.float64)),
        nn.Parameter(torch.randn(5, generator=generator, dtype=torch.float64)),
    )


def set_gradients(params: tuple[nn.Parameter, ...], g: torch.Tensor) -> None:
    params[0].grad, params[1].grad = g[:4].view(2, 2).clone(), g[4:].clone()


def tensors_of(state: dict) -> list[torch.Tensor]:
    """Every tensor and number of an optimizer's state, in a fixed order."""
    values = []
    for key in sorted(state, key=str):
        for name in sorted(state[key]):
            value = state[key][name]
            values.append(value.clone() if isinstance(value, torch.Tensor) else value)
    return values


def assert_identical(a: list, b: list) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        if isinstance(x, torch.Tensor):
            assert torch.equal(x, y), (x, y)
        else:
            assert x == y


# --- 1. a non-finite gradient skips the step --------------------------------------------------------------


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nonfinite_gradient_skips_the_step_and_is_counted(foreach: bool, bad: float) -> None:
    """Before: one NaN in one gradient put NaN in every parameter of the group and in its window for good."""
    params, clean = two_params(), two_params()
    optimizer = MFAC(list(params), foreach=foreach, **HPARAMS)
    reference = MFAC(list(clean), foreach=foreach, **HPARAMS)
    grads = gradients(6)
    for g in grads[:2]:
        set_gradients(params, g)
        set_gradients(clean, g)
        optimizer.step()
        reference.step()
    before_params = [p.detach().clone() for p in params]
    before_state = tensors_of(optimizer.state)
    poisoned = grads[2].clone()
    poisoned[6] = bad  # parameter 1 of param group 0
    set_gradients(params, poisoned)
    with pytest.warns(RuntimeWarning, match=r"mfac: step 3 skipped: the gradient of parameter 1 of param group 0"):
        optimizer.step()
    assert all(torch.equal(p.detach(), q) for p, q in zip(params, before_params))
    assert optimizer.state["mfac group 0"]["skipped_steps"] == 1
    optimizer.state["mfac group 0"]["skipped_steps"] = 0
    assert_identical(tensors_of(optimizer.state), before_state)  # every state tensor unchanged
    optimizer.state["mfac group 0"]["skipped_steps"] = 1
    set_gradients(params, poisoned)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once per optimizer
        optimizer.step()
    assert optimizer.state["mfac group 0"]["skipped_steps"] == 2
    for g in grads[2:]:  # the skipped steps change nothing: the run equals one that never saw them
        set_gradients(params, g)
        set_gradients(clean, g)
        optimizer.step()
        reference.step()
    assert all(torch.equal(p.detach(), q.detach()) for p, q in zip(params, clean))
    assert torch.isfinite(optimizer.state["mfac group 0"]["gram"]).all()


def test_skipped_steps_are_saved_and_loaded() -> None:
    params = two_params()
    optimizer = MFAC(list(params), **HPARAMS)
    set_gradients(params, torch.full((9,), float("nan"), dtype=torch.float64))
    with pytest.warns(RuntimeWarning, match="mfac: step 1 skipped"):
        optimizer.step()
    assert optimizer.state["mfac group 0"]["skipped_steps"] == 1 and not optimizer.state[params[0]]
    early = MFAC(list(two_params()), **HPARAMS)
    early.load_state_dict(round_trip(optimizer.state_dict()))  # saved before any step was taken
    assert early.state["mfac group 0"] == {"step": 0, "skipped_steps": 1}
    set_gradients(params, gradients(1)[0])
    optimizer.step()
    saved = optimizer.state_dict()
    assert saved["state"][0]["group_skipped_steps"] == 1 and saved["state"][0]["group_step"] == 1
    fresh = MFAC(list(two_params()), **HPARAMS)
    fresh.load_state_dict(round_trip(saved))
    assert fresh.state["mfac group 0"]["skipped_steps"] == 1 and fresh.state["mfac group 0"]["step"] == 1


def test_finiteness_is_checked_once_per_step_over_all_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    """One host synchronisation per step: one bool() over the stacked per-tensor flags of every group."""
    import gradhub_mfac.optimizer as module

    calls = []
    original = module._all_finite
    monkeypatch.setattr(module, "_all_finite", lambda tensors: calls.append(len(tensors)) or original(tensors))
    first, second = two_params()
    optimizer = MFAC([{"params": [first]}, {"params": [second], "lr": 0.01}], **HPARAMS)
    synced = []
    real_bool = torch.Tensor.__bool__
    monkeypatch.setattr(torch.Tensor, "__bool__", lambda self: synced.append(1) or real_bool(self))
    for g in gradients(3):
        set_gradients((first, second), g)
        optimizer.step()
    assert calls == [2, 2, 2] and len(synced) == 3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("foreach", [False, True])
def test_one_host_sync_per_step_on_cuda(foreach: bool) -> None:
    params = [nn.Parameter(torch.randn(64, 32, device="cuda")), nn.Parameter(torch.randn(32, device="cuda"))]
    optimizer = MFAC(params, foreach=foreach, **HPARAMS)
    for p in params:
        p.grad = torch.randn_like(p)
    optimizer.step()  # allocations
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            optimizer.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    assert len(syncs) == 1, [str(w.message) for w in caught]


# --- 2. momentum switched on after the first step ---------------------------------------------------------


def dense_run(
    grads: list[torch.Tensor], start: torch.Tensor, momenta: list[float], ngrads: int, damp: float, lr: float
):
    """Dense reference; the momentum buffer starts at zero the first step momentum is on, then is kept."""
    window = torch.zeros(ngrads, start.numel(), dtype=torch.float64)
    weights, buffer = start.clone(), None
    for step, (g, momentum) in enumerate(zip(grads, momenta)):
        window[step % ngrads] = g
        update = torch.linalg.solve(
            damp * torch.eye(start.numel(), dtype=torch.float64) + window.T @ window / ngrads, g
        )
        if momentum > 0:
            buffer = torch.zeros_like(update) if buffer is None else buffer
            buffer = momentum * buffer + (1 - momentum) * update
            update = buffer
        weights = weights - lr * update
    return weights


def test_momentum_switched_on_later_works_on_both_paths_and_they_agree() -> None:
    """Before: the multi-tensor path crashed (_foreach_mul_ on an empty list), the per-tensor path ignored it."""
    momenta = [0.0, 0.0, 0.9, 0.9, 0.0, 0.5, 0.5]  # on after two steps, off, on again (the buffer is kept)
    grads = gradients(len(momenta), seed=2)
    results = []
    for foreach in (False, True):
        params = two_params()
        start = torch.cat([p.detach().reshape(-1) for p in params])
        optimizer = MFAC(list(params), lr=0.05, momentum=0.0, ngrads=3, damp=1e-2, foreach=foreach)
        for g, momentum in zip(grads, momenta):
            optimizer.param_groups[0]["momentum"] = momentum
            set_gradients(params, g)
            optimizer.step()
        results.append(torch.cat([p.detach().reshape(-1) for p in params]))
        assert set(optimizer.state[params[0]]) == {"gradient_window", "momentum_buffer"}
    assert torch.equal(results[0], results[1])
    expected = dense_run(grads, start, momenta, ngrads=3, damp=1e-2, lr=0.05)
    torch.testing.assert_close(results[0], expected, rtol=1e-10, atol=1e-12)


# --- 3. torch.distributed.checkpoint and the 0.2.0 layout -------------------------------------------------


def round_trip(value: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def model_and_optimizer(foreach: bool = True):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2)).double()
    optimizer = MFAC(
        [{"params": list(model[0].parameters())}, {"params": list(model[2].parameters()), "lr": 0.02}],
        foreach=foreach,
        **HPARAMS,
    )
    return model, optimizer


def train(model: nn.Module, optimizer: MFAC, steps: range) -> None:
    for step in steps:
        generator = torch.Generator().manual_seed(step)
        inputs = torch.randn(8, 4, generator=generator, dtype=torch.float64)
        optimizer.zero_grad()
        model(inputs).square().mean().backward()
        optimizer.step()


def resumed(save, load, total: int = 7, first: int = 4) -> None:
    """``total`` steps equal ``first`` steps + save + load into a fresh optimizer + the rest, bit for bit."""
    straight, straight_optimizer = model_and_optimizer()
    train(straight, straight_optimizer, range(total))
    model, optimizer = model_and_optimizer()
    train(model, optimizer, range(first))
    saved = save(model, optimizer)
    weights = copy.deepcopy(model.state_dict())
    fresh_model, fresh_optimizer = model_and_optimizer()
    fresh_model.load_state_dict(weights)
    load(fresh_model, fresh_optimizer, saved)
    train(fresh_model, fresh_optimizer, range(first, total))
    for a, b in zip(straight.parameters(), fresh_model.parameters()):
        assert torch.equal(a.detach(), b.detach())


def test_distributed_checkpoint_state_dict_round_trip() -> None:
    """Before: get_optimizer_state_dict raised KeyError('mfac group 0') (a state key that is no parameter)."""

    def save(model, optimizer):
        saved = get_optimizer_state_dict(model, optimizer)
        assert set(saved["state"]) == {"0.weight", "0.bias", "2.weight", "2.bias"}
        assert {"group_gram", "group_step", "group_skipped_steps"} <= set(saved["state"]["2.weight"])
        return round_trip(saved)

    resumed(save, lambda model, optimizer, saved: set_optimizer_state_dict(model, optimizer, saved))


def test_distributed_checkpoint_save_and_load(tmp_path) -> None:
    """The DCP flow: dcp.save of get_optimizer_state_dict, dcp.load into a fresh one's, set_optimizer_state_dict."""
    import torch.distributed.checkpoint as dcp

    def save(model, optimizer):
        dcp.save({"optimizer": get_optimizer_state_dict(model, optimizer)}, checkpoint_id=tmp_path)

    def load(model, optimizer, _):
        target = {"optimizer": get_optimizer_state_dict(model, optimizer)}  # a fresh optimizer's shapes
        dcp.load(target, checkpoint_id=tmp_path)
        set_optimizer_state_dict(model, optimizer, target["optimizer"])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # DCP notes that no process group is initialised
        resumed(save, load)


def test_plain_state_dict_round_trip_is_exact() -> None:
    resumed(
        lambda model, optimizer: round_trip(optimizer.state_dict()),
        lambda model, optimizer, saved: optimizer.load_state_dict(saved),
    )


def as_0_2_0(optimizer: MFAC) -> dict:
    """The state_dict layout gradhub-mfac 0.2.0 saved: a "mfac group <i>" key with gram and step per group."""
    ids = {id(p): i for i, p in enumerate(p for group in optimizer.param_groups for p in group["params"])}
    state = {ids[id(key)]: dict(value) for key, value in optimizer.state.items() if isinstance(key, torch.Tensor)}
    for key, value in optimizer.state.items():
        if isinstance(key, str):
            state[key] = {"gram": value["gram"], "step": value["step"]}
    groups = [
        {**{k: v for k, v in g.items() if k != "params"}, "params": [ids[id(p)] for p in g["params"]]}
        for g in optimizer.param_groups
    ]
    return {"state": state, "param_groups": groups}


def test_state_dicts_saved_by_0_2_0_still_load() -> None:
    resumed(
        lambda model, optimizer: round_trip(as_0_2_0(optimizer)),
        lambda model, optimizer, saved: optimizer.load_state_dict(saved),
    )
    model, optimizer = model_and_optimizer()
    train(model, optimizer, range(2))
    _, fresh = model_and_optimizer()
    fresh.load_state_dict(round_trip(as_0_2_0(optimizer)))
    assert fresh.state["mfac group 1"]["skipped_steps"] == 0 and fresh.state["mfac group 1"]["step"] == 2
    assert set(fresh.state_dict()["state"]) == {0, 1, 2, 3}  # saved again in the new layout


def test_a_malformed_state_is_refused_and_changes_nothing() -> None:
    model, optimizer = model_and_optimizer()
    train(model, optimizer, range(2))
    saved = round_trip(optimizer.state_dict())
    saved["state"][2]["gradient_window"] = torch.zeros(5, 12, dtype=torch.float64)
    _, fresh = model_and_optimizer()
    with pytest.raises(gradhub.UnsupportedInputError, match=r"mfac.*gradient_window.*shape \(5, 12\).*\(3, 12\)"):
        fresh.load_state_dict(saved)
    assert not fresh.state
    saved = round_trip(optimizer.state_dict())
    saved["state"][0]["group_gram"] = torch.zeros(2, 2, dtype=torch.float64)
    with pytest.raises(gradhub.UnsupportedInputError, match=r"mfac.*param group 0.*\(2, 2\)"):
        fresh.load_state_dict(saved)
    assert not fresh.state
