"""Total time of a scheme over a delay profile, and the ``bursty_stragglers`` probe.

Paper: Krishnan, Ebrahimi, Khisti, "Sequential Gradient Coding For Straggler Mitigation", ICLR 2023,
arXiv 2211.13802, Sec. 5 (run times on AWS Lambda delay profiles). Official code:
mamaj/Sequential-Gradient-Coding-2, ``2_find_runtimes/analyze_delay_profiles`` (``perform_round`` of
``gradient_coding.py``, ``selective_repeat_sgc.py``, ``multiplexed_sgc.py``), whose master rule is
reproduced by :func:`simulate`:

- every worker's delay in round r is ``delays[i, r]`` (already scaled by the scheme's load: a worker
  with more data is slower); the master waits ``(1 + mu) x`` the fastest worker's delay, and the workers
  slower than that are the round's stragglers;
- if those stragglers keep the scheme's straggler model (GC: at most s; SGC: the (B, W, lambda)-bursty
  model, given the stragglers of earlier rounds), the round takes that wait; otherwise the master waits
  for every worker (the round takes the largest delay and nobody straggles).

The thresholds, the stragglers and the round times are computed for all rounds at once; only when some
round leaves the model is the master's rule replayed round by round (whether a round conforms depends
on which earlier rounds were waited out). The bookkeeping then says whether every job was decodable at
its deadline. Official GC accepts a round with fewer than s stragglers; gradhub's GC (Tandon et al.)
tolerates s, so GC waits a little less here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from gradhub.errors import UnsupportedInputError
from gradhub.hyperparameters import validated
from gradhub.kinds import evaluation_mode
from gradhub.kinds.inputs import require_finite, require_generator, require_tensor
from gradhub.progress import ProgressCallback, tracker
from gradhub_sgc import BURSTY_STRAGGLERS, SR_SGC
from gradhub_sgc.codes import GradientCode
from gradhub_sgc.runs import run_scheme
from gradhub_sgc.schemes import MultiplexedSGC, SelectiveRepeatSGC
from gradhub_sgc.stragglers import bursty_pattern
from gradhub_sgc.tasks import SequentialScheme, chunk_sizes


def simulate(scheme: SequentialScheme, delays: Tensor, mu: float = 1.0, *, jobs: int | None = None) -> dict[str, Any]:
    """The time ``scheme`` takes over the delay profile ``delays`` ``(n, rounds)`` (official master rule).

    Runs ``jobs`` jobs (default: as many as the profile's rounds allow, ``rounds - T``), so J + T rounds.

    Returns a dict: ``total_time`` (float), ``per_round`` ``(J + T,)`` float64, ``n_waits`` (rounds the
    master waited for everyone), ``waited`` ``(J + T,)`` bool, ``stragglers`` ``(n, J + T)`` bool (the
    workers left behind), ``decoded`` ``(J,)`` bool (decodable at the deadline), ``deadline_met``
    (all of them), ``jobs`` and ``rounds``.
    """
    method = scheme.method
    delays = require_tensor(method, "delays", delays, dim=2, what="(n_workers, rounds) of worker delays")
    if isinstance(mu, bool) or not isinstance(mu, int | float) or not mu >= 0:
        raise UnsupportedInputError(method, "mu", mu, "mu must be a number >= 0 (the master's tolerance)")
    available = delays.shape[1] - scheme.delay
    jobs = available if jobs is None else jobs
    if delays.shape[0] != scheme.n_workers or not 1 <= jobs <= available:
        raise UnsupportedInputError(
            method,
            "delays shape",
            tuple(delays.shape),
            f"(n_workers={scheme.n_workers}, J + T) with T={scheme.delay}, J >= 1 jobs"
            + (f" (asked for jobs={jobs})" if jobs != available else ""),
        )
    rounds = scheme.rounds(jobs)
    values = delays[:, :rounds].to(torch.float64)
    require_finite(method, "delays", values)
    wait = values.min(0).values * (1 + mu)
    slow = (values > wait).to("cpu")
    if scheme.violations(slow):
        stragglers, waited = _wait_out(scheme, slow)
    else:  # every round keeps the model: no replay needed
        stragglers, waited = slow, torch.zeros(rounds, dtype=torch.bool, device="cpu")
    per_round = torch.where(waited.to(values.device), values.max(0).values, wait)
    decoded = _decoded_at_deadline(scheme, stragglers, jobs)
    return {
        "total_time": float(per_round.sum()),
        "per_round": per_round,
        "n_waits": int(waited.sum()),
        "waited": waited,
        "stragglers": stragglers,
        "decoded": decoded,
        "deadline_met": bool(decoded.all()),
        "jobs": jobs,
        "rounds": rounds,
    }


def _wait_out(scheme: SequentialScheme, slow: Tensor) -> tuple[Tensor, Tensor]:
    """The master's rule round by round: a round whose stragglers leave the model is waited out."""
    stragglers = torch.zeros_like(slow)
    waited = torch.zeros(slow.shape[1], dtype=torch.bool, device="cpu")
    for r in range(slow.shape[1]):
        if scheme.round_conforms(stragglers[:, :r], slow[:, r]):
            stragglers[:, r] = slow[:, r]
        else:
            waited[r] = True
    return stragglers, waited


def _decoded_at_deadline(scheme: SequentialScheme, stragglers: Tensor, jobs: int) -> Tensor:
    schedule = scheme.schedule(jobs)
    decoded = torch.zeros(jobs, dtype=torch.bool, device="cpu")
    for r in range(stragglers.shape[1]):
        schedule.record(r, ~stragglers[:, r])
        job = scheme.decodable_job(r)
        if 0 <= job < jobs:
            decoded[job] = schedule.decodable(job)
    return decoded


def synthetic_delays(
    pattern: Tensor,
    load: float,
    slowdown: float = 5.0,
    jitter: float = 0.1,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The claim check's delay profile: ``load (1 + jitter Exp(1))`` per worker and round, ``x slowdown`` where
    ``pattern`` (n, rounds) says the worker straggles. Drawn from ``generator`` (any device; default: a
    fresh host generator seeded 0) and returned, float64, on ``pattern``'s device."""
    if generator is None:
        generator = torch.Generator(device="cpu").manual_seed(0)
    where = generator.device
    noise = torch.empty(pattern.shape, dtype=torch.float64, device=where).exponential_(generator=generator)
    noise = noise.to(pattern.device)
    return load * (1 + jitter * noise) * (1 + (slowdown - 1) * pattern.to(torch.float64))


def make_scheme(scheme: str, n_workers: int, B: int, W: int, lam: int) -> SequentialScheme:
    """``"gc"`` (GC with s = lambda), ``SR_SGC.name`` or ``M_SGC.name`` for the (B, W, lambda) model."""
    if scheme == "gc":
        return GradientCode(n_workers, lam)
    if scheme == SR_SGC.name:
        return SelectiveRepeatSGC(n_workers, B, W, lam)
    return MultiplexedSGC(n_workers, B, W, lam)


def chunk_gradients(
    method: str, model: nn.Module, loss_fn: Any, inputs: Tensor, targets: Tensor, scheme: SequentialScheme
) -> Tensor:
    """``(J, K, d)``: the gradient of ``sum_i loss_fn(model(x_i), y_i)`` over each chunk of every job.

    Per-example gradients (``torch.func``: vmap of grad, the model in eval mode and unchanged), summed
    into the chunks of :func:`~gradhub_sgc.tasks.chunk_sizes` with one ``index_add``.
    """
    jobs, examples = inputs.shape[:2]
    sizes = chunk_sizes(scheme, examples, method)
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    params = {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}
    frozen = {name: p.detach() for name, p in model.named_parameters() if not p.requires_grad}
    buffers = dict(model.named_buffers())

    def one(weights: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        output = functional_call(model, ({**weights, **frozen}, buffers), (x.unsqueeze(0),))
        return loss_fn(output, y.unsqueeze(0))

    with evaluation_mode(model):
        per_example = vmap(grad(one), in_dims=(None, 0, 0))(params, inputs.flatten(0, 1), targets.flatten(0, 1))
    rows = torch.cat([per_example[name].reshape(jobs * examples, -1) for name in names], 1)
    chunk_of = torch.repeat_interleave(
        torch.arange(len(sizes), device=inputs.device), torch.tensor(sizes, device=inputs.device)
    )
    where = (torch.arange(jobs, device=inputs.device)[:, None] * len(sizes) + chunk_of).flatten()
    sums = rows.new_zeros(jobs * len(sizes), rows.shape[1]).index_add_(0, where, rows)
    return sums.view(jobs, len(sizes), -1)


@dataclass
class StragglerReport:
    """What :func:`bursty_stragglers` measured for one scheme on one model."""

    total_time: Tensor
    """0-d float64: the sum of the round times (official master rule)."""
    per_round: Tensor
    """(J + T,) float64: each round's time."""
    n_waits: int
    """Rounds the master waited for every worker (stragglers outside the model)."""
    delays: Tensor
    """(n, J + T) float64: the simulated delay profile (load-scaled, stragglers slowed down)."""
    stragglers: Tensor
    """(n, J + T) bool: the workers the master left behind in each round."""
    decoded: Tensor
    """(J,) bool: each job decoded at its deadline t + T."""
    gradients: Tensor
    """(J, d): the decoded gradient of every job (flattened over the trainable parameters)."""
    relative_error: Tensor
    """0-d: max |decoded - uncoded| / max |uncoded| over every job and entry."""
    load: float
    """The scheme's normalised load."""


@validated(BURSTY_STRAGGLERS)
def bursty_stragglers(
    model: nn.Module,
    loss_fn: Any,
    inputs: Tensor,
    targets: Tensor,
    *,
    scheme: str,
    n_workers: int,
    B: int,
    W: int,
    lam: int,
    p: float,
    mu: float,
    slowdown: float,
    generator: torch.Generator | None = None,
    progress: ProgressCallback | None = None,
) -> StragglerReport:
    """A model's coded gradient under a drawn (B, W, lambda)-bursty straggler pattern: time and exactness.

    Job t is the gradient of ``sum_i loss_fn(model(x_i), y_i)`` over ``inputs[t], targets[t]`` (J jobs of
    N examples; N at least the scheme's K chunks, sized as :meth:`chunk_weights` says). A pattern is
    drawn with :func:`~gradhub_sgc.stragglers.bursty_pattern` (probability ``p``) over J + T rounds, the
    claim check's synthetic delays ``load (1 + 0.1 Exp(1))``, ``x slowdown`` for stragglers, and :func:`simulate` gives
    the round times and whom the master left behind; the scheme then runs on the model's chunk gradients
    under exactly those stragglers and its decoded gradients are compared with the uncoded ones.

    Args:
        model: measured at its parameters, in eval mode; left as it was found.
        loss_fn: ``loss_fn(outputs, targets) -> scalar`` (called on batches of one example).
        inputs, targets: ``(J, N, ...)``: the J jobs' examples.
        generator: draws the pattern and the delays (None: a fresh host generator seeded 0).
        progress: called once per round.
    """
    method = BURSTY_STRAGGLERS.name
    if not isinstance(model, nn.Module):
        raise UnsupportedInputError(method, "model", type(model).__name__, "model must be a torch.nn.Module")
    if not callable(loss_fn):
        raise UnsupportedInputError(method, "loss_fn", type(loss_fn).__name__, "loss_fn(outputs, targets) -> scalar")
    inputs = require_tensor(method, "inputs", inputs, min_dim=2, what="(J jobs, N examples, ...)")
    targets = require_tensor(method, "targets", targets, dtype="any", min_dim=2, what="(J jobs, N examples, ...)")
    if targets.shape[:2] != inputs.shape[:2]:
        raise UnsupportedInputError(
            method, "targets shape", tuple(targets.shape), f"targets must start like inputs: {tuple(inputs.shape[:2])}"
        )
    require_generator(method, generator, inputs)
    coded = make_scheme(scheme, n_workers, B, W, lam)
    chunk_sizes(coded, inputs.shape[1], method)  # before any drawing: N >= K
    if generator is None:
        generator = torch.Generator(device="cpu").manual_seed(0)
    jobs = inputs.shape[0]
    pattern = bursty_pattern(n_workers, coded.rounds(jobs), B, W, lam, p, generator=generator)
    delays = synthetic_delays(pattern, coded.load, slowdown, generator=generator)
    timing = simulate(coded, delays, mu, jobs=jobs)
    with torch.no_grad():
        gradients = chunk_gradients(method, model, loss_fn, inputs, targets, coded)
        require_finite(method, "chunk gradients of the model", gradients)
        with tracker(progress, total=coded.rounds(jobs), task=method) as bar:
            run = run_scheme(coded, gradients, timing["stragglers"])
            state = next(run)
            for state in run:
                bar.update(undecoded=state.residual)
        exact = gradients.sum(1)
        error = (state.solution - exact).abs().max() / exact.abs().max().clamp_min(torch.finfo(exact.dtype).tiny)
    return StragglerReport(
        total_time=timing["per_round"].sum(),
        per_round=timing["per_round"],
        n_waits=timing["n_waits"],
        delays=delays,
        stragglers=timing["stragglers"],
        decoded=timing["decoded"],
        gradients=state.solution,
        relative_error=error,
        load=coded.load,
    )


__all__ = [
    StragglerReport.__name__,
    bursty_stragglers.__name__,
    chunk_gradients.__name__,
    make_scheme.__name__,
    simulate.__name__,
    synthetic_delays.__name__,
]
