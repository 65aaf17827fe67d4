"""Seeded examples for the conformance suite: a softmax policy on a tiny random MDP.

The objective is a sample-average approximation of a policy-gradient problem: 64 trajectories
of horizon 8 are sampled (vectorised, inverse-CDF) from uniforms drawn once from a seeded
``torch.Generator`` (common random numbers), so every call at the same parameters gives
the same result, as the suite's resume and determinism checks need. The loss's *value* is the
exact cost -J(theta) (computed by pushing the state distribution forward); its *gradient* is
the GPOMDP estimate averaged over the 64 trajectories.
"""

from __future__ import annotations

from typing import Any

import torch

from gradhub.kinds.optimizer import OptimizerExample
from gradhub_harpg.gpomdp import discounted_rewards_to_go
from gradhub_harpg.problems import SoftmaxPolicy, TinyMDP

__all__ = ["mdp_example", "normalized_steps_on_tiny_mdp", "plain_steps_on_tiny_mdp"]

TRAJECTORIES = 64


def mdp_example(
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    hparams: dict[str, Any] | None = None,
    steps: int = 10,
) -> OptimizerExample:
    # drawn on the host and moved: the same problem on every device
    generator = torch.Generator().manual_seed(seed)
    mdp = TinyMDP.random(seed=seed, device=device, dtype=dtype)
    policy = SoftmaxPolicy(4, 3)
    with torch.no_grad():
        policy.logits.copy_(0.5 * torch.randn(4, 3, generator=generator, device="cpu"))
    policy = policy.to(device=device, dtype=dtype)
    uniforms = torch.rand(TRAJECTORIES, mdp.horizon, 3, generator=generator, dtype=torch.float64, device="cpu")
    uniforms = uniforms.to(device=device, dtype=dtype)

    def loss() -> torch.Tensor:
        log_policy = policy()
        expected = mdp.expected_return(log_policy)
        log_probs, rewards = mdp.sample(log_policy, uniforms)
        surrogate = -(log_probs * discounted_rewards_to_go(rewards, mdp.gamma)).sum(-1).mean()
        return -expected.detach() + (surrogate - surrogate.detach())

    return OptimizerExample(model=policy, loss=loss, hparams=dict(hparams or {}), steps=steps)


def normalized_steps_on_tiny_mdp(
    device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0
) -> OptimizerExample:
    """The tiny MDP with gamma_0 = 0.5 for the normalised methods (N-PG-IGT, N-HARPG: steps of length gamma_t)."""
    return mdp_example(device, dtype, seed, {"lr": 0.5})


def plain_steps_on_tiny_mdp(
    device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0
) -> OptimizerExample:
    """The tiny MDP with gamma_0 = 2 for HARPG's un-normalised steps gamma_t d_t."""
    return mdp_example(device, dtype, seed, {"lr": 2.0})
