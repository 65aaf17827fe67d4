"""The DANN model (G_f, G_y, G_d joined by a gradient reversal layer) and a small training loop.

Paper: "Domain-Adversarial Training of Neural Networks", Ganin et al., JMLR 17(59), 2016,
arXiv:1505.07818. Official code: none in PyTorch (the authors' was Caffe/Theano).

* Sec. 4.1, Eq. 9: E(theta_f, theta_y, theta_d) = (1/n) sum_source L_y
  - lambda [ (1/n) sum_source L_d + (1/n') sum_target L_d ];
* Sec. 4.2, Eq. 10-12 and 13-14: with R_lambda between G_f and G_d, plain SGD on
  ``L_y + L_d`` gives theta_y <- theta_y - mu dL_y/dtheta_y, theta_d <- theta_d - mu dL_d/dtheta_d,
  theta_f <- theta_f - mu (dL_y/dtheta_f - lambda dL_d/dtheta_f);
* Algorithm 1 (shallow DANN) and Sec. 5.2.2 (training procedure, lambda_p schedule).

Readings chosen (see README): the domain term is Eq. 9's *sum of the two means* (source mean +
target mean, so both domains weigh equally whatever the batch sizes), with domain label 0 for
source and 1 for target; source and target go through G_f as ONE concatenated batch, so
batch-norm statistics inside G_f are shared; lambda sits in the reversal layer only, never as
a weight on the domain loss (theta_d gets the unscaled gradient of L_d, Eq. 12).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from gradhub.errors import HyperparameterError, UnsupportedInputError
from gradhub.hyperparameters import validated
from gradhub.kinds.inputs import require_same_device, require_tensor
from gradhub.progress import ProgressCallback, tracker
from gradhub_dann import DANN_SPEC as SPEC
from gradhub_dann.reversal import Lambda, reverse, validated_lambda
from gradhub_dann.schedules import dann_lambda

__all__ = ["DANN", "TrainingHistory", "train_dann"]


@validated(SPEC)
class DANN(nn.Module):
    """Feature extractor G_f, label predictor G_y and domain classifier G_d behind R_lambda.

    ``domain_head`` must give one logit per sample (shape ``(N,)`` or ``(N, 1)``): the
    probability that the sample comes from the target domain. ``lambd`` (keyword-only) may be
    reassigned every step (e.g. ``model.lambd = dann_lambda(p)``).
    """

    def __init__(
        self, feature_extractor: nn.Module, label_head: nn.Module, domain_head: nn.Module, *, lambd: Lambda
    ) -> None:
        super().__init__()
        for name, module in (
            ("feature_extractor", feature_extractor),
            ("label_head", label_head),
            ("domain_head", domain_head),
        ):
            if not isinstance(module, nn.Module):
                raise UnsupportedInputError(SPEC.name, name, type(module).__name__, f"{name} must be an nn.Module")
        self.feature_extractor = feature_extractor
        self.label_head = label_head
        self.domain_head = domain_head
        self.lambd = lambd

    @property
    def lambd(self) -> Lambda:
        return self._lambd

    @lambd.setter
    def lambd(self, value: Lambda) -> None:
        self._lambd = validated_lambda(SPEC.name, value)

    def domain_logits(self, features: Tensor) -> Tensor:
        """G_d(R_lambda(features)), one logit per row (Eq. 13-14 place R_lambda here)."""
        logits = self.domain_head(reverse(SPEC.name, features, self._lambd))
        if logits.dim() == 2 and logits.shape[1] == 1:
            logits = logits.squeeze(1)
        if logits.dim() != 1 or logits.shape[0] != features.shape[0]:
            raise UnsupportedInputError(
                SPEC.name,
                "domain_head output shape",
                tuple(logits.shape),
                f"domain_head must give one logit per sample: shape ({features.shape[0]},) or ({features.shape[0]}, 1)",
            )
        return logits

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(class logits G_y(G_f(x)), domain logits G_d(R_lambda(G_f(x))))``."""
        features = self.feature_extractor(x)
        return self.label_head(features), self.domain_logits(features)

    def loss(self, xs: Tensor, ys: Tensor, xt: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """``L_y + L_d`` whose plain gradient gives the updates of Eq. 10-12; and its parts (detached).

        L_y: mean cross-entropy of G_y on the labelled source batch ``(xs, ys)``. L_d (Eq. 9):
        mean logistic loss of G_d on source (label 0) plus mean logistic loss on the unlabelled
        target batch ``xt`` (label 1). Both batches go through G_f together.
        """
        _check_batches(xs, ys, xt)
        features = self.feature_extractor(torch.cat([xs, xt]))
        source_count = xs.shape[0]
        label_loss = F.cross_entropy(self.label_head(features[:source_count]), ys)
        logits = self.domain_logits(features)
        domains = torch.ones_like(logits)
        domains[:source_count] = 0
        per_sample = F.binary_cross_entropy_with_logits(logits, domains, reduction="none")
        source_domain, target_domain = per_sample[:source_count].mean(), per_sample[source_count:].mean()
        domain_loss = source_domain + target_domain
        parts = {
            "label": label_loss.detach(),
            "domain": domain_loss.detach(),
            "domain_source": source_domain.detach(),
            "domain_target": target_domain.detach(),
        }
        return label_loss + domain_loss, parts


_CLASS_INDEX_DTYPES = (torch.int64, torch.int32, torch.uint8, torch.int16, torch.int8)


def _check_batches(xs: Tensor, ys: Tensor, xt: Tensor) -> None:
    """A labelled source batch ``(xs, ys)`` and a target batch ``xt`` of samples like xs's."""
    require_tensor(SPEC.name, "xs", xs, dtype="any", min_dim=1, nonempty=True)
    require_tensor(SPEC.name, "xt", xt, dtype="any", dtypes=(xs.dtype,), min_dim=1, nonempty=True, what="like xs")
    require_tensor(SPEC.name, "ys", ys, dtype="any", dtypes=_CLASS_INDEX_DTYPES, dim=1, what="(class indices)")
    require_same_device(SPEC.name, xs=xs, ys=ys, xt=xt)
    if xs.shape[1:] != xt.shape[1:]:
        raise UnsupportedInputError(
            SPEC.name,
            "xt shape",
            tuple(xt.shape),
            f"source and target samples must have the same shape; xs is {tuple(xs.shape)}",
        )
    if ys.shape[0] != xs.shape[0]:
        raise UnsupportedInputError(
            SPEC.name, "ys shape", tuple(ys.shape), f"ys must hold one class index per source sample: ({xs.shape[0]},)"
        )


@dataclass
class TrainingHistory:
    """What :func:`train_dann` recorded, one entry per evaluation (every ``record_every`` steps)."""

    steps: list[int] = field(default_factory=list)
    lambdas: list[float] = field(default_factory=list)
    label_loss: Tensor | None = None
    domain_loss: Tensor | None = None
    source_accuracy: Tensor | None = None
    target_accuracy: Tensor | None = None
    """Only when target labels were given (for monitoring; they are never trained on)."""


def _accuracy(model: DANN, x: Tensor, y: Tensor) -> Tensor:
    return (model.label_head(model.feature_extractor(x)).argmax(1) == y).float().mean()


def train_dann(
    model: DANN,
    xs: Tensor,
    ys: Tensor,
    xt: Tensor,
    *,
    steps: int = 3000,
    optimizer: Callable[[list[nn.Parameter]], torch.optim.Optimizer] | None = None,
    scheduler: Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler] | None = None,
    lambda_schedule: Callable[[float], float] | None = dann_lambda,
    yt: Tensor | None = None,
    record_every: int = 50,
    progress: ProgressCallback | None = None,
) -> TrainingHistory:
    """Full-batch DANN training: each step sets ``model.lambd = lambda_schedule(p)``, p = step / steps,
    and takes one optimizer step on :meth:`DANN.loss` (Algorithm 1 / Sec. 5.2.2, with the whole
    source and target sets as the batch).

    ``optimizer`` builds the optimizer from the parameters (default: Adam, lr 1e-2);
    ``scheduler`` (optional) builds a learning-rate scheduler on it, stepped after each step
    (the paper's: ``lambda opt: dann_lr(opt, total_steps=steps)``).
    ``lambda_schedule=None`` keeps ``model.lambd`` as it is; ``lambda p: 0.0`` trains the
    source-only baseline (theta_f gets no domain gradient). ``yt`` (target labels) is only
    used to record target accuracy. Metrics are kept as tensors: no host sync per step.
    """
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise HyperparameterError("train_dann", "steps", steps, "an integer >= 1")
    if not isinstance(record_every, int) or isinstance(record_every, bool) or record_every < 1:
        raise HyperparameterError("train_dann", "record_every", record_every, "an integer >= 1")
    _check_batches(xs, ys, xt)
    params = list(model.parameters())
    opt = optimizer(params) if optimizer is not None else torch.optim.Adam(params, lr=1e-2)
    lr_scheduler = scheduler(opt) if scheduler is not None else None
    history = TrainingHistory()
    label_losses, domain_losses, source_acc, target_acc = [], [], [], []
    with tracker(progress, total=steps, task="train_dann") as bar:
        for step in range(steps + 1):
            if lambda_schedule is not None:
                model.lambd = lambda_schedule(step / steps)
            recording = step % record_every == 0 or step == steps
            if recording:
                with torch.no_grad():
                    history.steps.append(step)
                    history.lambdas.append(float(model.lambd))
                    source_acc.append(_accuracy(model, xs, ys))
                    if yt is not None:
                        target_acc.append(_accuracy(model, xt, yt))
            if step == steps:
                break
            opt.zero_grad(set_to_none=True)
            total, parts = model.loss(xs, ys, xt)
            total.backward()
            opt.step()
            if lr_scheduler is not None:
                lr_scheduler.step()
            if recording:
                label_losses.append(parts["label"])
                domain_losses.append(parts["domain"])
            if bar.active:
                bar.update(label_loss=parts["label"], domain_loss=parts["domain"], lambd=float(model.lambd))
            else:
                bar.update()
    history.label_loss = torch.stack(label_losses)
    history.domain_loss = torch.stack(domain_losses)
    history.source_accuracy = torch.stack(source_acc)
    history.target_accuracy = torch.stack(target_acc) if target_acc else None
    return history
