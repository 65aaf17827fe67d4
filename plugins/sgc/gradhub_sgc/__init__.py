"""gradhub-sgc: sequential gradient coding for straggler mitigation (Krishnan, Ebrahimi, Khisti, ICLR 2023).

This is the plugin's entry module: specs and hyperparameter models only, no torch, so listing and
inspecting the methods stays cheap. The implementation lives in
:mod:`gradhub_sgc.codes` (gradient coding, FRC and CRC of Tandon et al. 2017: encoder and decoder of
gradient tensors), :mod:`gradhub_sgc.schemes` (the SR-SGC and M-SGC schedulers, and GC as the
sequential scheme with delay 0), :mod:`gradhub_sgc.stragglers` (the (B, W, lambda)-bursty straggler
model: checker and pattern generator), :mod:`gradhub_sgc.runs` (the three schemes run over a job
sequence: the registered solvers), :mod:`gradhub_sgc.simulator` (total time per scheme under a delay
profile, and the ``bursty_stragglers`` probe) and :mod:`gradhub_sgc.distributed` (the schemes on
``torch.distributed``: workers compute coded gradients of a real model, the master decodes).

Each method is declared once, here (``name=`` in its spec; handles ``GRADIENT_CODING``, ``SR_SGC``,
``M_SGC``, ``BURSTY_STRAGGLERS``), and once as an entry point in ``pyproject.toml``. The codec and
scheduler classes the paper describes (``GradientCode``, ``SelectiveRepeatSGC``, ``MultiplexedSGC``)
are importable from here lazily (``from gradhub_sgc import MultiplexedSGC`` imports torch only then);
the registered solvers run them (see the README: a scheduler is not a solver, and the core has no kind
for one).
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field, Strict, model_validator

from gradhub.exports import lazy_exports
from gradhub.hyperparameters import Hyperparameters, NonNegative, Probability, Real
from gradhub.specs import MethodSpec, Paper

PAPER = Paper(
    title="Sequential Gradient Coding For Straggler Mitigation",
    authors=("M. Nikhil Krishnan", "MohammadReza Ebrahimi", "Ashish Khisti"),
    year=2023,
    venue="International Conference on Learning Representations (ICLR 2023)",
    arxiv="2211.13802",
    url="https://arxiv.org/abs/2211.13802",
    code="https://github.com/mamaj/Sequential-Gradient-Coding",
)

Count = Annotated[int, Strict(), Field(ge=0)]
PositiveCount = Annotated[int, Strict(), Field(ge=1)]
Window = Annotated[int, Strict(), Field(ge=2)]

N_WORKERS = "n: the number of workers"
BURST = "B: a straggling worker's straggling rounds in any window lie within B consecutive rounds"
WINDOW = "W: the window of consecutive rounds of the (B, W, lambda)-bursty model (W > B)"
LAMBDA = "lambda: at most this many distinct workers straggle in any window of W rounds (lambda <= n)"
TOL = "stop once at most this fraction of the jobs is still undecoded (0: run until every job is decoded)"
MAX_ITER = "rounds at most (a run over J jobs takes J + T rounds, T the scheme's delay)"


def _bursty_rules(n_workers: int, B: int, W: int, lam: int) -> None:
    """The (B, W, lambda) model's own ranges (official ``param_combinations``: W >= B + 1, lambda <= n)."""
    if W <= B:
        raise ValueError(f"W={W} must be > B={B} (a burst of at most B rounds inside a window of W rounds)")
    if lam > n_workers:
        raise ValueError(f"lam={lam} must be <= n_workers={n_workers} (at most n distinct stragglers)")


def sr_sgc_s(B: int, W: int, lam: int) -> int:
    """SR-SGC's per-round tolerance s = ceil(B * lambda / (W - 1 + B)) (Sec. 3.1; official ``selective_repeat_sgc``)."""
    return math.ceil(B * lam / (W - 1 + B))


def _sr_sgc_rules(n_workers: int, B: int, W: int, lam: int) -> None:
    if (W - 1) % B:
        raise ValueError(f"(W - 1) % B must be 0 for SR-SGC; W={W}, B={B} give (W - 1) % B = {(W - 1) % B}")
    s = sr_sgc_s(B, W, lam)
    if s >= n_workers:
        raise ValueError(f"SR-SGC's s = ceil(B * lam / (W - 1 + B)) = {s} must be < n_workers={n_workers}")


class GradientCodeParameters(Hyperparameters):
    """The gradient code of Tandon et al. (2017): n workers, s stragglers per round."""

    n_workers: PositiveCount = Field(description=N_WORKERS)
    s: Count = Field(description="stragglers tolerated per round (s < n); every worker computes s + 1 of n chunks")
    scheme: Literal["auto", "frc", "crc"] = Field(
        "auto",
        description="frc: fractional repetition (needs (s + 1) | n); crc: cyclic repetition from a random H; "
        "auto: frc when (s + 1) | n, else crc",
    )
    seed: Count = Field(0, description="seed of CRC's random H (rows summing to 0); FRC has no randomness")

    @model_validator(mode="after")
    def _code_exists(self) -> GradientCodeParameters:
        if self.s >= self.n_workers:
            raise ValueError(f"s={self.s} must be < n_workers={self.n_workers} (someone must return)")
        if self.scheme == "frc" and self.n_workers % (self.s + 1):
            raise ValueError(
                f"scheme='frc' needs (s + 1) | n_workers; s={self.s}, n_workers={self.n_workers}: use 'crc' or 'auto'"
            )
        return self


class BurstyParameters(Hyperparameters):
    """A sequential scheme designed for the (B, W, lambda)-bursty straggler model."""

    n_workers: PositiveCount = Field(description=N_WORKERS)
    B: PositiveCount = Field(description=BURST)
    W: Window = Field(description=WINDOW)
    lam: Count = Field(description=LAMBDA)

    @model_validator(mode="after")
    def _model_exists(self) -> BurstyParameters:
        _bursty_rules(self.n_workers, self.B, self.W, self.lam)
        return self


class SelectiveRepeatParameters(BurstyParameters):
    """SR-SGC: needs (W - 1) % B == 0 and s = ceil(B lambda / (W - 1 + B)) < n."""

    @model_validator(mode="after")
    def _selective_repeat_exists(self) -> SelectiveRepeatParameters:
        _sr_sgc_rules(self.n_workers, self.B, self.W, self.lam)
        return self


class GradientCodingHyperparameters(GradientCodeParameters):
    """GC run over a job sequence (one job per round, delay T = 0)."""

    tol: Real = Field(0.0, ge=0, le=1, description=TOL)
    max_iter: PositiveCount = Field(100_000, description=MAX_ITER)


class SRSGCHyperparameters(SelectiveRepeatParameters):
    """SR-SGC run over a job sequence (delay T = B)."""

    tol: Real = Field(0.0, ge=0, le=1, description=TOL)
    max_iter: PositiveCount = Field(100_000, description=MAX_ITER)


class MSGCHyperparameters(BurstyParameters):
    """M-SGC run over a job sequence (delay T = W - 2 + B)."""

    tol: Real = Field(0.0, ge=0, le=1, description=TOL)
    max_iter: PositiveCount = Field(100_000, description=MAX_ITER)


_CLAIMS = ("gradhub_sgc.claims:sgc_total_time",)
_TAGS = ("distributed", "straggler-mitigation", "gradient-coding")
_RESIDUAL = "residual: the fraction of jobs not yet decoded"

GRADIENT_CODING = MethodSpec(
    name="gradient_coding",
    kind="solver",
    summary="Gradient coding (Tandon et al., FRC/CRC): the exact gradient sum from any n - s coded results per round",
    paper=PAPER,
    target="gradhub_sgc.runs",
    params=GradientCodingHyperparameters,
    example="gradhub_sgc.examples:cyclic_code_with_stragglers",
    claims=_CLAIMS,
    tags=_TAGS,
)
SR_SGC = MethodSpec(
    name="sr_sgc",
    kind="solver",
    summary="Selective-repeat SGC: GC with s = ceil(B lambda/(W-1+B)); v - s stragglers repeat B rounds later",
    paper=PAPER,
    target="gradhub_sgc.runs",
    params=SRSGCHyperparameters,
    example="gradhub_sgc.examples:selective_repeat_with_a_burst",
    claims=_CLAIMS,
    tags=(*_TAGS, "sequential"),
)
M_SGC = MethodSpec(
    name="m_sgc",
    kind="solver",
    summary="Multiplexed SGC: uncoded D1 mini-tasks plus B GC-coded D2 groups on a diagonal of W-1+B rounds",
    paper=PAPER,
    target="gradhub_sgc.runs",
    params=MSGCHyperparameters,
    example="gradhub_sgc.examples:multiplexed_with_a_burst",
    claims=_CLAIMS,
    tags=(*_TAGS, "sequential"),
)


class BurstyStragglersHyperparameters(Hyperparameters):
    """A model's coded gradient under a drawn (B, W, lambda)-bursty pattern and synthetic delays."""

    scheme: Literal["gc", SR_SGC.name, M_SGC.name] = Field(  # the solvers' names
        M_SGC.name, description="gc runs with s = lambda (per round)"
    )
    n_workers: PositiveCount = Field(4, description=N_WORKERS)
    B: PositiveCount = Field(1, description=BURST)
    W: Window = Field(3, description=WINDOW)
    lam: Count = Field(1, description=LAMBDA)
    p: Probability = Field(0.1, description="chance per round that a worker allowed to start a burst starts one")
    mu: NonNegative = Field(
        1.0, description="the master waits (1 + mu) x the fastest worker's time; slower workers straggle"
    )
    slowdown: Real = Field(5.0, gt=1, description="a straggler's delay over a normal worker's (5 in the claim check)")

    @model_validator(mode="after")
    def _scheme_exists(self) -> BurstyStragglersHyperparameters:
        _bursty_rules(self.n_workers, self.B, self.W, self.lam)
        if self.scheme == SR_SGC.name:
            _sr_sgc_rules(self.n_workers, self.B, self.W, self.lam)
        if self.scheme == "gc" and self.lam >= self.n_workers:
            raise ValueError(f"scheme='gc' runs with s = lam, which must be < n_workers={self.n_workers}")
        return self


BURSTY_STRAGGLERS = MethodSpec(
    name="bursty_stragglers",
    kind="probe",
    summary="A model's coded gradient under a drawn (B, W, lambda)-bursty pattern: total time, waits, exactness",
    paper=PAPER,
    target="gradhub_sgc.simulator",
    params=BurstyStragglersHyperparameters,
    example="gradhub_sgc.examples:tiny_regression_jobs",
    claims=_CLAIMS,
    tags=(*_TAGS, "simulator"),
)

__getattr__ = lazy_exports(
    __name__,
    {
        "GradientCode": "gradhub_sgc.codes",
        "SelectiveRepeatSGC": "gradhub_sgc.schemes",
        "MultiplexedSGC": "gradhub_sgc.schemes",
        "Task": "gradhub_sgc.schemes",
        "Schedule": "gradhub_sgc.schemes",
        "StragglerModelError": "gradhub_sgc.stragglers",
        "bursty_pattern": "gradhub_sgc.stragglers",
        "bursty_violations": "gradhub_sgc.stragglers",
        "require_bursty": "gradhub_sgc.stragglers",
        "run_scheme": "gradhub_sgc.runs",
        "CodedRunResult": "gradhub_sgc.runs",
        "simulate": "gradhub_sgc.simulator",
        "synthetic_delays": "gradhub_sgc.simulator",
        "StragglerReport": "gradhub_sgc.simulator",
        "coded_gradients": "gradhub_sgc.distributed",
        "split_job": "gradhub_sgc.distributed",
        "unflatten": "gradhub_sgc.distributed",
        "DistributedRun": "gradhub_sgc.distributed",
        "chunk_sizes": "gradhub_sgc.tasks",
    },
)
