"""Seeded policy-gradient problems: a tabular softmax policy on a tiny MDP, and the Gaussian bandit.

Both are vectorised (no Python loop over trajectories; the MDP loops over its horizon only)
and take their randomness from a ``torch.Generator``. The MDP is drawn on the host and moved (the
same MDP on every device); the bandit draws its trajectories on theta's device, from a generator
that must be on that device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from gradhub.kinds.inputs import require_generator

__all__ = ["GaussianBandit", "SoftmaxPolicy", "TinyMDP"]


class SoftmaxPolicy(nn.Module):
    """pi(a | s) = softmax(logits[s] + bias): two parameters, so optimizers see a list of tensors.

    ``device`` and ``dtype`` as torch's layers take them (None: torch's defaults)."""

    def __init__(self, states: int, actions: int, device: Any = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(states, actions, device=device, dtype=dtype))
        self.bias = nn.Parameter(torch.zeros(actions, device=device, dtype=dtype))

    def forward(self) -> Tensor:
        return torch.log_softmax(self.logits + self.bias, dim=-1)


@dataclass
class TinyMDP:
    """A random finite-horizon discounted MDP: transitions P[s, a, s'], rewards R[s, a], start rho."""

    transitions: Tensor
    rewards: Tensor
    start: Tensor
    horizon: int
    gamma: float

    @classmethod
    def random(
        cls, states: int = 4, actions: int = 3, horizon: int = 8, gamma: float = 0.9, seed: int = 0, **to: object
    ) -> TinyMDP:
        # drawn on the host, then moved with ``to`` (device=, dtype=): the same MDP on every device
        generator = torch.Generator().manual_seed(seed)
        transitions = torch.softmax(3.0 * torch.randn(states, actions, states, generator=generator, device="cpu"), -1)
        rewards = torch.rand(states, actions, generator=generator, device="cpu")
        start = torch.full((states,), 1.0 / states, device="cpu")
        return cls(transitions.to(**to), rewards.to(**to), start.to(**to), horizon, gamma)  # type: ignore[arg-type]

    def expected_return(self, log_policy: Tensor) -> Tensor:
        """J(theta) = sum_{h < H} gamma^h rho_h^T r_pi, exactly (state distribution pushed forward)."""
        policy = log_policy.exp()
        reward = (policy * self.rewards).sum(-1)
        step = torch.einsum("sa,sat->st", policy, self.transitions)
        distribution, total = self.start, torch.zeros((), dtype=policy.dtype, device=policy.device)
        for h in range(self.horizon):
            total = total + self.gamma**h * distribution @ reward
            distribution = distribution @ step
        return total

    def sample(self, log_policy: Tensor, uniforms: Tensor) -> tuple[Tensor, Tensor]:
        """``(log_probs, rewards)``, each ``[N, H]``, driven by ``uniforms[N, H, 3]`` (start/action/next draws).

        Inverse-CDF sampling with given uniforms, so fixed uniforms give common random numbers.
        """
        count = uniforms.shape[0]
        state = torch.searchsorted(self.start.cumsum(0), uniforms[:, 0, 0].contiguous()).clamp_max(
            self.start.numel() - 1
        )
        log_probs, rewards = [], []
        for h in range(self.horizon):
            row = log_policy[state]
            cdf = row.detach().exp().cumsum(-1)
            action = (cdf < uniforms[:, h, 1:2]).sum(-1).clamp_max(row.shape[-1] - 1)
            log_probs.append(row.gather(-1, action[:, None])[:, 0])
            rewards.append(self.rewards[state, action])
            next_cdf = self.transitions[state, action].cumsum(-1)
            state = (next_cdf < uniforms[:, h, 2:3]).sum(-1).clamp_max(next_cdf.shape[-1] - 1)
        del count
        return torch.stack(log_probs, 1), torch.stack(rewards, 1)


@dataclass
class GaussianBandit:
    """The claim check's problem: a ~ N(theta, sigma^2 I), r = -||a - a*||^2 + N(0, 1).

    J(theta) = -||theta - a*||^2 - d sigma^2, so J* - J(theta) = ||theta - a*||^2.
    """

    optimum: Tensor
    sigma: float = 1.0
    noise: float = 1.0

    def suboptimality(self, theta: Tensor) -> Tensor:
        return (theta.detach() - self.optimum).pow(2).sum(-1)

    def trajectory(self, theta: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """One trajectory at ``theta``: ``(log_probs[1], rewards[1])`` (a one-step MDP), drawn on theta's
        device from ``generator`` (None: torch's default generator of that device)."""
        require_generator(type(self).__name__, generator, theta, "theta")
        draw = torch.randn(theta.shape[-1] + 1, generator=generator, dtype=theta.dtype, device=theta.device)
        action = theta.detach() + self.sigma * draw[:-1]
        log_prob = -0.5 * ((action - theta) / self.sigma).pow(2).sum()
        reward = -(action - self.optimum).pow(2).sum() + self.noise * draw[-1]
        return log_prob[None], reward[None]
