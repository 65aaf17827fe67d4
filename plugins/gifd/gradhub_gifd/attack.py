"""GIFD: gradient inversion over a generator's latent, then over each block's input feature.

Paper: Hao Fang, Bin Chen, Xuan Wang, Zhi Wang, Shu-Tao Xia, "GIFD: A Generative Gradient
Inversion Method with Feature Domain Optimization", ICCV 2023, arXiv:2308.04699. Official code:
https://github.com/ffhibnese/GIFD_Gradient_Inversion_Attack (``inversefed/reconstruction_algorithms.py``:
``GradientReconstructor.inter_optimizer``, ``invert_biggan``, ``choose_optimal``; defaults from
``configs_biggan.yml``).

Threat model (§3.1): an honest-but-curious server knows the model and observes the gradient
``g* = grad_theta CE(f(x*), y*)`` of a client batch; it holds a generator ``G = B_L o ... o B_1``
trained on data like the client's (or not: the OOD case). For ``k = 0 .. K`` (§3.2, Eq. 3-5):

1. stage ``k`` optimises ``h_k``, the input of block ``k + 1`` (``h_0 = z ~ N(0, I)``), with the
   rest of the generator frozen: ``x = T_k(h_k)``, ``T_k = B_L o ... o B_{k+1}``, mapped from the
   generator's range to pixels in [0, 1] and normalised like the model's inputs;
2. the loss is ``D(grad_theta CE(f(x), y), g*) + tv_weight TV(x) + image_norm_weight ||x||_2 / (H W)``
   with ``D`` one global cosine (:mod:`gradhub_gifd.matching`), minimised by Adam on ``h_k`` with the
   ILO learning-rate ramp per stage;
3. after each step: stage 0 puts ``z`` back on its initial sphere; stage ``k >= 1`` projects the
   deviation on an l1 ball, ``h_k <- h_k^0 + P_{r_k}(h_k - h_k^0)`` per sample (:mod:`gradhub_gifd.projection`);
4. at the end of a stage the image is clamped to the pixel range and scored by ``D`` alone, and
   ``h_{k+1}^0 = B_{k+1}(h_k)`` starts the next stage;
5. restarts (independent latents) run as one batch; per stage the restart with the lowest ``D``
   is kept, and the output is the stage with the lowest ``D`` (``select_by="grad_loss"``).

``gifd_latent`` is step 1-4 for stage 0 alone: the GAN-latent search GIFD improves on.

Readings settled from the official code (README): the spherical projection keeps each latent's
initial norm (official: one norm over dims >= 2, which for a 2-D BigGAN ``z`` is one norm over the
whole batch; equal for batch size 1); the output is the best restart of the best stage (the
official ``choose_optimal`` returns the last restart's image with the best restart's score); each
stage's recorded image is that of its final iterate (official: of the iterate before the last
step); labels by iDLG when not given (official ``infer_label``). What differs: any generator given
as blocks (official: BigGAN/StyleGAN2 with ``start_layer``); relative l1 radii for generators of
another scale; the StyleGAN2 variant's joint optimisation of the latent and noise maps in every
stage is not implemented; randomness only from ``generator``; the model and the prior are left
as found (``torch.func.functional_call`` on detached parameters, every module's mode restored).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from gradhub_dia.inversion import match_gradients
from torch import nn
from torch.func import functional_call, grad, vmap

from gradhub.errors import HyperparameterError, UnsupportedInputError
from gradhub.hyperparameters import validate_hyperparameters, validated
from gradhub.kinds import evaluation_mode
from gradhub.kinds.attack import AttackResult
from gradhub.kinds.inputs import require_same_device, require_tensor
from gradhub.progress import ProgressCallback, tracker
from gradhub.specs import MethodSpec
from gradhub_gifd import GIFD, GIFD_LATENT, GIFDHyperparameters, GIFDLatentHyperparameters
from gradhub_gifd.matching import (
    cosine_distance,
    flatten,
    ilo_lr,
    image_norm,
    infer_labels_idlg,
    last_linear,
    squared_distance,
    total_variation,
)
from gradhub_gifd.prior import Context, Prior, resolve_prior, trace_shapes, with_context
from gradhub_gifd.projection import _project

LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
SPHERE_EPS = 1e-9  # the official SphericalOptimizer's guard inside the square root


@dataclass
class GIFDResult(AttackResult):
    """``output`` (= ``best_image``): the reconstruction, in the model's (normalised) input space, batch first."""

    per_stage_images: list[torch.Tensor] = field(default_factory=list)
    """Each stage's end image (clamped if ``clamp_images``) from its best restart."""
    per_stage_grad_loss: torch.Tensor | None = None
    """(stages,): the matching loss D (no regularisers) of each stage's best restart."""
    restart_grad_loss: torch.Tensor | None = None
    """(stages, restarts): D of every restart at the end of every stage."""
    stages: tuple[int, ...] = ()
    """The block indices whose inputs were optimised (0: the latent)."""
    best_stage: int = 0
    """Position in ``stages`` of the returned image."""
    labels: torch.Tensor | None = None
    """The labels used: given, or inferred by iDLG."""
    model_calls: int = 0
    """Forward passes of the model: one per step, one per stage end, one shape check."""
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)
    """With ``ground_truth``: ``mse`` and ``psnr`` of the output and ``psnr_per_stage``, in pixel space [0, 1]."""

    @property
    def best_image(self) -> torch.Tensor:
        return self.output


@dataclass
class _Matcher:
    """``D(grad_theta L(f(x_r), y), g*)`` for every restart ``r`` of a batch, differentiable in ``x``."""

    model: nn.Module
    state: dict[str, torch.Tensor]
    names: list[str]
    target: torch.Tensor
    labels: torch.Tensor
    loss_fn: LossFunction
    cost: str
    restarts: int
    calls: int = 0

    def _distance(self, gradients: Sequence[torch.Tensor]) -> torch.Tensor:
        flat = flatten(gradients)
        if self.cost == "cosine":
            return cosine_distance(flat, self.target)
        return squared_distance(flat, self.target, len(self.names))

    def distances(self, x: torch.Tensor, create_graph: bool) -> torch.Tensor:
        """(restarts,) distances for ``x`` of shape (restarts * batch, ...), restart-major."""
        self.calls += 1
        if self.restarts == 1:
            return self._distance(self._gradients(x, create_graph))[None]
        observed = {name: self.state[name] for name in self.names}

        def one_restart(images: torch.Tensor) -> torch.Tensor:
            def loss_of(parameters: dict[str, torch.Tensor]) -> torch.Tensor:
                return self.loss_fn(functional_call(self.model, {**self.state, **parameters}, (images,)), self.labels)

            return self._distance(list(grad(loss_of)(observed).values()))

        return vmap(one_restart)(x.reshape(self.restarts, -1, *x.shape[1:]))

    def _gradients(self, x: torch.Tensor, create_graph: bool) -> list[torch.Tensor]:
        leaves = {name: self.state[name].detach().requires_grad_(True) for name in self.names}
        with torch.enable_grad():
            output = functional_call(self.model, {**self.state, **leaves}, (x,))
            found = torch.autograd.grad(
                self.loss_fn(output, self.labels), list(leaves.values()), create_graph=create_graph, allow_unused=True
            )
        return [torch.zeros_like(leaf) if g is None else g for g, leaf in zip(found, leaves.values())]


def _run(
    spec: MethodSpec,
    options: GIFDLatentHyperparameters,
    stages: tuple[int, ...] | None,
    model: Any,
    target_gradients: Any,
    prior: Any,
    labels: Any,
    batch_size: Any,
    latent_shape: Any,
    context: Context,
    input_shape: Any,
    loss_fn: LossFunction | None,
    generator: Any,
    ground_truth: Any,
    progress: ProgressCallback | None,
) -> GIFDResult:
    method = spec.name
    if not isinstance(model, nn.Module):
        raise UnsupportedInputError(method, "model", type(model).__name__, "a torch.nn.Module")
    named = dict(model.named_parameters())
    if not named or not next(iter(named.values())).is_floating_point():
        raise UnsupportedInputError(method, "model", type(model).__name__, "a model with floating-point parameters")
    first = next(iter(named.values()))
    device, dtype = first.device, first.dtype
    targets = match_gradients(method, named, target_gradients)  # dict or list; shapes, devices, finite
    labels = _labels(method, model, targets, labels, batch_size, device)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise UnsupportedInputError(method, "generator", type(generator).__name__, "a torch.Generator or None")
    blocks = resolve_prior(method, prior, latent_shape)
    stages = tuple(range(len(blocks.blocks))) if stages is None else stages
    if stages[-1] >= len(blocks.blocks):
        raise HyperparameterError(
            method, "stages", stages, f"block indices below {len(blocks.blocks)} (the prior's number of blocks)"
        )
    radii = _radii(method, options, stages)
    restarts, batch = options.restarts, labels.shape[0]
    blocks = with_context(method, blocks, context, labels.repeat(restarts))
    target = flatten(list(targets.values()))
    if not bool(target.ne(0).any()):
        raise UnsupportedInputError(method, "target_gradients", "all zero", "a gradient with a nonzero entry")
    state = {name: parameter.detach() for name, parameter in named.items()}
    state |= {name: buffer.clone() for name, buffer in model.named_buffers()}
    matcher = _Matcher(
        model, state, list(targets), target, labels, loss_fn or nn.CrossEntropyLoss(), options.cost, restarts
    )
    where = generator.device if generator is not None else device
    z = torch.randn((restarts * batch, *blocks.latent_shape), generator=generator, device=where, dtype=dtype).to(device)
    with evaluation_mode(model), blocks.evaluation():
        pixels = _PixelSpace(method, options, blocks, z, input_shape, ground_truth, device, dtype)
        pixels.check_fit(matcher)
        with tracker(progress, total=len(stages) * options.steps_per_stage, task=method) as bar:
            stage_images, stage_scores, history = _stages(options, stages, radii, blocks, pixels, matcher, z, bar)
    return _result(method, options, stages, stage_images, stage_scores, history, labels, matcher, pixels, ground_truth)


def _stages(
    options: GIFDLatentHyperparameters,
    stages: tuple[int, ...],
    radii: list[float | None],
    prior: Prior,
    pixels: _PixelSpace,
    matcher: _Matcher,
    z: torch.Tensor,
    bar: Any,
) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    """Steps 1-4 of the module docstring for every stage; each stage's end images and scores, D per step."""
    steps = options.steps_per_stage
    images, scores, history = [], [], []
    h, position = z, 0
    for ordinal, stage in enumerate(stages):
        with torch.no_grad():
            h = prior.run(h, position, stage)  # h_stage^0 = B_stage(... h_position): the previous end point
        position = stage
        start = h.detach().clone()
        h = start.clone().requires_grad_(True)
        optimizer = torch.optim.Adam([h], lr=options.lr)
        project = _projection(options, stage, start, radii[ordinal])
        for step in range(steps):
            lr = ilo_lr(step / steps, options.lr) if options.lr_schedule == "ilo_cosine" else options.lr
            optimizer.param_groups[0]["lr"] = lr
            x = pixels.image(prior.run(h, stage))
            distances = matcher.distances(x, create_graph=True)
            objective = distances.sum()
            per_restart = x.reshape(matcher.restarts, -1, *x.shape[1:])
            if options.tv_weight:
                objective = objective + options.tv_weight * total_variation(per_restart).sum()
            if options.image_norm_weight:
                objective = objective + options.image_norm_weight * image_norm(per_restart).sum()
            (h.grad,) = torch.autograd.grad(objective, [h])
            optimizer.step()
            if project is not None:
                with torch.no_grad():
                    h.copy_(project(h))
            history.append(distances.detach())
            bar.update(grad_loss=distances.detach().min())
        h = h.detach()
        with torch.no_grad():
            x = pixels.clamp(pixels.image(prior.run(h, stage)))
        scores.append(matcher.distances(x, create_graph=False).detach())
        images.append(x.reshape(matcher.restarts, -1, *x.shape[1:]))
    return images, scores, history


def _projection(
    options: GIFDLatentHyperparameters, stage: int, start: torch.Tensor, radius: float | None
) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """What follows each Adam step: the sphere of the initial latent (stage 0), an l1 ball around
    the stage's start (stage >= 1, per sample), or nothing."""
    rows = start.shape[0]
    if stage == 0:
        if not options.project_latent_sphere:
            return None
        norm = (start.reshape(rows, -1).square().sum(1) + SPHERE_EPS).sqrt()
        shape = (rows,) + (1,) * (start.dim() - 1)
        return lambda h: h / (h.reshape(rows, -1).square().sum(1) + SPHERE_EPS).sqrt().view(shape) * norm.view(shape)
    relative = getattr(options, "l1_relative", None)
    if relative is not None:
        bound = relative * start.reshape(rows, -1).abs().sum(1)
    elif radius is None:
        return None
    else:
        bound = torch.full((rows,), radius, dtype=start.dtype, device=start.device)
    return lambda h: start + _project(h - start, bound)


def _radii(method: str, options: GIFDLatentHyperparameters, stages: tuple[int, ...]) -> list[float | None]:
    """The absolute l1 radius of every stage (None at stage 0 and where unbounded): ``l1_radii``, or
    ``r_1 + (j - 1) dr`` for the j-th feature stage (official ``max_radius_gen_out``)."""
    features = [stage for stage in stages if stage > 0]
    given = getattr(options, "l1_radii", None)
    if given is not None and len(given) != len(features):
        raise HyperparameterError(
            method, "l1_radii", given, f"one radius per feature stage ({len(features)} for stages {stages})"
        )
    radii: list[float | None] = []
    ordinal = 0
    for stage in stages:
        if stage == 0:
            radii.append(None)
            continue
        radii.append(given[ordinal] if given is not None else options.l1_r1 + ordinal * options.l1_dr)  # type: ignore[attr-defined]
        ordinal += 1
    return radii


def _labels(
    method: str,
    model: nn.Module,
    targets: Mapping[str, torch.Tensor],
    labels: Any,
    batch_size: Any,
    device: torch.device,
) -> torch.Tensor:
    """The given labels (checked), or iDLG's from the last linear layer's observed weight gradient."""
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise UnsupportedInputError(method, "batch_size", repr(batch_size), "None or a positive int")
    if labels is not None:
        require_tensor(method, "labels", labels, dtype="any", dim=1, nonempty=True)
        if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise UnsupportedInputError(method, "labels dtype", labels.dtype, "class indices (an integer tensor)")
        require_same_device(method, labels=labels, model=next(iter(targets.values())))
        if batch_size is not None and batch_size != labels.shape[0]:
            raise UnsupportedInputError(
                method, "batch_size", batch_size, f"None or len(labels) = {labels.shape[0]} when labels are given"
            )
        return labels
    name, layer = last_linear(method, model)
    if name not in targets:
        raise UnsupportedInputError(
            method,
            "target_gradients",
            f"no gradient of {name!r}",
            "the last linear layer's weight gradient, for iDLG label inference; or pass labels=",
        )
    batch = 1 if batch_size is None else batch_size
    if batch > layer.out_features:
        raise UnsupportedInputError(
            method, "batch_size", batch, f"at most {layer.out_features} (the classes) for iDLG label inference"
        )
    return infer_labels_idlg(targets[name], batch).to(device)


class _PixelSpace:
    """The map from the generator's output to the model's input, and the checks that they fit."""

    def __init__(
        self,
        method: str,
        options: GIFDLatentHyperparameters,
        prior: Prior,
        z: torch.Tensor,
        input_shape: Any,
        ground_truth: Any,
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        self.method = method
        shapes = trace_shapes(method, prior, z)
        self.shape = shapes[-1]
        sample = self.shape[1:]
        if input_shape is not None and tuple(input_shape) != sample:
            raise UnsupportedInputError(
                method,
                "prior output shape",
                f"{sample} (one image of the composed blocks)",
                f"the model's input_shape {tuple(input_shape)}: the last block must return the model's inputs",
            )
        if (options.tv_weight or options.image_norm_weight) and len(sample) < 2:
            raise HyperparameterError(
                method,
                "tv_weight" if options.tv_weight else "image_norm_weight",
                options.tv_weight or options.image_norm_weight,
                f"0 for a generator whose output has fewer than 2 spatial dims (one sample: {sample})",
            )
        lo, hi = options.prior_range
        self.offset, self.scale = lo, hi - lo
        mean, std = (self._per_channel(value, sample, device, dtype) for value in options.mean_std)
        self.mean, self.std = mean, std
        self.low, self.high = (0 - mean) / std, (1 - mean) / std
        self.clamps = options.clamp_images
        if ground_truth is not None:
            require_tensor(method, "ground_truth", ground_truth)
            if tuple(ground_truth.shape) != (self.shape[0] // options.restarts, *sample):
                raise UnsupportedInputError(
                    method,
                    "ground_truth shape",
                    tuple(ground_truth.shape),
                    f"the client batch in the model's input space: {(self.shape[0] // options.restarts, *sample)}",
                )

    def _per_channel(self, value: Any, sample: tuple[int, ...], device: torch.device, dtype: torch.dtype) -> Any:
        if not isinstance(value, tuple):
            return float(value)
        if len(sample) < 1 or sample[0] != len(value):
            raise HyperparameterError(
                self.method, "mean_std", value, f"one value per channel (the image has shape {sample})"
            )
        return torch.tensor(value, device=device, dtype=dtype).view(-1, *([1] * (len(sample) - 1)))

    def image(self, output: torch.Tensor) -> torch.Tensor:
        """The generator's output as the model's input: to [0, 1] from ``prior_range``, then normalised."""
        return ((output - self.offset) / self.scale - self.mean) / self.std

    def clamp(self, x: torch.Tensor) -> torch.Tensor:
        """Into the image of [0, 1] (the official end-of-stage projection), if ``clamp_images``."""
        if not self.clamps:
            return x
        return torch.maximum(
            torch.minimum(x, torch.as_tensor(self.high, dtype=x.dtype, device=x.device)),
            torch.as_tensor(self.low, dtype=x.dtype, device=x.device),
        )

    def pixels(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std + self.mean

    def check_fit(self, matcher: _Matcher) -> None:
        """One forward of a generated batch: an image the model cannot take is an error naming both shapes."""
        probe = torch.zeros(
            (matcher.labels.shape[0], *self.shape[1:]), dtype=matcher.target.dtype, device=matcher.target.device
        )
        try:
            with torch.no_grad():
                functional_call(matcher.model, matcher.state, (probe,))
        except torch.cuda.OutOfMemoryError:
            raise
        except RuntimeError as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise UnsupportedInputError(
                self.method,
                "prior output shape",
                f"{self.shape[1:]} (one image of the composed blocks)",
                f"an image the model takes (its forward failed: {reason!r})",
            ) from error
        matcher.calls += 1


def _result(
    method: str,
    options: GIFDLatentHyperparameters,
    stages: tuple[int, ...],
    images: list[torch.Tensor],
    scores: list[torch.Tensor],
    history: list[torch.Tensor],
    labels: torch.Tensor,
    matcher: _Matcher,
    pixels: _PixelSpace,
    ground_truth: torch.Tensor | None,
) -> GIFDResult:
    """Per stage the best restart; the best stage (or the last); one host read for the choices."""
    table = torch.stack(scores)  # (stages, restarts)
    ranked = table.nan_to_num(math.inf)
    best_restart = ranked.argmin(1)
    per_stage = ranked.gather(1, best_restart[:, None]).squeeze(1)
    best_stage = per_stage.argmin() if getattr(options, "select_by", "grad_loss") == "grad_loss" else None
    chosen = best_restart.tolist()
    stage = len(stages) - 1 if best_stage is None else int(best_stage)
    per_stage_images = [stage_images[restart] for stage_images, restart in zip(images, chosen)]
    output = per_stage_images[stage]
    if not bool(torch.isfinite(per_stage[stage])):
        raise UnsupportedInputError(
            method,
            "gradient matching loss",
            "non-finite at every restart",
            "a finite gradient at the generated images",
        )
    metrics: dict[str, torch.Tensor] = {}
    if ground_truth is not None:
        truth = pixels.pixels(ground_truth.to(output.dtype)).double()
        errors = torch.stack([(pixels.pixels(image).double() - truth).square().mean() for image in per_stage_images])
        psnr = 10 * torch.log10(1 / errors.clamp_min(1e-300))
        metrics = {"mse": errors[stage], "psnr": psnr[stage], "psnr_per_stage": psnr}
    return GIFDResult(
        output=output,
        iterations=len(history),
        history=torch.stack(history),
        per_stage_images=per_stage_images,
        per_stage_grad_loss=per_stage,
        restart_grad_loss=table,
        stages=stages,
        best_stage=stage,
        labels=labels,
        model_calls=matcher.calls,
        metrics=metrics,
    )


@validated(GIFD)
def gifd(
    model: nn.Module,
    target_gradients: Mapping[str, torch.Tensor] | Sequence[torch.Tensor],
    prior: Any,
    labels: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    *,
    stages: tuple[int, ...] | None,
    steps_per_stage: int,
    lr: float,
    lr_schedule: str,
    restarts: int,
    cost: str,
    tv_weight: float,
    image_norm_weight: float,
    l1_radii: tuple[float | None, ...] | None,
    l1_relative: float | None,
    l1_r1: float,
    l1_dr: float,
    project_latent_sphere: bool,
    mean_std: tuple[Any, Any],
    prior_range: tuple[float, float],
    clamp_images: bool,
    select_by: str,
    batch_size: int | None = None,
    latent_shape: Sequence[int] | None = None,
    context: Context = None,
    input_shape: Sequence[int] | None = None,
    loss_fn: LossFunction | None = None,
    ground_truth: torch.Tensor | None = None,
    progress: ProgressCallback | None = None,
) -> GIFDResult:
    """Reconstruct the client batch behind ``target_gradients`` through the generator ``prior`` (GIFD).

    ``target_gradients``: the observed ``g*`` (dict parameter name -> tensor, possibly a subset, or
    a list in ``model.parameters()`` order). ``prior``: the generator as blocks (see
    :mod:`gradhub_gifd.prior`; ``latent_shape=`` and ``context=`` where it needs them).
    ``labels``: the client's labels; None infers ``batch_size`` (default 1) of them by iDLG.
    ``input_shape`` (optional): one sample's shape as the model takes it, checked against the
    generator's output. ``loss_fn`` is the client's loss (default cross-entropy, mean).
    ``ground_truth`` (the client batch, in the model's input space; for evaluation only) adds
    ``mse``, ``psnr`` and ``psnr_per_stage`` to ``metrics``. Randomness: only ``generator``.
    """
    arguments = locals()
    options = GIFDHyperparameters.model_construct(
        **{name: arguments[name] for name in GIFDHyperparameters.model_fields}
    )
    return _run(
        GIFD,
        options,
        stages,
        model,
        target_gradients,
        prior,
        labels,
        batch_size,
        latent_shape,
        context,
        input_shape,
        loss_fn,
        generator,
        ground_truth,
        progress,
    )


@validated(GIFD_LATENT)
def gifd_latent(
    model: nn.Module,
    target_gradients: Mapping[str, torch.Tensor] | Sequence[torch.Tensor],
    prior: Any,
    labels: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    *,
    steps_per_stage: int,
    lr: float,
    lr_schedule: str,
    restarts: int,
    cost: str,
    tv_weight: float,
    image_norm_weight: float,
    project_latent_sphere: bool,
    mean_std: tuple[Any, Any],
    prior_range: tuple[float, float],
    clamp_images: bool,
    batch_size: int | None = None,
    latent_shape: Sequence[int] | None = None,
    context: Context = None,
    input_shape: Sequence[int] | None = None,
    loss_fn: LossFunction | None = None,
    ground_truth: torch.Tensor | None = None,
    progress: ProgressCallback | None = None,
) -> GIFDResult:
    """GIFD's stage 0 alone: Adam on the latent, on its sphere (the GAN-latent baseline). Arguments as :func:`gifd`."""
    arguments = locals()
    fields = GIFDLatentHyperparameters.model_fields
    options = GIFDLatentHyperparameters.model_construct(**{name: arguments[name] for name in fields})
    return _run(
        GIFD_LATENT,
        options,
        (0,),
        model,
        target_gradients,
        prior,
        labels,
        batch_size,
        latent_shape,
        context,
        input_shape,
        loss_fn,
        generator,
        ground_truth,
        progress,
    )


class GIFDAttack:
    """The object form of the attack: ``GIFDAttack(model, prior, **hparams).attack(target_gradients, labels=None,
    batch_size=1, ...)`` calls :func:`gifd` (hyperparameters validated here, once)."""

    def __init__(
        self,
        model: nn.Module,
        prior: Any,
        *,
        latent_shape: Sequence[int] | None = None,
        context: Context = None,
        loss_fn: LossFunction | None = None,
        **hparams: Any,
    ) -> None:
        validate_hyperparameters(GIFD.name, GIFDHyperparameters, hparams)
        self.model, self.prior, self.hparams = model, prior, hparams
        self.extras = {"latent_shape": latent_shape, "context": context, "loss_fn": loss_fn}

    def attack(
        self,
        target_gradients: Mapping[str, torch.Tensor] | Sequence[torch.Tensor],
        labels: torch.Tensor | None = None,
        batch_size: int | None = None,
        *,
        input_shape: Sequence[int] | None = None,
        generator: torch.Generator | None = None,
        ground_truth: torch.Tensor | None = None,
        progress: ProgressCallback | None = None,
    ) -> GIFDResult:
        return gifd(
            self.model,
            target_gradients,
            self.prior,
            labels,
            generator,
            batch_size=batch_size,
            input_shape=input_shape,
            ground_truth=ground_truth,
            progress=progress,
            **self.extras,
            **self.hparams,
        )


__all__ = ["GIFDAttack", "GIFDResult", GIFD.name, GIFD_LATENT.name]
