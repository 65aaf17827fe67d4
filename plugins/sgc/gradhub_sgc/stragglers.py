"""Straggler models: the (B, W, lambda)-bursty model of SGC, GC's s-per-round model, and a pattern generator.

Paper: Krishnan, Ebrahimi, Khisti, "Sequential Gradient Coding For Straggler Mitigation", ICLR 2023,
arXiv 2211.13802, Sec. 2 (Definition of the (B, W, lambda)-bursty straggler model). Official code:
mamaj/Sequential-Gradient-Coding(-2), ``follows_straggler_model`` of ``selective_repeat_sgc.py`` and
``multiplexed_sgc.py``.

A pattern is a boolean tensor ``(n, rounds)``: ``pattern[i, r]`` is True when worker i straggles in
round r (returns nothing). It follows the (B, W, lambda)-bursty model when, for every round r,

- *spatial*: at most lambda distinct workers straggle in the window of rounds ``[r - W + 1, r]``;
- *temporal*: a worker straggling in round r straggled in none of the rounds ``[r - W + 1, r - B]``
  (the official check), i.e. within any window of W rounds a worker's straggling rounds lie inside
  B consecutive rounds: one burst of length at most B.

Both checks are vectorised over rounds and workers (window counts from one cumulative sum). GC's
model (Tandon et al.) is per round: at most s stragglers in every round.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from gradhub.errors import UnsupportedInputError
from gradhub_sgc import BURSTY_STRAGGLERS

__all__ = [
    "StragglerModelError",
    "Violation",
    "bursty_pattern",
    "bursty_round_conforms",
    "bursty_violations",
    "per_round_violations",
    "require_bursty",
    "require_pattern",
]

Rule = Literal["spatial", "temporal", "per-round"]


@dataclass(frozen=True)
class Violation:
    """Where a straggler pattern leaves its model: the round, a worker to blame, the rule and why."""

    round: int
    worker: int
    rule: Rule
    detail: str


class StragglerModelError(UnsupportedInputError):
    """A straggler pattern that leaves the scheme's straggler model; names the round and the worker."""

    def __init__(self, method: str, violation: Violation, model: str) -> None:
        self.round = violation.round
        self.worker = violation.worker
        self.rule = violation.rule
        super().__init__(
            method,
            "straggler pattern",
            f"round {violation.round}, worker {violation.worker}: {violation.detail}",
            f"the pattern must follow the {model} ({violation.rule} rule); a schedule is only guaranteed for such "
            "patterns (simulate() handles others by waiting for every worker in the offending round)",
        )


def _boolean_pattern(method: str, pattern: Any) -> Tensor:
    """``pattern`` as a 2-D boolean tensor on the host."""
    if not isinstance(pattern, Tensor):
        raise UnsupportedInputError(
            method, "stragglers", type(pattern).__name__, "stragglers must be a boolean tensor (n_workers, rounds)"
        )
    if pattern.dtype != torch.bool or pattern.dim() != 2:
        raise UnsupportedInputError(
            method,
            "stragglers",
            f"{pattern.dtype} of shape {tuple(pattern.shape)}",
            "stragglers must be a 2-D boolean tensor (n_workers, rounds); True: the worker straggles",
        )
    return pattern.detach().to("cpu")


def require_pattern(method: str, pattern: Any, n_workers: int, rounds: int | None = None) -> Tensor:
    """``pattern`` as a boolean ``(n_workers, >= rounds)`` tensor on the host (the master's bookkeeping)."""
    if not isinstance(pattern, Tensor):
        raise UnsupportedInputError(
            method, "stragglers", type(pattern).__name__, "stragglers must be a boolean tensor (n_workers, rounds)"
        )
    if pattern.dtype != torch.bool:
        raise UnsupportedInputError(
            method,
            "stragglers dtype",
            pattern.dtype,
            "stragglers must be a boolean tensor (True: the worker straggles)",
        )
    if pattern.dim() != 2 or pattern.shape[0] != n_workers or (rounds is not None and pattern.shape[1] < rounds):
        wanted = f"(n_workers={n_workers}, rounds" + (f" >= {rounds})" if rounds is not None else ")")
        raise UnsupportedInputError(method, "stragglers shape", tuple(pattern.shape), f"stragglers must be {wanted}")
    return pattern.detach().to("cpu")


def _counts(pattern: Tensor) -> Tensor:
    """``c[:, k]`` = straggling rounds of each worker among rounds ``[0, k)``: window counts by subtraction."""
    counts = torch.zeros(pattern.shape[0], pattern.shape[1] + 1, dtype=torch.int64, device=pattern.device)
    counts[:, 1:] = pattern.to(torch.int64).cumsum(1)
    return counts


def _in_rounds(counts: Tensor, start: Tensor, stop: Tensor) -> Tensor:
    """Straggling rounds of each worker in rounds ``[start_r, stop_r)`` for every r: ``(n, rounds)``."""
    stop = torch.maximum(stop, start)
    return counts[:, stop] - counts[:, start]


def bursty_violations(pattern: Tensor, B: int, W: int, lam: int) -> list[Violation]:
    """Every round (and a worker) where ``pattern`` leaves the (B, W, lambda)-bursty model, earliest first.

    Temporal violations name the worker and the earlier round it straggled in; spatial ones name
    the distinct stragglers of the window and blame the one who joined it last (lowest index on a tie).
    """
    pattern = _boolean_pattern("bursty_violations", pattern)
    rounds = pattern.shape[1]
    counts = _counts(pattern)
    r = torch.arange(rounds, device=pattern.device)
    window_start = (r - W + 1).clamp(min=0)
    earlier = _in_rounds(counts, window_start, (r - B + 1).clamp(min=0))  # rounds [r - W + 1, r - B]
    temporal = pattern & (earlier > 0)
    in_window = _in_rounds(counts, window_start, r + 1) > 0  # straggled in [r - W + 1, r]
    distinct = in_window.sum(0)
    found = []
    for worker, round_ in temporal.nonzero().tolist():
        start = max(0, round_ - W + 1)
        before = [start + k for k in pattern[worker, start : round_ - B + 1].nonzero().flatten().tolist()]
        found.append(
            Violation(
                round_,
                worker,
                "temporal",
                f"worker {worker} straggles in round {round_} and also straggled in round {before[-1]}; within "
                f"the window [{start}, {round_}] of W={W} rounds its straggling rounds must lie in B={B} "
                "consecutive rounds",
            )
        )
    for round_ in (distinct > lam).nonzero().flatten().tolist():
        start = max(0, round_ - W + 1)
        members = in_window[:, round_].nonzero().flatten().tolist()
        # blame the last to join: the member whose first straggling round in the window is the latest
        joined = pattern[members, start : round_ + 1].to(torch.int8).argmax(1)
        blamed = members[int(joined.argmax())]
        found.append(
            Violation(
                round_,
                blamed,
                "spatial",
                f"{len(members)} distinct workers {members} straggle in rounds [{start}, {round_}], more than "
                f"lam={lam} in a window of W={W} rounds",
            )
        )
    return sorted(found, key=lambda v: (v.round, v.worker, v.rule))


def per_round_violations(pattern: Tensor, s: int) -> list[Violation]:
    """Rounds in which more than ``s`` workers straggle (GC's model); blames the (s+1)-th straggler by index."""
    pattern = _boolean_pattern("per_round_violations", pattern)
    found = []
    for round_ in (pattern.sum(0) > s).nonzero().flatten().tolist():
        members = pattern[:, round_].nonzero().flatten().tolist()
        found.append(
            Violation(
                round_,
                members[s],
                "per-round",
                f"{len(members)} workers {members} straggle in round {round_}, more than s={s}",
            )
        )
    return found


def require_bursty(pattern: Tensor, B: int, W: int, lam: int, method: str = BURSTY_STRAGGLERS.name) -> None:
    """Raise :class:`StragglerModelError` at the earliest round where ``pattern`` leaves the bursty model."""
    violations = bursty_violations(pattern, B, W, lam)
    if violations:
        raise StragglerModelError(method, violations[0], f"(B={B}, W={W}, lam={lam})-bursty model")


def bursty_round_conforms(history: Tensor, candidate: Tensor, B: int, W: int, lam: int) -> bool:
    """Whether stragglers ``candidate`` (n,) in the round after ``history`` (n, r) keep the bursty model.

    The official master's test (``follows_straggler_model``): the distinct stragglers of rounds
    ``[r - W + 1, r]`` are at most lambda, and no worker in ``candidate`` straggled in ``[r - W + 1, r - B]``.
    """
    r = history.shape[1]
    start = max(0, r - W + 1)
    window = history[:, start:r].any(1)
    if int((window | candidate).sum()) > lam:
        return False
    earlier = history[:, start : max(start, r - B + 1)].any(1)
    return not bool((earlier & candidate).any())


def bursty_pattern(
    n: int,
    rounds: int,
    B: int,
    W: int,
    lam: int,
    p: float,
    seed: int = 0,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """A random straggler pattern ``(n, rounds)`` that follows the (B, W, lambda)-bursty model.

    Greedy, round by round (the dependence on the past is what the model is about), vectorised over
    workers: a worker that straggled in none of the last W - 1 rounds starts a burst with probability
    ``p``, of a length drawn uniformly from 1..B (1 when B = 1, as in the claim check's setting), as long as the
    window keeps at most lambda distinct stragglers (when more want to start, a random subset within
    the budget does); a started burst runs its length. Draws come from ``generator`` when given (on
    any device; the pattern is built on the host), else from a host generator seeded with ``seed``.
    """
    if generator is None:
        generator = torch.Generator(device="cpu").manual_seed(seed)
    where = generator.device
    starts = torch.rand(n, rounds, generator=generator, device=where).to("cpu")
    lengths = torch.randint(1, B + 1, (n, rounds), generator=generator, device=where).to("cpu")
    priority = torch.rand(n, rounds, generator=generator, device=where).to("cpu")
    pattern = torch.zeros(n, rounds, dtype=torch.bool, device="cpu")
    burst_end = torch.full((n,), -1, dtype=torch.int64, device="cpu")
    for r in range(rounds):
        window = pattern[:, max(0, r - W + 1) : r].any(1)
        going_on = burst_end >= r
        start = ~window & ~going_on & (starts[:, r] < p)
        budget = lam - int((window | going_on).sum())
        if int(start.sum()) > budget:
            order = torch.where(start, priority[:, r], torch.full_like(priority[:, r], 2.0)).argsort()
            start = torch.zeros_like(start)
            start[order[: max(budget, 0)]] = True
        pattern[:, r] = going_on | start
        burst_end = torch.where(start, r + lengths[:, r] - 1, burst_end)
    return pattern.to(device if device is not None else "cpu")
