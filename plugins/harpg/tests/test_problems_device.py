"""The problems on a device: the bandit draws on theta's device from a generator checked against it; the MDP
is drawn on the host and moved. The ``meta`` device stands in for an accelerator (a host tensor mixed in
is an error there, and nothing can be read back)."""

from __future__ import annotations

import pytest
import torch
from gradhub_harpg.problems import GaussianBandit, SoftmaxPolicy, TinyMDP

from gradhub import UnsupportedInputError


def test_bandit_draws_on_thetas_device() -> None:
    bandit = GaussianBandit(torch.ones(4, dtype=torch.float64, device="meta"))
    theta = torch.zeros(4, dtype=torch.float64, device="meta", requires_grad=True)
    log_prob, reward = bandit.trajectory(theta, None)
    assert (log_prob.device.type, reward.device.type, log_prob.shape, reward.shape) == ("meta", "meta", (1,), (1,))


def test_bandit_refuses_a_generator_on_another_device() -> None:
    bandit = GaussianBandit(torch.ones(4, device="meta"))
    theta = torch.zeros(4, device="meta")
    with pytest.raises(UnsupportedInputError, match=r"GaussianBandit: unsupported generator device: cpu.*theta"):
        bandit.trajectory(theta, torch.Generator())


def test_bandit_trajectory_on_the_cpu_is_the_paper_problem() -> None:
    """r = -||a - a*||^2 + noise z with a = theta + sigma u, (u, z) the generator's next d + 1 normals."""
    optimum = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    bandit = GaussianBandit(optimum, sigma=0.5, noise=2.0)
    theta = torch.tensor([0.2, 0.1, -0.3], dtype=torch.float64)
    log_prob, reward = bandit.trajectory(theta, torch.Generator().manual_seed(7))
    draw = torch.randn(4, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    action = theta + 0.5 * draw[:3]
    assert torch.equal(reward, (-(action - optimum).square().sum() + 2.0 * draw[3]).reshape(1))
    assert torch.equal(log_prob, (-0.5 * draw[:3].square().sum()).reshape(1))


def test_mdp_is_the_same_on_every_device() -> None:
    host = TinyMDP.random(seed=3, dtype=torch.float64)
    moved = TinyMDP.random(seed=3, device="meta", dtype=torch.float64)
    for name in ("transitions", "rewards", "start"):
        assert getattr(moved, name).device.type == "meta"
        assert getattr(moved, name).shape == getattr(host, name).shape
    assert torch.allclose(host.transitions.sum(-1), torch.ones(4, 3, dtype=torch.float64))


def test_policy_takes_device_and_dtype() -> None:
    policy = SoftmaxPolicy(4, 3, device="meta", dtype=torch.float64)
    assert {(p.device.type, p.dtype) for p in policy.parameters()} == {("meta", torch.float64)}
    assert SoftmaxPolicy(2, 2).logits.device.type == "cpu"
