"""gradhub-harpg: N-PG-IGT, HARPG and N-HARPG (Fatkhullin et al., ICML 2023) as gradhub methods.

This is the plugin's entry module: specs and hyperparameter models only, no torch. Each
method is declared once, here (``name=`` in its spec), and once as an entry point in
``pyproject.toml``; the registry reads the module's ``MethodSpec`` objects, and the optimizers
bind to them (``spec = HARPG``) for their names, defaults and bounds. The optimizers live in
:mod:`gradhub_harpg.npg_igt` and :mod:`gradhub_harpg.harpg`, the step-size schedules in
:mod:`gradhub_harpg.schedules`, the GPOMDP surrogate helper in :mod:`gradhub_harpg.gpomdp`
(exported, not registered: it returns a ``(loss, logp)`` pair, which no gradhub kind describes).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, Strict

from gradhub.hyperparameters import Epsilon, Flag, Foreach, Hyperparameters, LearningRate, Real
from gradhub.specs import DistributedSupport, MethodSpec, OptimizerCapabilities, Paper

PAPER = Paper(
    title="Stochastic Policy Gradient Methods: Improved Sample Complexity for Fisher-non-degenerate Policies",
    authors=("Ilyas Fatkhullin", "Anas Barakat", "Anastasia Kireeva", "Niao He"),
    year=2023,
    venue="International Conference on Machine Learning (ICML)",
    arxiv="2302.01734",
    url="https://arxiv.org/abs/2302.01734",
    code=None,
)

Schedule = Literal["paper", "constant"]
LR = "base step gamma_0 (tune it: the theorems' constants depend on unknown problem constants)"
ETA_SCHEDULE = "momentum weights eta_t: 'paper' (the theory's exponent, eta_0 = 1) or 'constant' (eta)"
LR_SCHEDULE = "step sizes gamma_t: 'paper' (lr * 2 / (t + 2)) or 'constant' (lr)"
ETA = "the constant momentum weight eta_t (t >= 1) used when eta_schedule='constant'"
EPS = "lower bound on ||d_t|| in the normalised step (a zero direction gives a zero step)"
DISTRIBUTED = (
    "a (loss, logp) closure with several torch.distributed processes, which DDP/FSDP2 do not reduce: 'error', "
    "'average' (all-reduce the estimates) or 'local' (each process its own)"
)
Distributed = Annotated[Literal["error", "average", "local"], Field(description=DISTRIBUTED)]
SEED = "seed of the uniform draws q_t of the Hessian-correction point (q_t is a function of seed and t)"


class PolicyGradientHyperparameters(Hyperparameters):
    """What the three optimizers share, in their signatures' order; defaults are the paper's schedules, lr is ours."""

    lr: LearningRate = Field(0.1, description=LR)
    eta_schedule: Schedule = Field("paper", description=ETA_SCHEDULE)
    lr_schedule: Schedule = Field("paper", description=LR_SCHEDULE)
    eta: Real = Field(0.1, gt=0, le=1, description=ETA)
    normalize: Flag = Field(True, description="normalised steps gamma_t d_t / ||d_t|| (global norm)")
    eps: Epsilon = Field(1e-12, description=EPS)


class NPGIGTHyperparameters(PolicyGradientHyperparameters):
    """N-PG-IGT (Algorithm 2 of the paper)."""

    distributed: Distributed = "error"
    foreach: Foreach = None


class HARPGHyperparameters(PolicyGradientHyperparameters):
    """HARPG (Algorithm 3 without normalisation)."""

    normalize: Flag = Field(False, description="normalised steps gamma_t d_t / ||d_t|| (N-HARPG)")
    seed: Annotated[int, Strict(), Field(ge=0, description=SEED)] = 0
    distributed: Distributed = "error"
    foreach: Foreach = None


class NHARPGHyperparameters(HARPGHyperparameters):
    """N-HARPG (Algorithm 3): HARPG with normalised steps."""

    normalize: Flag = Field(True, description="normalised steps gamma_t d_t / ||d_t|| (N-HARPG)")


_CAPABILITIES = OptimizerCapabilities(
    supports_foreach=True,
    requires_closure=True,
    # The normalisation uses one norm over every parameter of the optimizer (the paper's theta is
    # one vector), so two param groups are not two separate optimizers.
    param_groups=False,
    ddp=DistributedSupport(
        status="tested",
        reason="torch.optim closures; a (loss, logp) closure needs distributed='average' (or 'local')",
    ),
    fsdp2=DistributedSupport(
        status="tested",
        reason="torch.optim closures; a (loss, logp) closure is refused on DTensor shards",
    ),
    compile=DistributedSupport(
        status="unsupported",
        reason="the step evaluates the closure at other points and keeps Python step counts for the eta_t and "
        "step-size schedules (Theorems 4.3, 5.1): a compiled step recompiles every step",
    ),
)

_SEED_INERT = "q_t enters the Hessian correction of (loss, logp) closures only; the example's closure returns the loss"
_INERT = {
    "eta": "eta is the momentum weight of eta_schedule='constant'; the example runs the paper's schedule",
    "distributed": "it decides what happens across processes; the example runs in one",
}
_COMMON = dict(
    kind="optimizer",
    paper=PAPER,
    tags=("reinforcement-learning", "policy-gradient", "variance-reduction", "normalized", "closure"),
    claims=("gradhub_harpg.claims:gaussian_bandit_sample_efficiency",),
)

NPG_IGT = MethodSpec(
    name="npg_igt",
    summary="Normalized policy gradient with implicit gradient transport (momentum at extrapolated points)",
    target="gradhub_harpg.npg_igt:NPGIGT",
    params=NPGIGTHyperparameters,
    example="gradhub_harpg.examples:normalized_steps_on_tiny_mdp",
    capabilities=_CAPABILITIES,
    inert={
        **_INERT,
    },
    **_COMMON,
)
HARPG = MethodSpec(
    name="harpg",
    summary="Hessian-aided recursive policy gradient: STORM-like momentum with a Hessian-vector correction",
    target="gradhub_harpg.harpg:HARPG",
    params=HARPGHyperparameters,
    example="gradhub_harpg.examples:plain_steps_on_tiny_mdp",
    capabilities=_CAPABILITIES,
    inert={
        **_INERT,
        "eps": "HARPG does not normalise its step; eps guards the norm of the normalised variants",
        "seed": _SEED_INERT,
    },
    **_COMMON,
)
N_HARPG = MethodSpec(
    name="n_harpg",
    summary="Normalized HARPG: Hessian-corrected recursive momentum with normalised steps",
    target="gradhub_harpg.harpg:NHARPG",
    params=NHARPGHyperparameters,
    example="gradhub_harpg.examples:normalized_steps_on_tiny_mdp",
    capabilities=_CAPABILITIES,
    inert={
        **_INERT,
        "seed": _SEED_INERT,
    },
    **_COMMON,
)
