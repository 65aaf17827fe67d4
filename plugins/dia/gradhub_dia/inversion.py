"""Dropout Inversion Attack (DIA) and its Inverting Gradients (IG) baseline.

Paper: "Dropout is NOT All You Need to Prevent Gradient Leakage", Daniel Scheliga, Patrick
Mäder, Marco Seeland, AAAI 2023, arXiv:2208.06163. Official code:
https://github.com/dAI-SY-Group/DropoutInversionAttack (``src/attacks.py``: classes
``IterativeGradientInversionAttack``, ``IG``, ``DropoutInversionAttack``; ``src/loss.py``:
``TV``, ``GCosineDistance``; defaults from ``example_configs/attacks/DIA.yaml``).
Baseline: Geiping et al., "Inverting Gradients", NeurIPS 2020, arXiv:2003.14053.

Threat model (paper §3): an honest-but-curious server knows the model (weights, dropout
layers and their ``p``) and the labels, and observes the client's parameter gradient
``g* = grad_theta L(f_theta(x*; M*), y*)`` computed in train mode with unknown dropout masks
``M*``. IG ignores the masks (its forward runs dropout as the identity) and fails; DIA
(paper §4, Eq. 3-4) optimises the data ``x`` and one continuous mask ``m_l`` per dropout
layer, of the full activation shape (batch included), jointly:

    J(x, m) = 1 - <g, g*> / (||g|| ||g*|| + 1e-8)          (cosine over all parameters at once)
              + tv_weight * TV(x)                           (anisotropic, means over elements)
              + mask_weight * sum_l |(1 - mean(m_l)) - p_l|  (drop rate of m_l near p_l)

with ``g = grad_theta L(f_theta(x; m), y)`` (``create_graph=True``) and every dropout layer
computing ``h * m_l / (1 - p_l)``. One iteration: J and its gradient w.r.t. ``x`` and the
masks; the gradient w.r.t. ``x`` replaced by its sign (``signed_grad``; the masks keep
theirs); one Adam step (lr 0.1, betas 0.9/0.999) on ``[x] + masks``; masks clipped to [0, 1]
and ``x`` into ``clip_range``; ReduceLROnPlateau and early stopping on J.

Readings settled from the official code (see the README): the rest of the model runs in
eval mode (``attacker_train_mode: false``); ``J`` includes the regularisers for the
scheduler and the early stopping; masks start as Bernoulli(1 - p) draws; a model whose
dropout layers all have ``p == 0`` falls back to IG. What differs: ``max_iter`` is the
whole budget, shared by the ``n_trials`` restarts (official: per trial; equal for the
default single trial); the returned masks are those paired with the returned ``x`` (official:
the last ones); a model with no ``nn.Dropout`` at all is an error for DIA (official: IG);
randomness comes only from ``generator``; the user's model is never modified (the attack
works on a deep copy with ``MaskDropout`` swapped in).

Cost, for budgeting: one model forward per iteration (plus its double backward), and for
DIA with active dropout one extra forward (no grad) before the first iteration to read the
activation shapes of the dropout layers. ``GradientInversionResult.model_calls`` counts them.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from gradhub.errors import HyperparameterError, UnsupportedInputError
from gradhub.hyperparameters import validated
from gradhub.kinds.attack import AttackResult
from gradhub.progress import ProgressCallback, tracker
from gradhub_dia import DropoutInversionHyperparameters, InvertingGradientsHyperparameters
from gradhub_dia.mask_dropout import MaskDropout, dropout_layers, swap_dropout

__all__ = [
    "GradientInversionResult",
    "client_gradients",
    "dropout_inversion_attack",
    "gradient_cosine_distance",
    "inverting_gradients",
    "mask_regulariser",
    "total_variation",
]

LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
COSINE_EPS = 1e-8  # GCosineDistance's denominator guard (src/loss.py)


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


# --- the objective (Eq. 3-4) ---------------------------------------------------------------


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


class _Attacker:
    """The attacker's copy of the model and the fixed parts of J; ``objective`` evaluates Eq. 4."""

    def __init__(
        self,
        model: nn.Module,
        parameters: list[torch.Tensor],
        targets: list[torch.Tensor],
        labels: torch.Tensor,
        loss_fn: LossFunction,
        layers: list[MaskDropout],
        tv_weight: float,
        mask_weight: float,
    ) -> None:
        self.model, self.parameters, self.targets, self.labels = model, parameters, targets, labels
        self.loss_fn, self.layers, self.tv_weight, self.mask_weight = loss_fn, layers, tv_weight, mask_weight
        self.drop_rates = [float(layer.p) for layer in layers]

    def gradients(self, x: torch.Tensor, masks: Sequence[torch.Tensor] | None) -> list[torch.Tensor]:
        """``grad_theta L(f(x; m), y)`` with the graph kept (double backward through J)."""
        for layer, mask in zip(self.layers, masks or ()):
            layer.mask, layer.use_mask = mask, True
        loss = self.loss_fn(self.model(x), self.labels)
        found = torch.autograd.grad(loss, self.parameters, create_graph=True, allow_unused=True)
        return [torch.zeros_like(p) if g is None else g for g, p in zip(found, self.parameters)]

    def objective(
        self, x: torch.Tensor, masks: Sequence[torch.Tensor] | None, mask_sign: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(J, cosine distance) at ``x`` and ``masks`` (None: IG, dropout as identity)."""
        distance = gradient_cosine_distance(self.gradients(x, masks), self.targets)
        total = distance
        if self.tv_weight:
            total = total + self.tv_weight * total_variation(x)
        if masks is not None and self.mask_weight:
            total = total + mask_sign * self.mask_weight * mask_regulariser(masks, self.drop_rates)
        return total, distance


# --- inputs --------------------------------------------------------------------------------


def _unsupported(method: str, what: str, value: Any, allowed: str) -> UnsupportedInputError:
    return UnsupportedInputError(method, what, value, allowed)


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor{tuple(value.shape)} {value.dtype} on {value.device}"
    return repr(value) if not isinstance(value, nn.Module) else type(value).__name__


def _match_gradients(method: str, model: nn.Module, target_gradients: Any) -> tuple[list[str], list[torch.Tensor]]:
    named = dict(model.named_parameters())
    if isinstance(target_gradients, Mapping):
        pairs = list(target_gradients.items())
        for name, _ in pairs:
            if name not in named:
                raise _unsupported(
                    method,
                    "target_gradients key",
                    repr(name),
                    f"keys must be parameter names of the model: {list(named)}",
                )
    elif isinstance(target_gradients, Sequence) and not isinstance(target_gradients, str):
        if len(target_gradients) != len(named):
            raise _unsupported(
                method,
                "target_gradients",
                f"a sequence of {len(target_gradients)} tensors",
                f"one gradient per model parameter, in model.parameters() order ({len(named)}), "
                "or a dict name -> tensor",
            )
        pairs = list(zip(named, target_gradients))
    else:
        raise _unsupported(
            method,
            "target_gradients",
            _describe(target_gradients),
            "a dict parameter name -> tensor, or a list of tensors",
        )
    if not pairs:
        raise _unsupported(method, "target_gradients", "{}", "at least one parameter gradient")
    for name, gradient in pairs:
        parameter = named[name]
        if not isinstance(gradient, torch.Tensor) or not gradient.is_floating_point():
            raise _unsupported(method, f"target_gradients[{name!r}]", _describe(gradient), "a floating-point tensor")
        if gradient.shape != parameter.shape:
            raise _unsupported(
                method,
                f"target_gradients[{name!r}] shape",
                tuple(gradient.shape),
                f"the parameter's shape {tuple(parameter.shape)}",
            )
        if gradient.device != parameter.device:
            raise _unsupported(
                method, f"target_gradients[{name!r}] device", gradient.device, f"the model's device {parameter.device}"
            )
        if not torch.isfinite(gradient).all():
            raise _unsupported(method, f"target_gradients[{name!r}]", "non-finite values", "finite gradients")
    return [name for name, _ in pairs], [g.detach().to(named[name].dtype) for name, g in pairs]


def _check_inputs(
    method: str,
    model: Any,
    labels: Any,
    input_shape: Any,
    clip_range: tuple[float, float] | None,
    max_iter: int,
    n_trials: int,
    tv_weight: float,
) -> tuple[tuple[int, ...], torch.device, torch.dtype]:
    if not isinstance(model, nn.Module):
        raise _unsupported(method, "model", _describe(model), "a torch.nn.Module")
    parameters = list(model.parameters())
    if not parameters:
        raise _unsupported(
            method, "model", type(model).__name__, "a model with parameters (their gradient is observed)"
        )
    device, dtype = parameters[0].device, parameters[0].dtype
    if not dtype.is_floating_point:
        raise _unsupported(method, "model dtype", dtype, "floating-point parameters")
    if not isinstance(labels, torch.Tensor) or labels.ndim == 0 or labels.shape[0] == 0:
        raise _unsupported(method, "labels", _describe(labels), "a tensor with the batch as first dimension")
    if labels.device != device:
        raise _unsupported(method, "labels device", labels.device, f"the model's device {device}")
    if (
        not isinstance(input_shape, Sequence)
        or isinstance(input_shape, str)
        or not all(isinstance(size, int) and not isinstance(size, bool) and size > 0 for size in input_shape)
    ):
        raise _unsupported(
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
    if clip_range is not None and not clip_range[0] < clip_range[1]:
        raise HyperparameterError(method, "clip_range", clip_range, "None or (lo, hi) with lo < hi")
    if max_iter < n_trials:
        raise HyperparameterError(method, "max_iter", max_iter, f">= n_trials={n_trials} (the trials share max_iter)")
    return (labels.shape[0], *input_shape), device, dtype


def _check_like(method: str, what: str, value: Any, shape: tuple[int, ...], device: torch.device) -> None:
    if not isinstance(value, torch.Tensor) or tuple(value.shape) != tuple(shape):
        raise _unsupported(method, what, _describe(value), f"a tensor of shape {tuple(shape)}")
    if value.device != device:
        raise _unsupported(method, f"{what} device", value.device, f"the model's device {device}")


def _draw(
    shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device, dtype: torch.dtype, init: str
):
    where = generator.device if generator is not None else device
    if init == "randn":
        value = torch.randn(shape, generator=generator, device=where, dtype=dtype)
    else:
        value = (torch.rand(shape, generator=generator, device=where, dtype=dtype) - 0.5) * 2
    return value.to(device)


def _bernoulli(
    shape: torch.Size, p: float, generator: torch.Generator | None, device: torch.device, dtype: torch.dtype
):
    where = generator.device if generator is not None else device
    return torch.full(shape, 1 - p, device=where, dtype=dtype).bernoulli_(generator=generator).to(device)


# --- the attack loop -----------------------------------------------------------------------


def _run_attack(
    method: str,
    model: nn.Module,
    target_gradients: Any,
    labels: torch.Tensor,
    input_shape: Sequence[int],
    *,
    generator: torch.Generator | None,
    invert_dropout: bool,
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
    loss_fn: LossFunction | None,
    ground_truth: torch.Tensor | None,
    true_masks: Sequence[torch.Tensor] | None,
    progress: ProgressCallback | None,
    optimise_masks: bool = True,
    mask_sign: float = 1.0,
) -> GradientInversionResult:
    """The shared IG/DIA loop (Algorithm: official ``attack_batch``). ``optimise_masks`` and
    ``mask_sign`` exist only so the tests can build deliberately wrong DIAs."""
    shape, device, dtype = _check_inputs(method, model, labels, input_shape, clip_range, max_iter, n_trials, tv_weight)
    names, targets = _match_gradients(method, model, target_gradients)
    if ground_truth is not None:
        _check_like(method, "ground_truth", ground_truth, shape, device)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise _unsupported(method, "generator", _describe(generator), "a torch.Generator or None")
    if loss_fn is None:
        loss_fn = nn.CrossEntropyLoss()

    attacker_model = copy.deepcopy(model)  # the user's model is never touched
    wanted = set(names)
    for name, parameter in attacker_model.named_parameters():
        parameter.grad = None
        parameter.requires_grad_(name in wanted)
    named = dict(attacker_model.named_parameters())
    parameters = [named[name] for name in names]
    attacker_model.train(attacker_train_mode)

    layers: list[MaskDropout] = []
    if invert_dropout:
        elementwise = dropout_layers(attacker_model)
        others = [
            f"{name} ({type(module).__name__})"
            for name, module in attacker_model.named_modules()
            if isinstance(module, nn.modules.dropout._DropoutNd) and not isinstance(module, nn.Dropout)
        ]
        if others:
            raise _unsupported(
                method,
                "dropout layers",
                ", ".join(others),
                "DIA models elementwise nn.Dropout masks only (channel/alpha dropout masks are not implemented)",
            )
        if not elementwise:
            raise _unsupported(
                method,
                "model",
                f"{type(model).__name__} without any nn.Dropout layer",
                "DIA inverts dropout masks, so the model must contain nn.Dropout; use inverting_gradients otherwise",
            )
        swap_dropout(attacker_model)
        layers = [layer for layer in dropout_layers(attacker_model) if isinstance(layer, MaskDropout)]
    fallback = invert_dropout and all(layer.p == 0 for layer in layers)
    if fallback or not invert_dropout:
        layers = []
        for module in attacker_model.modules():  # IG: dropout is the identity, whatever the mode
            if isinstance(module, nn.modules.dropout._DropoutNd):
                module.eval()
    if true_masks is not None and not layers:
        raise _unsupported(method, "true_masks", "given", "true_masks only for DIA on a model with dropout p > 0")
    attacker = _Attacker(attacker_model, parameters, targets, labels, loss_fn, layers, tv_weight, mask_weight)

    model_calls = 0
    mask_shapes: list[torch.Size] = []
    if layers:  # one forward to read the activation shape at every dropout layer
        seen: dict[int, torch.Size] = {}
        hooks = [
            layer.register_forward_pre_hook(lambda module, args: seen.__setitem__(id(module), args[0].shape))
            for layer in layers
        ]
        try:
            with torch.no_grad():
                attacker_model(torch.zeros(shape, device=device, dtype=dtype))
        finally:
            for hook in hooks:
                hook.remove()
        model_calls += 1
        missing = [index for index, layer in enumerate(layers) if id(layer) not in seen]
        if missing:
            raise _unsupported(
                method, "dropout layers", f"layers {missing} never called", "every nn.Dropout must be used in forward"
            )
        mask_shapes = [seen[id(layer)] for layer in layers]
        if true_masks is not None:
            if len(true_masks) != len(layers):
                raise _unsupported(
                    method, "true_masks", f"{len(true_masks)} masks", f"one per dropout layer ({len(layers)})"
                )
            for index, (mask, mask_shape) in enumerate(zip(true_masks, mask_shapes)):
                _check_like(method, f"true_masks[{index}]", mask, tuple(mask_shape), device)

    budgets = [max_iter // n_trials + (trial < max_iter % n_trials) for trial in range(n_trials)]
    best: dict[str, Any] = {"loss": math.inf}
    iterations = 0
    with tracker(progress, total=max_iter, task=method) as bar:
        for budget in budgets:
            x = _draw(shape, generator, device, dtype, init).requires_grad_(True)
            masks = [_bernoulli(s, layer.p, generator, device, dtype) for s, layer in zip(mask_shapes, layers)]
            for mask in masks:
                mask.requires_grad_(optimise_masks)
            variables = [x, *(masks if optimise_masks else [])]
            optimizer = torch.optim.Adam(variables, lr=lr, betas=(0.9, 0.999))
            scheduler = (
                torch.optim.lr_scheduler.ReduceLROnPlateau(
                    optimizer, mode="min", factor=lr_factor, patience=lr_patience
                )
                if lr_patience is not None
                else None
            )
            trial: dict[str, Any] = {"loss": math.inf, "history": []}
            since_best = 0
            for step in range(budget):
                total, distance = attacker.objective(x, masks if layers else None, mask_sign)
                gradients = torch.autograd.grad(total, variables)
                x.grad = gradients[0].sign() if signed_grad else gradients[0]
                for mask, gradient in zip(masks if optimise_masks else [], gradients[1:]):
                    mask.grad = gradient
                optimizer.step()
                with torch.no_grad():
                    if clip_range is not None:
                        x.clamp_(clip_range[0], clip_range[1])
                    for mask in masks:
                        mask.clamp_(0, 1)
                iterations += 1
                model_calls += 1
                value = total.item()  # the scheduler and the early stopping need J on the host
                trial["history"].append(value)
                if scheduler is not None:
                    scheduler.step(value)
                if value < trial["loss"]:
                    trial.update(
                        loss=value,
                        iteration=step,
                        output=x.detach().clone(),
                        masks=[mask.detach().clone() for mask in masks],
                    )
                    since_best = 0
                else:
                    since_best += 1
                bar.update(loss=value, distance=distance.detach())
                if trial["loss"] < stop_loss or (early_stop_patience is not None and since_best >= early_stop_patience):
                    break
            if trial["loss"] < best["loss"] or "output" not in best:
                best = trial
    for parameter in parameters:
        parameter.grad = None

    metrics: dict[str, torch.Tensor] = {}
    output = best["output"]
    if ground_truth is not None:
        mse = (output - ground_truth).double().square().mean()
        data_range = (ground_truth.max() - ground_truth.min()).double().clamp_min(torch.finfo(torch.float64).tiny)
        metrics["mse"] = mse
        metrics["psnr"] = 10 * torch.log10(data_range.square() / mse.clamp_min(1e-300))
    if true_masks is not None:
        agree = sum(((m >= 0.5) == (t >= 0.5)).sum() for m, t in zip(best["masks"], true_masks))
        metrics["mask_agreement"] = agree.double() / sum(m.numel() for m in best["masks"])
    return GradientInversionResult(
        output=output,
        iterations=iterations,
        history=torch.tensor(best["history"], dtype=torch.float64),
        masks=best["masks"] if layers else None,
        best_loss=float(best["loss"]),
        best_iteration=int(best["iteration"]),
        model_calls=model_calls,
        metrics=metrics,
        fallback=fallback,
    )


@validated("dia", DropoutInversionHyperparameters)
def dropout_inversion_attack(
    model: nn.Module,
    target_gradients: Mapping[str, torch.Tensor] | Sequence[torch.Tensor],
    labels: torch.Tensor,
    input_shape: Sequence[int],
    generator: torch.Generator | None = None,
    *,
    max_iter: int = 20000,
    lr: float = 0.1,
    tv_weight: float = 1e-5,
    mask_weight: float = 1e-4,
    signed_grad: bool = True,
    clip_range: tuple[float, float] | None = None,
    init: str = "randn",
    lr_patience: int | None = 800,
    lr_factor: float = 0.1,
    early_stop_patience: int | None = 4000,
    stop_loss: float = 1e-5,
    n_trials: int = 1,
    attacker_train_mode: bool = False,
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
    return _run_attack(
        "dia", model, target_gradients, labels, input_shape, generator=generator, invert_dropout=True,
        max_iter=max_iter, lr=lr, tv_weight=tv_weight, mask_weight=mask_weight, signed_grad=signed_grad,
        clip_range=clip_range, init=init, lr_patience=lr_patience, lr_factor=lr_factor,
        early_stop_patience=early_stop_patience, stop_loss=stop_loss, n_trials=n_trials,
        attacker_train_mode=attacker_train_mode, loss_fn=loss_fn, ground_truth=ground_truth,
        true_masks=true_masks, progress=progress,
    )  # fmt: skip


@validated("inverting_gradients", InvertingGradientsHyperparameters)
def inverting_gradients(
    model: nn.Module,
    target_gradients: Mapping[str, torch.Tensor] | Sequence[torch.Tensor],
    labels: torch.Tensor,
    input_shape: Sequence[int],
    generator: torch.Generator | None = None,
    *,
    max_iter: int = 20000,
    lr: float = 0.1,
    tv_weight: float = 1e-5,
    signed_grad: bool = True,
    clip_range: tuple[float, float] | None = None,
    init: str = "randn",
    lr_patience: int | None = 800,
    lr_factor: float = 0.1,
    early_stop_patience: int | None = 4000,
    stop_loss: float = 1e-5,
    n_trials: int = 1,
    attacker_train_mode: bool = False,
    loss_fn: LossFunction | None = None,
    ground_truth: torch.Tensor | None = None,
    progress: ProgressCallback | None = None,
) -> GradientInversionResult:
    """Inverting Gradients (Geiping et al. 2020) as configured in the DIA repository: DIA without masks.

    Every dropout layer acts as the identity (eval mode), whatever ``attacker_train_mode``
    says about the rest of the model. Arguments as :func:`dropout_inversion_attack`.
    """
    return _run_attack(
        "inverting_gradients", model, target_gradients, labels, input_shape, generator=generator,
        invert_dropout=False, max_iter=max_iter, lr=lr, tv_weight=tv_weight, mask_weight=0.0,
        signed_grad=signed_grad, clip_range=clip_range, init=init, lr_patience=lr_patience,
        lr_factor=lr_factor, early_stop_patience=early_stop_patience, stop_loss=stop_loss, n_trials=n_trials,
        attacker_train_mode=attacker_train_mode, loss_fn=loss_fn, ground_truth=ground_truth,
        true_masks=None, progress=progress,
    )  # fmt: skip


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
