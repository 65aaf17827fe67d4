"""Dropout Inversion Attack (DIA) and its Inverting Gradients (IG) baseline.

Threat model (Scheliga et al. 2023, §3): an honest-but-curious server knows the model
(weights, dropout layers and their ``p``) and the labels, and observes the client's gradient
``g* = grad_theta L(f_theta(x*; M*), y*)``, computed in train mode with unknown dropout masks ``M*``.

IG (Geiping et al. 2020, §4, Eq. 4) looks for the data whose gradient points like ``g*``:

    J_IG(x) = 1 - <g, g*> / (||g|| ||g*|| + 1e-8) + tv_weight * TV(x),   g = grad_theta L(f_theta(x), y)

(one cosine over all observed parameters; TV anisotropic, means over elements), minimised by
Adam on the sign of ``grad_x J``. Its forward runs dropout as the identity, so it cannot match
a gradient taken under dropout. DIA (Scheliga et al. 2023, §4, Eq. 3-4) also optimises one
continuous mask ``m_l`` per dropout layer, of the full activation shape (batch included):

    J(x, m) = J_IG(x) with every dropout layer computing h * m_l / (1 - p_l)
              + mask_weight * sum_l |(1 - mean(m_l)) - p_l|              (drop rate of m_l near p_l)

One iteration: J and its gradient w.r.t. ``x`` and the masks (double backward through ``g``);
the gradient w.r.t. ``x`` replaced by its sign (``signed_grad``; the masks keep theirs); one Adam
step (betas 0.9/0.999) on ``[x] + masks``; masks clipped to [0, 1] and ``x`` into ``clip_range``;
ReduceLROnPlateau and early stopping on J (the official ``attack_batch``).

Papers: Scheliga, Mäder, Seeland, "Dropout is NOT All You Need to Prevent Gradient Leakage",
AAAI 2023, arXiv:2208.06163, official code https://github.com/dAI-SY-Group/DropoutInversionAttack
(``src/attacks.py``: ``IterativeGradientInversionAttack``, ``IG``, ``DropoutInversionAttack``;
``src/loss.py``: ``TV``, ``GCosineDistance``; defaults from ``example_configs/attacks/DIA.yaml``).
Geiping, Bauermeister, Dröge, Moeller, "Inverting Gradients", NeurIPS 2020, arXiv:2003.14053.

Readings settled from the official code (see the README): the rest of the model runs in
eval mode (``attacker_train_mode: false``); ``J`` includes the regularisers for the
scheduler and the early stopping; masks start as Bernoulli(1 - p) draws; a model whose
dropout layers all have ``p == 0`` falls back to IG. What differs: ``max_iter`` is the
whole budget, shared by the ``n_trials`` restarts (official: per trial; equal for the
default single trial); the returned masks are those paired with the returned ``x`` (official:
the last ones); a model with no ``nn.Dropout`` at all is an error for DIA (official: IG);
randomness comes only from ``generator``; the user's model is left as found: it runs through
``torch.func.functional_call`` (its parameters as constants, the observed ones as fresh leaves,
its buffers as copies), the masks enter through forward hooks removed afterwards, and
:func:`gradhub.kinds.evaluation_mode` restores every module's mode.

Cost, for budgeting: one model forward per iteration (plus its double backward), and for
DIA with active dropout one extra forward (no grad) before the first iteration to read the
activation shapes of the dropout layers. ``GradientInversionResult.model_calls`` counts them.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.func import functional_call
from torch.utils.hooks import RemovableHandle

from gradhub.errors import HyperparameterError, UnsupportedInputError
from gradhub.hyperparameters import validated
from gradhub.kinds import evaluation_mode
from gradhub.kinds.attack import AttackResult
from gradhub.kinds.inputs import require_finite, require_matching_shapes, require_same_device, require_tensor
from gradhub.progress import ProgressCallback, Tracker, tracker
from gradhub.specs import MethodSpec
from gradhub_dia import DIA, INVERTING_GRADIENTS, DropoutInversionHyperparameters, InvertingGradientsHyperparameters
from gradhub_dia.mask_dropout import dropout_layers, swap_dropout

LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
COSINE_EPS = 1e-8  # GCosineDistance's denominator guard (src/loss.py)
_AnyDropout = nn.modules.dropout._DropoutNd


@dataclass
class GradientInversionResult(AttackResult):
    """``output`` is the reconstruction x (batch first); ``history`` J per iteration of the best trial."""

    masks: list[torch.Tensor] | None = None
    """DIA: one mask per dropout layer (full activation shape, values in [0, 1]) paired with ``output``;
    None for IG and for DIA's p == 0 fallback. Binarise with ``mask >= 0.5``."""
    best_loss: float = math.nan
    """The lowest J reached (the returned x is the iterate right after that step, as in the official code)."""
    best_iteration: int = 0
    model_calls: int = 0
    """Model forward passes made: ``iterations`` (+1 shape probe for DIA with active dropout)."""
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)
    """``mse`` and ``psnr`` when ``ground_truth`` is given, ``mask_agreement`` when ``true_masks`` is."""
    fallback: bool = False
    """True when DIA ran as IG because every dropout layer has p == 0."""


# --- the objective (Geiping et al. 2020, Eq. 4; Scheliga et al. 2023, Eq. 3-4) ----------------------


def gradient_cosine_distance(gradients: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> torch.Tensor:
    """``1 - <g, g*> / (||g|| ||g*|| + 1e-8)`` over the concatenation of all parameter gradients (one cosine)."""
    inner = sum((g * t).sum() for g, t in zip(gradients, targets))
    norm = torch.sqrt(sum(g.square().sum() for g in gradients))
    target_norm = torch.sqrt(sum(t.square().sum() for t in targets))
    return 1 - inner / (norm * target_norm + COSINE_EPS)


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Anisotropic TV over the last two dims: mean |horizontal differences| + mean |vertical differences|."""
    horizontal = (x[..., :, 1:] - x[..., :, :-1]).abs().mean()
    vertical = (x[..., 1:, :] - x[..., :-1, :]).abs().mean()
    return horizontal + vertical


def mask_regulariser(masks: Sequence[torch.Tensor], drop_rates: Sequence[float]) -> torch.Tensor:
    """``sum_l |(1 - mean(m_l)) - p_l|``: the L1 distance of each mask's drop rate from its layer's p."""
    return sum(((1 - m.mean()) - p).abs() for m, p in zip(masks, drop_rates))


def _ig_objective(victim: _Victim, x: torch.Tensor, tv_weight: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``J_IG(x) = 1 - cos(g, g*) + tv_weight * TV(x)`` (Geiping et al. 2020, Eq. 4), and its cosine term."""
    distance = victim.distance(x)
    return (distance + tv_weight * total_variation(x) if tv_weight else distance), distance


def _dia_objective(
    victim: _Victim,
    x: torch.Tensor,
    layers: Sequence[nn.Dropout],
    masks: Sequence[torch.Tensor],
    tv_weight: float,
    mask_weight: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``J(x, m)`` (Scheliga et al. 2023, Eq. 4): ``J_IG`` with the masks in the forward (Eq. 3), plus the
    drop-rate prior ``mask_weight * sum_l |(1 - mean(m_l)) - p_l|``; and its cosine term."""
    with _masked(layers, masks):
        objective, distance = _ig_objective(victim, x, tv_weight)
    return objective + mask_weight * mask_regulariser(masks, [float(layer.p) for layer in layers]), distance


# --- the two attacks: each paper's loop -------------------------------------------------------------


def _inverting_gradients(
    victim: _Victim, options: InvertingGradientsHyperparameters, generator: torch.Generator | None, bar: Tracker
) -> list[_Trial]:
    """Geiping et al. 2020, §4: ``min_x J_IG(x)`` (Eq. 4) by Adam on ``sign(grad_x J)``, from ``n_trials`` starts."""
    trials = []
    for budget in _budgets(options):
        x = _dummy_data(victim, options.init, generator)
        trial = _Trial([x], options, bar)
        for _ in range(budget):
            objective, distance = _ig_objective(victim, x, options.tv_weight)  # dropout: the identity
            (grad_x,) = torch.autograd.grad(objective, [x])
            trial.step([grad_x.sign() if options.signed_grad else grad_x])
            _clip(x, options.clip_range)
            if trial.stop(objective, distance):
                break
        trials.append(trial)
    return trials


def _dropout_inversion(
    victim: _Victim,
    layers: list[nn.Dropout],
    mask_shapes: list[torch.Size],
    options: DropoutInversionHyperparameters,
    generator: torch.Generator | None,
    bar: Tracker,
) -> list[_Trial]:
    """Scheliga et al. 2023, §4: ``min_{x, m} J(x, m)`` (Eq. 3-4), IG's loop with one mask per dropout layer."""
    drop_rates = [float(layer.p) for layer in layers]
    trials = []
    for budget in _budgets(options):
        x = _dummy_data(victim, options.init, generator)
        masks = [_bernoulli(victim, shape, p, generator) for shape, p in zip(mask_shapes, drop_rates)]
        trial = _Trial([x, *masks], options, bar)
        for _ in range(budget):
            objective, distance = _dia_objective(victim, x, layers, masks, options.tv_weight, options.mask_weight)
            grad_x, *grad_masks = torch.autograd.grad(objective, [x, *masks])
            trial.step([grad_x.sign() if options.signed_grad else grad_x, *grad_masks])  # masks: raw gradients
            _clip(x, options.clip_range)
            for mask in masks:
                _clip(mask, (0, 1))
            if trial.stop(objective, distance):
                break
        trials.append(trial)
    return trials


@validated(INVERTING_GRADIENTS)
def inverting_gradients(
    model: nn.Module,
    target_gradients: Mapping[str, torch.Tensor] | Sequence[torch.Tensor],
    labels: torch.Tensor,
    input_shape: Sequence[int],
    generator: torch.Generator | None = None,
    *,
    max_iter: int,
    lr: float,
    tv_weight: float,
    signed_grad: bool,
    clip_range: tuple[float, float] | None,
    init: str,
    lr_patience: int | None,
    lr_factor: float,
    early_stop_patience: int | None,
    stop_loss: float,
    n_trials: int,
    attacker_train_mode: bool,
    loss_fn: LossFunction | None = None,
    ground_truth: torch.Tensor | None = None,
    progress: ProgressCallback | None = None,
) -> GradientInversionResult:
    """Inverting Gradients (Geiping et al. 2020) as configured in the DIA repository: DIA without masks.

    Every dropout layer acts as the identity (eval mode), whatever ``attacker_train_mode``
    says about the rest of the model. Arguments as :func:`dropout_inversion_attack`.
    """
    options: InvertingGradientsHyperparameters = _options(INVERTING_GRADIENTS, locals())
    method = INVERTING_GRADIENTS.name
    victim = _observe(method, model, target_gradients, labels, input_shape, loss_fn, tv_weight)
    _check_extras(method, victim, generator, ground_truth)
    with _attacker_modes(model, attacker_train_mode), tracker(progress, total=max_iter, task=method) as bar:
        trials = _inverting_gradients(victim, options, generator, bar)
    return _result(INVERTING_GRADIENTS, trials, ground_truth=ground_truth)


@validated(DIA)
def dropout_inversion_attack(
    model: nn.Module,
    target_gradients: Mapping[str, torch.Tensor] | Sequence[torch.Tensor],
    labels: torch.Tensor,
    input_shape: Sequence[int],
    generator: torch.Generator | None = None,
    *,
    max_iter: int,
    lr: float,
    tv_weight: float,
    mask_weight: float,
    signed_grad: bool,
    clip_range: tuple[float, float] | None,
    init: str,
    lr_patience: int | None,
    lr_factor: float,
    early_stop_patience: int | None,
    stop_loss: float,
    n_trials: int,
    attacker_train_mode: bool,
    loss_fn: LossFunction | None = None,
    ground_truth: torch.Tensor | None = None,
    true_masks: Sequence[torch.Tensor] | None = None,
    progress: ProgressCallback | None = None,
) -> GradientInversionResult:
    """Reconstruct the client's batch from its gradient under dropout (DIA, paper §4, Eq. 3-4).

    ``target_gradients``: the observed ``g*`` (dict parameter name -> tensor, possibly a
    subset of the parameters, or a list in ``model.parameters()`` order); ``labels``: the
    client's labels (known, as in the paper); ``input_shape``: one sample's shape, the batch
    size is ``len(labels)``. ``loss_fn(prediction, labels)`` is the client's training loss
    (default cross-entropy, mean). ``ground_truth`` and ``true_masks`` (for evaluation only)
    add ``mse``/``psnr`` and ``mask_agreement`` to ``metrics``. A model whose dropout layers
    all have ``p == 0`` falls back to IG (``result.fallback``).
    """
    options: DropoutInversionHyperparameters = _options(DIA, locals())
    victim = _observe(DIA.name, model, target_gradients, labels, input_shape, loss_fn, tv_weight)
    _check_extras(DIA.name, victim, generator, ground_truth)
    layers = _elementwise_dropout(DIA.name, model)
    fallback = all(layer.p == 0 for layer in layers)  # p = 0 everywhere: DIA is IG
    with _attacker_modes(model, attacker_train_mode):
        mask_shapes = [] if fallback else _activation_shapes(DIA.name, victim, layers)
        _check_true_masks(DIA.name, true_masks, mask_shapes, victim)
        with tracker(progress, total=max_iter, task=DIA.name) as bar:
            if fallback:
                trials = _inverting_gradients(victim, options, generator, bar)
            else:
                trials = _dropout_inversion(victim, layers, mask_shapes, options, generator, bar)
    probes = 0 if fallback else 1  # the forward that read the masks' shapes
    return _result(DIA, trials, setup_calls=probes, ground_truth=ground_truth, true_masks=true_masks, fallback=fallback)


# --- what the server holds (Scheliga et al. 2023, §3) -----------------------------------------------


@dataclass
class _Victim:
    """The attacked model, the observed ``g*`` of some of its parameters and the labels (paper §3).

    The model is only read: ``state`` holds its parameters as constants (the observed ones as
    fresh leaves sharing their storage) and copies of its buffers, for ``functional_call``.
    """

    model: nn.Module
    state: dict[str, torch.Tensor]
    observed: list[torch.Tensor]
    targets: list[torch.Tensor]
    labels: torch.Tensor
    loss_fn: LossFunction
    shape: tuple[int, ...]
    """``(len(labels), *input_shape)``: the shape of x."""
    device: torch.device
    dtype: torch.dtype
    """The model's (its first parameter's): x and the masks are made with them."""
    method: str = ""
    fits: bool = False
    """Whether a forward on x of ``shape`` has run: the first one is checked for a shape that does not fit."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fits:
            return functional_call(self.model, self.state, (x,))
        try:
            output = functional_call(self.model, self.state, (x,))
        except torch.cuda.OutOfMemoryError:
            raise
        except RuntimeError as error:  # torch's "mat1 and mat2 shapes cannot be multiplied" and kin
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise UnsupportedInputError(
                self.method,
                "input_shape",
                f"{self.shape[1:]} (x of shape {self.shape}, batch size len(labels) = {self.shape[0]})",
                f"it does not fit the model (its first forward on x failed: {reason!r}); input_shape must be "
                "the shape of one sample as the model takes it",
            ) from error
        self.fits = True
        return output

    def distance(self, x: torch.Tensor) -> torch.Tensor:
        """``1 - cos(g, g*)``, ``g = grad_theta L(f_theta(x), y)`` with its graph kept (J is differentiated via g)."""
        loss = self.loss_fn(self.forward(x), self.labels)
        found = torch.autograd.grad(loss, self.observed, create_graph=True, allow_unused=True)
        gradients = [torch.zeros_like(p) if g is None else g for g, p in zip(found, self.observed)]
        return gradient_cosine_distance(gradients, self.targets)


def _observe(
    method: str,
    model: Any,
    target_gradients: Any,
    labels: Any,
    input_shape: Any,
    loss_fn: LossFunction | None,
    tv_weight: float,
) -> _Victim:
    """Check what the server holds and pair each observed gradient with its parameter."""
    if not isinstance(model, nn.Module):
        raise UnsupportedInputError(method, "model", _describe(model), "a torch.nn.Module")
    named = dict(model.named_parameters())
    if not named:
        raise UnsupportedInputError(
            method, "model", type(model).__name__, "a model with parameters (their gradient is observed)"
        )
    first = next(iter(named.values()))
    if not first.is_floating_point():
        raise UnsupportedInputError(method, "model dtype", first.dtype, "floating-point parameters")
    require_tensor(method, "labels", labels, dtype="any", min_dim=1, nonempty=True)
    require_same_device(method, model=first, labels=labels)
    if (
        not isinstance(input_shape, Sequence)
        or isinstance(input_shape, str)
        or not all(isinstance(size, int) and not isinstance(size, bool) and size > 0 for size in input_shape)
    ):
        raise UnsupportedInputError(
            method,
            "input_shape",
            repr(input_shape),
            "the per-sample input shape, a tuple of positive ints, e.g. (1, 8, 8)",
        )
    if tv_weight and len(input_shape) < 2:
        raise HyperparameterError(
            method,
            "tv_weight",
            tv_weight,
            f"0 for inputs with fewer than 2 spatial dims (input_shape={tuple(input_shape)})",
        )
    targets = match_gradients(method, named, target_gradients)
    state = {name: parameter.detach() for name, parameter in named.items()}
    state |= {name: buffer.clone() for name, buffer in model.named_buffers()}
    observed = [state[name].requires_grad_(True) for name in targets]
    shape = (labels.shape[0], *input_shape)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    targets_list = list(targets.values())
    return _Victim(model, state, observed, targets_list, labels, loss_fn, shape, first.device, first.dtype, method)


def match_gradients(method: str, named: dict[str, nn.Parameter], target_gradients: Any) -> dict[str, torch.Tensor]:
    """``g*`` by parameter name: a dict (possibly a subset) or a list in ``model.parameters()`` order.

    Checked against ``named`` (the model's trainable parameters): known names, shapes, devices and
    finite values, with errors naming ``method``. Shared with gradhub-gifd's attacks."""
    if isinstance(target_gradients, Mapping):
        pairs = dict(target_gradients)
        for name in pairs:
            if name not in named:
                raise UnsupportedInputError(
                    method,
                    "target_gradients key",
                    repr(name),
                    f"keys must be parameter names of the model: {list(named)}",
                )
    elif isinstance(target_gradients, Sequence) and not isinstance(target_gradients, str):
        if len(target_gradients) != len(named):
            raise UnsupportedInputError(
                method,
                "target_gradients",
                f"a sequence of {len(target_gradients)} tensors",
                f"one gradient per model parameter, in model.parameters() order ({len(named)}), "
                "or a dict name -> tensor",
            )
        pairs = dict(zip(named, target_gradients))
    else:
        raise UnsupportedInputError(
            method,
            "target_gradients",
            _describe(target_gradients),
            "a dict parameter name -> tensor, or a list of tensors",
        )
    if not pairs:
        raise UnsupportedInputError(method, "target_gradients", "{}", "at least one parameter gradient")
    for name, gradient in pairs.items():
        label = f"target_gradients[{name!r}]"
        require_tensor(method, label, gradient)
        require_matching_shapes(method, **{label: gradient, name: named[name]})
        require_same_device(method, **{label: gradient, name: named[name]})
        require_finite(method, label, gradient)
    return {name: gradient.detach().to(named[name].dtype) for name, gradient in pairs.items()}


def _require_shape(method: str, name: str, value: Any, shape: tuple[int, ...], victim: _Victim) -> None:
    require_tensor(method, name, value, dtype="real")
    if tuple(value.shape) != shape:
        raise UnsupportedInputError(method, f"{name} shape", tuple(value.shape), f"{name} must have shape {shape}")
    require_same_device(method, **{name: value, "model": victim.observed[0]})


def _check_extras(method: str, victim: _Victim, generator: Any, ground_truth: Any) -> None:
    if ground_truth is not None:
        _require_shape(method, "ground_truth", ground_truth, victim.shape, victim)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise UnsupportedInputError(method, "generator", _describe(generator), "a torch.Generator or None")


def _check_true_masks(
    method: str, true_masks: Sequence[torch.Tensor] | None, mask_shapes: list[torch.Size], victim: _Victim
) -> None:
    if true_masks is None:
        return
    if not mask_shapes:
        raise UnsupportedInputError(
            method, "true_masks", "given", "true_masks only for DIA on a model with dropout p > 0"
        )
    if len(true_masks) != len(mask_shapes):
        raise UnsupportedInputError(
            method, "true_masks", f"{len(true_masks)} masks", f"one per dropout layer ({len(mask_shapes)})"
        )
    for index, (mask, shape) in enumerate(zip(true_masks, mask_shapes)):
        _require_shape(method, f"true_masks[{index}]", mask, tuple(shape), victim)


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor{tuple(value.shape)} {value.dtype} on {value.device}"
    return repr(value) if not isinstance(value, nn.Module) else type(value).__name__


# --- shared mechanics -------------------------------------------------------------------------------


class _Trial:
    """One restart of the official ``attack_batch``: Adam (betas 0.9, 0.999) on the variables (x first),
    ReduceLROnPlateau and early stopping on J, and the iterate right after the step that lowered J kept."""

    def __init__(self, variables: list[torch.Tensor], options: InvertingGradientsHyperparameters, bar: Tracker) -> None:
        self.variables, self.options, self.bar = variables, options, bar
        self.optimizer = torch.optim.Adam(variables, lr=options.lr, betas=(0.9, 0.999))
        self.scheduler = (
            torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer, mode="min", factor=options.lr_factor, patience=options.lr_patience
            )
            if options.lr_patience is not None
            else None
        )
        self.history: list[float] = []
        self.loss, self.iteration, self.since_best = math.inf, 0, 0
        self.best: list[torch.Tensor] = []

    def step(self, gradients: Sequence[torch.Tensor]) -> None:
        """One Adam step with these gradients, one per variable."""
        for variable, gradient in zip(self.variables, gradients):
            variable.grad = gradient
        self.optimizer.step()

    def stop(self, objective: torch.Tensor, distance: torch.Tensor) -> bool:
        """Record J of the step just taken; True once J < stop_loss, or no lower J for early_stop_patience steps."""
        value = objective.item()  # the scheduler and the early stopping need J on the host
        self.history.append(value)
        if self.scheduler is not None:
            self.scheduler.step(value)
        if value < self.loss:
            self.loss, self.iteration, self.since_best = value, len(self.history) - 1, 0
            self.best = [variable.detach().clone() for variable in self.variables]
        else:
            self.since_best += 1
        self.bar.update(loss=value, distance=distance.detach())
        patience = self.options.early_stop_patience
        return self.loss < self.options.stop_loss or (patience is not None and self.since_best >= patience)


def _budgets(options: InvertingGradientsHyperparameters) -> list[int]:
    """``max_iter`` shared by the ``n_trials`` restarts (the official code gives each trial ``max_iter``)."""
    share, rest = divmod(options.max_iter, options.n_trials)
    return [share + (trial < rest) for trial in range(options.n_trials)]


def _dummy_data(victim: _Victim, init: str, generator: torch.Generator | None) -> torch.Tensor:
    """``x ~ N(0, 1)`` (``init="randn"``) or ``U(-1, 1)``, drawn from ``generator`` on its device."""
    where = generator.device if generator is not None else victim.device
    if init == "randn":
        x = torch.randn(victim.shape, generator=generator, device=where, dtype=victim.dtype)
    else:
        x = (torch.rand(victim.shape, generator=generator, device=where, dtype=victim.dtype) - 0.5) * 2
    return x.to(victim.device).requires_grad_(True)


def _bernoulli(victim: _Victim, shape: torch.Size, p: float, generator: torch.Generator | None) -> torch.Tensor:
    """A mask ``m ~ Bernoulli(1 - p)`` of ``shape``, drawn from ``generator`` on its device (the official start)."""
    where = generator.device if generator is not None else victim.device
    mask = torch.full(shape, 1 - p, device=where, dtype=victim.dtype).bernoulli_(generator=generator)
    return mask.to(victim.device).requires_grad_(True)


def _clip(x: torch.Tensor, clip_range: tuple[float, float] | None) -> None:
    if clip_range is not None:
        with torch.no_grad():
            x.clamp_(clip_range[0], clip_range[1])


@contextlib.contextmanager
def _masked(layers: Sequence[nn.Dropout], masks: Sequence[torch.Tensor]) -> Iterator[None]:
    """Inside, dropout layer ``l`` computes ``h * (m_l / (1 - p_l))`` (Eq. 3) with the attacker's mask ``m_l``."""
    with _hooks(
        layer.register_forward_hook(functools.partial(_apply_mask, mask)) for layer, mask in zip(layers, masks)
    ):
        yield


def _apply_mask(mask: torch.Tensor, layer: nn.Dropout, inputs: tuple[torch.Tensor, ...], output: Any) -> torch.Tensor:
    return inputs[0] * (mask / (1 - layer.p))


def _activation_shapes(method: str, victim: _Victim, layers: list[nn.Dropout]) -> list[torch.Size]:
    """One no-grad forward of zeros, reading the input shape at every dropout layer: the masks' shapes."""
    seen: dict[int, torch.Size] = {}

    def read(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        seen[id(module)] = args[0].shape

    with _hooks(layer.register_forward_pre_hook(read) for layer in layers), torch.no_grad():
        victim.forward(torch.zeros(victim.shape, device=victim.device, dtype=victim.dtype))
    missing = [index for index, layer in enumerate(layers) if id(layer) not in seen]
    if missing:
        raise UnsupportedInputError(
            method, "dropout layers", f"layers {missing} never called", "every nn.Dropout must be used in forward"
        )
    return [seen[id(layer)] for layer in layers]


def _elementwise_dropout(method: str, model: nn.Module) -> list[nn.Dropout]:
    """The ``nn.Dropout`` layers whose masks DIA inverts; other dropout kinds are an error."""
    others = [
        f"{name} ({type(module).__name__})"
        for name, module in model.named_modules()
        if isinstance(module, _AnyDropout) and not isinstance(module, nn.Dropout)
    ]
    if others:
        raise UnsupportedInputError(
            method,
            "dropout layers",
            ", ".join(others),
            "DIA models elementwise nn.Dropout masks only (channel/alpha dropout masks are not implemented)",
        )
    layers = dropout_layers(model)
    if not layers:
        raise UnsupportedInputError(
            method,
            "model",
            f"{type(model).__name__} without any nn.Dropout layer",
            "DIA inverts dropout masks, so the model must contain nn.Dropout; "
            f"use {INVERTING_GRADIENTS.name} otherwise",
        )
    return layers


@contextlib.contextmanager
def _attacker_modes(model: nn.Module, train: bool) -> Iterator[None]:
    """Eval mode (the official ``attacker_train_mode: false``), or train mode for all but dropout, which
    the attacker models itself (DIA) or not at all (IG); every module's own mode restored afterwards."""
    with evaluation_mode(model):
        if train:
            for module in model.modules():
                module.training = not isinstance(module, _AnyDropout)
        yield


@contextlib.contextmanager
def _hooks(handles: Iterable[RemovableHandle]) -> Iterator[None]:
    """Removes the hooks (registered as ``handles`` is iterated) on the way out, whatever happens inside."""
    with contextlib.ExitStack() as stack:
        for handle in handles:
            stack.callback(handle.remove)
        yield


def _options(spec: MethodSpec, arguments: Mapping[str, Any]) -> Any:
    """A call's hyperparameters (``locals()`` on entry, validated by ``@validated``) as the spec's frozen model."""
    return spec.params.model_construct(**{name: arguments[name] for name in spec.params.model_fields})


def _result(
    spec: MethodSpec,
    trials: list[_Trial],
    *,
    setup_calls: int = 0,
    ground_truth: torch.Tensor | None = None,
    true_masks: Sequence[torch.Tensor] | None = None,
    fallback: bool = False,
) -> GradientInversionResult:
    """The lowest-J trial's iterate, with the budget spent and the evaluation metrics."""
    best = min(trials, key=lambda trial: trial.loss)
    if not best.best:
        raise UnsupportedInputError(
            spec.name, "objective J", "never finite", "a model and loss with a finite gradient at the dummy data"
        )
    output, *masks = best.best
    metrics: dict[str, torch.Tensor] = {}
    if ground_truth is not None:
        mse = (output - ground_truth).double().square().mean()
        data_range = (ground_truth.max() - ground_truth.min()).double().clamp_min(torch.finfo(torch.float64).tiny)
        metrics["mse"] = mse
        metrics["psnr"] = 10 * torch.log10(data_range.square() / mse.clamp_min(1e-300))
    if true_masks is not None:
        agree = sum(((m >= 0.5) == (t >= 0.5)).sum() for m, t in zip(masks, true_masks))
        metrics["mask_agreement"] = agree.double() / sum(m.numel() for m in masks)
    iterations = sum(len(trial.history) for trial in trials)
    return GradientInversionResult(
        output=output,
        iterations=iterations,
        history=torch.tensor(best.history, dtype=torch.float64, device="cpu"),  # host floats, read each iteration
        masks=masks or None,
        best_loss=float(best.loss),
        best_iteration=best.iteration,
        model_calls=setup_calls + iterations,
        metrics=metrics,
        fallback=fallback,
    )


# --- what a client sends (for experiments) ----------------------------------------------------------


def client_gradients(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    *,
    loss_fn: LossFunction | None = None,
    generator: torch.Generator | None = None,
) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
    """What a client sends, and the dropout masks it used: ``(g* by parameter name, masks)``.

    Runs a deep copy of ``model`` in train mode (dropout active, masks drawn from
    ``generator``), so ``model`` itself is untouched. Masks are listed in
    :func:`~gradhub_dia.mask_dropout.dropout_layers` order, one per forward call.
    """
    client = swap_dropout(copy.deepcopy(model))
    client.train()
    layers = dropout_layers(client)
    for layer in layers:
        layer.track, layer.generator = True, generator
    for parameter in client.parameters():
        parameter.grad = None
    named = [(name, p) for name, p in client.named_parameters() if p.requires_grad]
    loss = (loss_fn or nn.CrossEntropyLoss())(client(inputs), labels)
    gradients = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)
    result = {name: (torch.zeros_like(p) if g is None else g.detach()) for (name, p), g in zip(named, gradients)}
    return result, [layer.mask for layer in layers]


# The public names, from the objects themselves: each method's name is written once, in its spec.
__all__ = [
    exported.__name__
    for exported in (
        GradientInversionResult,
        client_gradients,
        dropout_inversion_attack,
        gradient_cosine_distance,
        inverting_gradients,
        mask_regulariser,
        match_gradients,
        total_variation,
    )
]
