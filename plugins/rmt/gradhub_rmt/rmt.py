"""RMT: the Robust Mean Teacher test-time adapter, and the ``rmt`` solver that runs it over a stream.

Paper: "Robust Mean Teacher for Continual and Gradual Test-Time Adaptation", Mario Döbler,
Robert A. Marsden, Bin Yang, CVPR 2023, arXiv:2211.13081. Official code:
https://github.com/mariodoebler/test-time-adaptation, ``classification/methods/rmt.py`` (class
``RMT``), defaults from ``classification/conf.py`` and ``cfgs/cifar10_c/rmt.yaml``.

Set-up (official ``RMT.__init__`` and ``configure_model``): the student is the model itself,
in train mode, every parameter trainable, every BatchNorm layer normalising with the statistics
of the current batch (``track_running_stats=False``, running statistics dropped); the teacher is
a deep copy whose parameters do not require grad. Class prototypes of the source features (the
mean feature per class over at most 100 000 source samples) are computed once; a projector
Linear(D, P) - ReLU - Linear(P, P) is added to the optimizer with the first group's lr. With
source data, a warm-up of ``warmup_samples // source batch size`` steps minimises
1/2 [CE(q -> p) + CE(p -> q)] between student and teacher on *source* images with a linearly
increasing lr (step i: lr (i + 1) / steps), each step followed by the EMA update.

One test batch x (official ``forward_and_adapt``):

1. f = feat(x), z = cls(f); f' = feat(A(x)), z' = cls(f') (A: the test-time augmentation);
   z_T = teacher(x);
2. the nearest source prototype of each f by cosine similarity (no gradient), p(x);
3. L_cont (Eq. 3): the contrastive loss over the projected views [p(x), f, f'] (all anchors);
4. L_sce (Eq. 6): 1/4 [CE(q -> p) + CE(p -> q) + CE(q -> p') + CE(p' -> q)], batch mean;
5. (lambda_ce_trg L_sce + lambda_cont L_cont).backward(); with lambda_ce_src > 0 also
   (lambda_ce_src CE(cls(feat(x_s)), y_s)).backward() on the next replayed source batch;
6. one optimizer step, then teacher <- m teacher + (1 - m) student (all parameters);
7. the prediction is the ensemble z + z_T.

Readings settled from the official code (see the README): the teacher's logits carry no gradient
(its parameters are detached), so both CE directions train the student; the warm-up uses the
two-term SCE on un-augmented source images and never the source labels; prototypes come from the
model before the warm-up; the source replay uses plain CE with the source labels.

What differs from the official code: every BatchNorm layer (1-D, 2-D, 3-D) is switched to batch
statistics, not only ``BatchNorm2d``; the warm-up ramps each param group's own lr (the official
code gives every group the first group's); ``contrast_mode='one'`` anchors on the *projected,
normalised* prototype view (the official code passes the raw features, which only runs when D
equals the projection width); the test-time augmentation is a callable the caller chooses (the
official CoTTA image transforms are dataset-specific), by default random scaling and Gaussian
noise (:class:`NoiseAndScale`); terms with weight 0 are not computed; the adapter stops with an
error, before any update, on a non-finite batch or loss.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gradhub.errors import UnsupportedInputError
from gradhub.hyperparameters import validated
from gradhub.kinds.inputs import require_finite, require_tensor, require_values
from gradhub.kinds.loss import require_finite_loss
from gradhub.kinds.solver import Iterate, SolverResult, solver
from gradhub.progress import ProgressCallback, tracker
from gradhub_rmt import RMT_SPEC, RMTAdapterHyperparameters
from gradhub_rmt.ema import ema_update
from gradhub_rmt.losses import contrastive_loss, symmetric_cross_entropy

METHOD = RMT_SPEC.name
MAX_PROTOTYPE_SAMPLES = 100_000
"""Source features used for the class prototypes (official: stop once more than 100 000 are collected)."""
_LABEL_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


class NoiseAndScale:
    """The default test-time augmentation A(x) = s x + sigma std(x) eps, for inputs of any shape.

    s ~ U[scale] per sample, eps ~ N(0, I) per element, std(x) the per-element standard deviation
    over the batch (so sigma is relative to the data's spread). Random numbers come from
    ``generator`` (drawn on its device and moved), or from the global generator when it is None.
    An addition: the official transforms (CoTTA's colour jitter, affine, blur, flip, noise) are
    image-specific; pass them as ``tta_transform`` for images.
    """

    def __init__(
        self, noise: float = 0.05, scale: tuple[float, float] = (0.9, 1.1), generator: torch.Generator | None = None
    ) -> None:
        if not (math.isfinite(noise) and noise >= 0):
            raise UnsupportedInputError(METHOD, "augmentation noise", noise, "noise must be a finite number >= 0")
        low, high = scale
        if not (math.isfinite(low) and math.isfinite(high) and 0 < low <= high):
            raise UnsupportedInputError(
                METHOD, "augmentation scale", scale, "scale must be (low, high), 0 < low <= high"
            )
        self.noise, self.scale, self.generator = noise, (low, high), generator

    def __call__(self, x: Tensor) -> Tensor:
        device = self.generator.device if self.generator is not None else x.device
        shape = (x.shape[0],) + (1,) * (x.dim() - 1)
        factors = torch.empty(shape, device=device, dtype=x.dtype).uniform_(*self.scale, generator=self.generator)
        noise = torch.randn(x.shape, device=device, dtype=x.dtype, generator=self.generator)
        spread = x.std(dim=0, keepdim=True, correction=0)
        return x * factors.to(x.device) + (self.noise * spread) * noise.to(x.device)


def configure_model(model: nn.Module, trainable: bool = True) -> nn.Module:
    """Official ``RMT.configure_model``: train mode, every parameter trainable (``trainable``), and
    every BatchNorm layer normalising with the current batch's statistics (running statistics dropped)."""
    model.train()
    model.requires_grad_(trainable)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.track_running_stats = False
            module.running_mean = None
            module.running_var = None
    return model


def _init_linear(layer: nn.Linear, generator: torch.Generator | None) -> nn.Linear:
    """PyTorch's default Linear initialisation, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn from ``generator``."""
    bound = 1 / math.sqrt(layer.in_features)
    device = generator.device if generator is not None else layer.weight.device
    with torch.no_grad():
        for tensor in (layer.weight, layer.bias):
            drawn = torch.empty(tensor.shape, device=device, dtype=tensor.dtype).uniform_(
                -bound, bound, generator=generator
            )
            tensor.copy_(drawn)
    return layer


def _split(model: Any, feature_extractor: Any, classifier: Any) -> tuple[nn.Module, nn.Module]:
    """The feature extractor / classifier split the contrastive loss needs (official ``split_up_model``)."""
    if not isinstance(model, nn.Module):
        raise UnsupportedInputError(METHOD, "model", type(model).__name__, "model must be an nn.Module")
    owned = {id(p) for p in model.parameters()}
    if not owned:
        raise UnsupportedInputError(METHOD, "model", "a model without parameters", "RMT adapts the model's parameters")
    if feature_extractor is None and classifier is None:
        if isinstance(model, nn.Sequential) and len(model) >= 2:
            return model[:-1], model[-1]
        raise UnsupportedInputError(
            METHOD,
            "model",
            f"a {type(model).__name__} without a feature extractor / classifier split",
            "RMT's contrastive loss works on the features: pass feature_extractor= and classifier= (submodules of "
            "the model with classifier(feature_extractor(x)) == model(x)), or an nn.Sequential whose last module is "
            "the classifier",
        )
    for name, module in (("feature_extractor", feature_extractor), ("classifier", classifier)):
        if not isinstance(module, nn.Module):
            raise UnsupportedInputError(
                METHOD, name, type(module).__name__, "pass both feature_extractor and classifier as nn.Modules"
            )
    split = {id(p) for part in (feature_extractor, classifier) for p in part.parameters()}
    if split != owned:
        foreign, missing = len(split - owned), len(owned - split)
        raise UnsupportedInputError(
            METHOD,
            "feature_extractor / classifier",
            f"{foreign} of their parameters are not the model's and {missing} of the model's are in neither",
            "feature_extractor and classifier must be the model's own submodules (classifier(feature_extractor(x)) "
            "== model(x)), together holding every parameter of the model",
        )
    return feature_extractor, classifier


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


class _SourceBatches:
    """Labelled source batches ``(x, y)`` from a re-iterable loader, restarted when it runs out (official)."""

    def __init__(self, loader: Iterable[Any], device: torch.device) -> None:
        if not isinstance(loader, Iterable):
            raise UnsupportedInputError(
                METHOD, "source_loader", type(loader).__name__, "source_loader must be an iterable of (x, y) batches"
            )
        self.loader, self.device = loader, device
        self.iterator: Iterator[Any] = iter(loader)

    def batch(self, item: Any) -> tuple[Tensor, Tensor]:
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise UnsupportedInputError(
                METHOD, "source batch", type(item).__name__, "source_loader must yield (x, y) pairs"
            )
        x = require_tensor(METHOD, "source x", item[0], min_dim=1, nonempty=True)
        y = require_tensor(METHOD, "source y", item[1], dtype="any", dtypes=_LABEL_DTYPES, dim=1, what="of labels")
        if y.shape[0] != x.shape[0]:
            raise UnsupportedInputError(
                METHOD, "source y shape", tuple(y.shape), f"one label per source sample: ({x.shape[0]},)"
            )
        return x.to(self.device), y.to(self.device, torch.long)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        """One pass over the loader (a fresh iterator, as the official prototype extraction)."""
        return (self.batch(item) for item in self.loader)

    def next(self) -> tuple[Tensor, Tensor]:
        item = next(self.iterator, None)
        if item is None:
            self.iterator = iter(self.loader)
            item = next(self.iterator, None)
            if item is None:
                raise UnsupportedInputError(METHOD, "source_loader", "an empty loader", "source batches are needed")
        return self.batch(item)


@dataclass
class StepOutput:
    """What one adaptation step computed on a test batch (logits detached, losses as 0-d tensors)."""

    student_logits: Tensor
    """z = cls(feat(x)) before the update."""
    teacher_logits: Tensor
    """z_T = teacher(x) before the update."""
    loss: Tensor
    """lambda_ce_trg L_sce + lambda_cont L_cont on the batch."""
    source_loss: Tensor | None = None
    """CE on the replayed source batch (unweighted), when lambda_ce_src > 0."""

    @property
    def logits(self) -> Tensor:
        """The ensemble prediction z + z_T."""
        return self.student_logits + self.teacher_logits


@validated(RMT_SPEC, RMTAdapterHyperparameters)
class RMT(nn.Module):
    """Robust Mean Teacher: ``adapter(x)`` adapts on the test batch x and returns the ensemble logits.

    ``model`` becomes the student and is adapted in place (configured as the official
    ``configure_model`` does); ``feature_extractor`` and ``classifier`` are its two halves
    (optional for an ``nn.Sequential``: all but the last module, and the last). The contrastive
    loss needs source class prototypes: ``source_prototypes`` (C, D) or a ``source_loader`` of
    labelled ``(x, y)`` batches (given prototypes take precedence), which also feeds the warm-up
    and, with ``lambda_ce_src > 0``, the source replay (source-free: ``lambda_ce_src=0``; without a
    loader there is no warm-up). Source batches are moved to the model's device; test batches must
    be on it.

    Args:
        optimizer_factory: builds the optimizer from the model's parameters (default: Adam with
            ``lr``, betas (0.9, 0.999), no weight decay; a factory sets its own lr and ``lr`` is then
            unused); the projector joins it as a second group with the first group's lr.
        tta_transform: the augmentation A(x) (default :class:`NoiseAndScale` drawing from ``generator``).
        generator: the source of randomness of the projector's initialisation and the default
            augmentation (default: the global generator).
        progress: callback for the prototype extraction and warm-up.
    """

    def __init__(
        self,
        model: nn.Module,
        feature_extractor: nn.Module | None = None,
        classifier: nn.Module | None = None,
        *,
        lr: float,
        teacher_momentum: float,
        lambda_ce_trg: float,
        lambda_cont: float,
        lambda_ce_src: float,
        temperature: float,
        projection_dim: int,
        contrast_mode: str,
        warmup_samples: int,
        optimizer_factory: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer] | None = None,
        tta_transform: Callable[[Tensor], Tensor] | None = None,
        source_loader: Iterable[Any] | None = None,
        source_prototypes: Tensor | None = None,
        generator: torch.Generator | None = None,
        progress: ProgressCallback | None = None,
    ) -> None:
        super().__init__()
        feature_extractor, classifier = _split(model, feature_extractor, classifier)
        device = _device_of(model)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise UnsupportedInputError(METHOD, "generator", type(generator).__name__, "pass a torch.Generator or None")
        for name, function in (("optimizer_factory", optimizer_factory), ("tta_transform", tta_transform)):
            if function is not None and not callable(function):
                raise UnsupportedInputError(METHOD, name, type(function).__name__, f"{name} must be callable or None")
        if lambda_ce_src > 0 and source_loader is None:
            raise UnsupportedInputError(
                METHOD,
                "source_loader",
                f"None with lambda_ce_src={lambda_ce_src}",
                "the source replay needs labelled source batches: pass source_loader, or lambda_ce_src=0 (source-free)",
            )
        if lambda_cont > 0 and source_loader is None and source_prototypes is None:
            raise UnsupportedInputError(
                METHOD,
                "source_prototypes",
                f"None (and no source_loader) with lambda_cont={lambda_cont}",
                "the contrastive loss needs the source class prototypes: pass source_prototypes (C, D) or a "
                "source_loader to compute them, or lambda_cont=0",
            )
        source = _SourceBatches(source_loader, device) if source_loader is not None else None
        self.lambda_ce_trg, self.lambda_cont, self.lambda_ce_src = lambda_ce_trg, lambda_cont, lambda_ce_src
        self.teacher_momentum, self.temperature, self.contrast_mode = teacher_momentum, temperature, contrast_mode

        # The teacher first, so that a bad source loader or prototype set fails before the model changes.
        teacher, teacher_features, teacher_classifier = copy.deepcopy((model, feature_extractor, classifier))
        configure_model(teacher, trainable=False)
        prototypes = None
        if lambda_cont > 0:
            if source_prototypes is not None:
                prototypes = self._given_prototypes(source_prototypes, next(model.parameters()))
            else:
                prototypes = self._source_prototypes(source, teacher_features, teacher_classifier, progress)
        self.student, self.feature_extractor, self.classifier, self.teacher = (
            model,
            feature_extractor,
            classifier,
            teacher,
        )
        self.register_buffer("prototypes", prototypes)
        self.projector = self._projector(prototypes, projection_dim, generator)
        optimizer = (optimizer_factory or self._default_optimizer(lr))(model.parameters())
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise UnsupportedInputError(
                METHOD, "optimizer_factory", type(optimizer).__name__, "optimizer_factory must return a torch Optimizer"
            )
        projector_parameters = list(self.projector.parameters())
        if projector_parameters:
            optimizer.add_param_group({"params": projector_parameters, "lr": optimizer.param_groups[0]["lr"]})
        self.optimizer = optimizer
        self.tta_transform = tta_transform or NoiseAndScale(generator=generator)
        self.source = source
        configure_model(model)
        if source is not None and warmup_samples > 0:
            self._warm_up(warmup_samples, progress)
        self._initial = (copy.deepcopy(self.state_dict()), copy.deepcopy(self.optimizer.state_dict()))

    @staticmethod
    def _default_optimizer(lr: float) -> Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]:
        """Official CIFAR10-C configuration: Adam, betas (0.9, 0.999), weight decay 0."""
        return lambda parameters: torch.optim.Adam(parameters, lr=lr, betas=(0.9, 0.999), weight_decay=0.0)

    @staticmethod
    def _given_prototypes(prototypes: Any, like: Tensor) -> Tensor:
        """The caller's (C, D) prototypes, finite, in the model's dtype and on its device."""
        require_tensor(METHOD, "source_prototypes", prototypes, dim=2, nonempty=True, what="of shape (C, D)")
        require_finite(METHOD, "source_prototypes", prototypes)
        return prototypes.detach().to(device=like.device, dtype=like.dtype).clone()

    @staticmethod
    @torch.no_grad()
    def _source_prototypes(
        source: _SourceBatches,
        feature_extractor: nn.Module,
        classifier: nn.Module,
        progress: ProgressCallback | None,
    ) -> Tensor:
        """The mean source feature of each class over at most MAX_PROTOTYPE_SAMPLES samples (official)."""
        features, labels, classes, collected = [], [], None, 0
        with tracker(progress, total=None, task=f"{METHOD} prototypes") as bar:
            for x, y in source:
                batch_features = feature_extractor(x)
                if classes is None:
                    classes = _logits_shape(classifier(batch_features), x.shape[0]).shape[1]
                features.append(_features_shape(batch_features, x.shape[0]))
                labels.append(y)
                collected += x.shape[0]
                bar.update()
                if collected > MAX_PROTOTYPE_SAMPLES:
                    break
        if classes is None:
            raise UnsupportedInputError(METHOD, "source_loader", "an empty loader", "source batches are needed")
        features_all, labels_all = torch.cat(features), torch.cat(labels)
        bad = (labels_all < 0) | (labels_all >= classes)
        require_values(METHOD, "source y", bad, labels_all, f"labels must be class indices in [0, {classes})")
        counts = torch.bincount(labels_all, minlength=classes)
        empty = (counts == 0).nonzero().flatten().tolist()
        if empty:
            raise UnsupportedInputError(
                METHOD,
                "source_loader",
                f"no source sample of classes {empty} among the first {len(labels_all)}",
                "every class needs source samples for its prototype (or pass source_prototypes)",
            )
        sums = torch.zeros(classes, features_all.shape[1], device=features_all.device, dtype=features_all.dtype)
        sums.index_add_(0, labels_all, features_all)
        prototypes = sums / counts.unsqueeze(1).to(sums.dtype)
        require_finite(METHOD, "source features", prototypes)
        return prototypes

    @staticmethod
    def _projector(prototypes: Tensor | None, width: int, generator: torch.Generator | None) -> nn.Module:
        """Linear(D, P) - ReLU - Linear(P, P) (official), or the identity for P = 0 or without a contrastive term."""
        if prototypes is None or width == 0:
            return nn.Identity()
        first = nn.Linear(prototypes.shape[1], width, device=prototypes.device, dtype=prototypes.dtype)
        second = nn.Linear(width, width, device=prototypes.device, dtype=prototypes.dtype)
        return nn.Sequential(_init_linear(first, generator), nn.ReLU(), _init_linear(second, generator))

    @torch.enable_grad()
    def _warm_up(self, samples: int, progress: ProgressCallback | None) -> None:
        """Official ``RMT.warmup``: 1/2 [CE(q -> p) + CE(p -> q)] on source images, lr ramped linearly."""
        first = next(iter(self.source.loader), None)  # the batch size, from a fresh pass (official: loader.batch_size)
        if first is None:
            raise UnsupportedInputError(METHOD, "source_loader", "an empty loader", "source batches are needed")
        steps = samples // self.source.batch(first)[0].shape[0]
        final = [group["lr"] for group in self.optimizer.param_groups]
        with tracker(progress, total=steps, task=f"{METHOD} warm-up") as bar:
            for step in range(steps):
                x, _ = self.source.next()
                for group, lr in zip(self.optimizer.param_groups, final):
                    group["lr"] = lr * (step + 1) / steps
                with torch.no_grad():
                    teacher_logits = self.teacher(x)
                loss = symmetric_cross_entropy(self.student(x), teacher_logits)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                ema_update(self.teacher, self.student, self.teacher_momentum)
                if bar.active:
                    bar.update(loss=loss.detach())
                else:
                    bar.update()
        for group, lr in zip(self.optimizer.param_groups, final):
            group["lr"] = lr

    def reset(self) -> None:
        """Back to the state after set-up and warm-up (episodic adaptation; not used in the continual setting)."""
        state, optimizer_state = self._initial
        self.load_state_dict(state)
        self.optimizer.load_state_dict(optimizer_state)

    def self_training_loss(self, logits: Tensor, teacher_logits: Tensor, aug_logits: Tensor) -> Tensor:
        """L_sce (Eq. 6), the batch mean of the four-term symmetric cross-entropy."""
        return symmetric_cross_entropy(logits, teacher_logits, aug_logits, check_finite=False)

    def _contrastive(self, features: Tensor, aug_features: Tensor) -> Tensor:
        """L_cont (Eq. 3) over [nearest source prototype, features, augmented features], projected."""
        prototypes = self.prototypes
        if prototypes.shape[1] != features.shape[1]:
            raise UnsupportedInputError(
                METHOD,
                "source_prototypes shape",
                tuple(prototypes.shape),
                f"prototypes must have the feature width D = {features.shape[1]}",
            )
        with torch.no_grad():
            similarity = F.normalize(features, dim=1) @ F.normalize(prototypes.to(features.dtype), dim=1).T
            nearest = similarity.argmax(dim=1)
        views = torch.stack([prototypes[nearest].to(features.dtype), features, aug_features], dim=1)
        count, view_count, width = views.shape
        projected = self.projector(views.reshape(count * view_count, width)).reshape(count, view_count, -1)
        return contrastive_loss(projected, temperature=self.temperature, contrast_mode=self.contrast_mode)

    @torch.enable_grad()
    def adapt(self, x: Tensor) -> StepOutput:
        """One RMT step on the test batch ``x`` (official ``forward_and_adapt``); the logits before the update."""
        x = _test_batch(x, self.student)
        count = x.shape[0]
        self.optimizer.zero_grad(set_to_none=True)
        features = self.feature_extractor(x)
        logits = _logits_shape(self.classifier(features), count)
        with torch.no_grad():
            teacher_logits = self.teacher(x)
        if teacher_logits.shape != logits.shape:
            raise UnsupportedInputError(
                METHOD,
                "model output",
                f"teacher {tuple(teacher_logits.shape)}, classifier(feature_extractor(x)) {tuple(logits.shape)}",
                "model(x) must equal classifier(feature_extractor(x))",
            )
        loss = logits.new_zeros(())
        if self.lambda_ce_trg > 0 or self.lambda_cont > 0:
            augmented = self.tta_transform(x)
            if not isinstance(augmented, Tensor) or augmented.shape != x.shape:
                shape = tuple(augmented.shape) if isinstance(augmented, Tensor) else type(augmented).__name__
                raise UnsupportedInputError(
                    METHOD,
                    "tta_transform output",
                    shape,
                    f"the augmentation must return a tensor of x's shape {tuple(x.shape)}",
                )
            aug_features = self.feature_extractor(augmented)
            if self.lambda_ce_trg > 0:
                aug_logits = self.classifier(aug_features)
                loss = loss + self.lambda_ce_trg * self.self_training_loss(logits, teacher_logits, aug_logits)
            if self.lambda_cont > 0:
                _features_shape(features, count)
                loss = loss + self.lambda_cont * self._contrastive(features, aug_features)
        require_finite_loss(METHOD, loss.detach())
        if loss.requires_grad:
            loss.backward()
        source_loss = None
        if self.lambda_ce_src > 0:
            source_x, source_y = self.source.next()
            source_loss = F.cross_entropy(self.classifier(self.feature_extractor(source_x)), source_y)
            require_finite_loss(METHOD, source_loss.detach())
            (self.lambda_ce_src * source_loss).backward()
        self.optimizer.step()
        ema_update(self.teacher, self.student, self.teacher_momentum)
        return StepOutput(
            logits.detach(), teacher_logits, loss.detach(), None if source_loss is None else source_loss.detach()
        )

    def forward(self, x: Tensor) -> Tensor:
        """Adapt on ``x``, then return the ensemble logits z + z_T (official ``forward_and_adapt``)."""
        return self.adapt(x).logits

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        """The ensemble logits z + z_T without adapting (official ``forward_sliding_window``)."""
        x = _test_batch(x, self.student)
        return self.student(x) + self.teacher(x)


def _test_batch(x: Any, model: nn.Module) -> Tensor:
    """A finite floating batch on the model's device (one host read, for the finiteness)."""
    x = require_tensor(METHOD, "x", x, min_dim=1, nonempty=True, what="(a batch of test inputs)")
    device = _device_of(model)
    if x.device != device:
        raise UnsupportedInputError(METHOD, "x device", x.device, f"x must be on the model's device ({device})")
    require_finite(METHOD, "x", x)
    return x


def _logits_shape(logits: Any, count: int) -> Tensor:
    if not isinstance(logits, Tensor) or logits.dim() != 2 or logits.shape[0] != count:
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise UnsupportedInputError(
            METHOD, "classifier output", shape, f"the classifier must return (N, C) logits, N = {count}"
        )
    return logits


def _features_shape(features: Any, count: int) -> Tensor:
    if not isinstance(features, Tensor) or features.dim() != 2 or features.shape[0] != count:
        shape = tuple(features.shape) if isinstance(features, Tensor) else type(features).__name__
        raise UnsupportedInputError(
            METHOD,
            "feature_extractor output",
            shape,
            f"the feature extractor must return (N, D) features, N = {count} (end it with nn.Flatten())",
        )
    return features


@dataclass
class StreamPredictions:
    """The online predictions on every test sample adapted on, in stream order."""

    student: Tensor
    """(N, C) student logits z, each from before the update on its batch."""
    teacher: Tensor
    """(N, C) teacher logits z_T."""

    @property
    def logits(self) -> Tensor:
        """RMT's prediction, the ensemble z + z_T."""
        return self.student + self.teacher


class _Collected:
    """The per-batch logits so far; stacked once, by :class:`RMTResult` (not once per batch)."""

    def __init__(self, classes: int, like: Tensor) -> None:
        self.student: list[Tensor] = [like.new_zeros(0, classes)]
        self.teacher: list[Tensor] = [like.new_zeros(0, classes)]

    def stacked(self) -> StreamPredictions:
        return StreamPredictions(torch.cat(self.student), torch.cat(self.teacher))


@dataclass
class RMTResult(SolverResult):
    """A :class:`SolverResult` whose solution is the :class:`StreamPredictions`; ``iterations`` counts
    the test batches adapted on and ``residuals`` the clean-view student-teacher symmetric
    cross-entropy 1/2 [CE(q -> p) + CE(p -> q)] on each (``residuals[0]``: on the first batch, before adapting)."""

    losses: Tensor | None = None
    """(iterations,) lambda_ce_trg L_sce + lambda_cont L_cont on each batch."""
    adapter: RMT | None = None
    """The adapter after the stream: ``adapter(x)`` keeps adapting, ``adapter.teacher`` is the mean teacher."""

    def __post_init__(self) -> None:
        if isinstance(self.solution, _Collected):
            self.solution = self.solution.stacked()
        if isinstance(self.losses, list):
            like = self.solution.student
            self.losses = torch.stack(self.losses) if self.losses else like.new_zeros(0)


def _consistency(logits: Tensor, teacher_logits: Tensor) -> Tensor:
    """The residual: batch mean of 1/2 [CE(q -> p) + CE(p -> q)] between the predictions returned."""
    return symmetric_cross_entropy(logits, teacher_logits, check_finite=False)


def _test_input(batch: Any) -> Any:
    """A stream item: a tensor, or a tuple/list whose first item is the tensor (labels are ignored)."""
    return batch[0] if isinstance(batch, (tuple, list)) and batch else batch


@solver(RMT_SPEC, result=RMTResult)
def rmt(
    model: nn.Module,
    batches: Iterable[Any],
    feature_extractor: nn.Module | None = None,
    classifier: nn.Module | None = None,
    *,
    tol: float,
    max_iter: int,
    lr: float,
    teacher_momentum: float,
    lambda_ce_trg: float,
    lambda_cont: float,
    lambda_ce_src: float,
    temperature: float,
    projection_dim: int,
    contrast_mode: str,
    warmup_samples: int,
    optimizer_factory: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer] | None = None,
    tta_transform: Callable[[Tensor], Tensor] | None = None,
    source_loader: Iterable[Any] | None = None,
    source_prototypes: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Iterator[Iterate]:
    """Adapt ``model`` with RMT on each test batch of ``batches`` in turn, predicting each before moving on.

    ``batches`` yields tensors (or ``(x, ...)`` tuples; anything after x is ignored). The other
    arguments are :class:`RMT`'s. Stops after ``max_iter`` batches, at the end of the stream, or
    once the student and teacher agree on a batch to ``residual <= tol`` (default 0: never).

    Returns:
        :class:`RMTResult`: ``solution`` the :class:`StreamPredictions` (``.logits`` is RMT's
        ensemble output, sample by sample, in stream order), ``iterations`` the batches adapted on,
        ``residuals`` the student-teacher symmetric cross-entropy on each, ``losses`` RMT's target
        loss on each and ``adapter`` the :class:`RMT` for more batches. ``converged`` is True only
        when ``tol > 0`` was reached: test-time adaptation of a stream has no end point of its own.
    """
    if not isinstance(batches, Iterable):
        raise UnsupportedInputError(
            METHOD, "batches", type(batches).__name__, "batches must be an iterable of test batches"
        )
    stream = iter(batches)
    first = next(stream, None)
    if first is None:
        raise UnsupportedInputError(METHOD, "batches", "an empty stream", "batches must yield at least one test batch")
    _split(model, feature_extractor, classifier)
    _test_batch(_test_input(first), model)  # before the set-up changes the model
    adapter = RMT(
        model,
        feature_extractor,
        classifier,
        lr=lr,
        teacher_momentum=teacher_momentum,
        lambda_ce_trg=lambda_ce_trg,
        lambda_cont=lambda_cont,
        lambda_ce_src=lambda_ce_src,
        temperature=temperature,
        projection_dim=projection_dim,
        contrast_mode=contrast_mode,
        warmup_samples=warmup_samples,
        optimizer_factory=optimizer_factory,
        tta_transform=tta_transform,
        source_loader=source_loader,
        source_prototypes=source_prototypes,
        generator=generator,
    )
    x = _test_input(first)
    with torch.no_grad():
        logits, teacher_logits = adapter.student(x), adapter.teacher(x)
    collected = _Collected(_logits_shape(logits, x.shape[0]).shape[1], logits)
    losses: list[Tensor] = []
    extras = {"losses": losses, "adapter": adapter}
    yield Iterate(collected, _consistency(logits, teacher_logits), extras)
    for batch in itertools.chain([first], stream):
        step = adapter.adapt(_test_input(batch))
        collected.student.append(step.student_logits)
        collected.teacher.append(step.teacher_logits)
        losses.append(step.loss)
        yield Iterate(collected, _consistency(step.student_logits, step.teacher_logits), extras)


# The public names, from the objects themselves: each method's name is written once, in its spec.
__all__ = [
    exported.__name__
    for exported in (RMT, NoiseAndScale, RMTResult, StepOutput, StreamPredictions, configure_model, rmt)
]
