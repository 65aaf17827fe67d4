"""DANN's objective: one SGD step over theta_f, theta_y, theta_d is exactly Eq. 10-12; loss parts; train_dann."""

from __future__ import annotations

import torch
from gradhub_dann.dann import DANN, train_dann
from gradhub_dann.reversal import GradientReversal, grad_reverse
from torch import nn
from torch.nn import functional as F


def _tiny(seed: int = 0) -> DANN:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return DANN(nn.Linear(3, 4), nn.Linear(4, 2), nn.Linear(4, 1), lambd=0.7).double()


def _batches() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    xs = torch.randn(5, 3, generator=generator, dtype=torch.float64)
    ys = torch.randint(2, (5,), generator=generator)
    xt = torch.randn(7, 3, generator=generator, dtype=torch.float64)
    return xs, ys, xt


class LambdaOnDomainLoss(DANN):
    """Wrong: lambda weighs the domain loss (theta_d gets lambda dL_d) behind a unit reversal."""

    def domain_logits(self, features: torch.Tensor) -> torch.Tensor:
        logits = self.domain_head(grad_reverse(features, lambd=1.0)).squeeze(1)
        return grad_reverse(grad_reverse(logits, lambd=1.0), lambd=self.lambd)  # backward: x lambda


class SignFlipped(DANN):
    """Wrong: theta_f gets +lambda dL_d."""

    def domain_logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.domain_head(grad_reverse(grad_reverse(features, lambd=self.lambd), lambd=1.0)).squeeze(1)


def _sgd_step_error(model_class: type[DANN]) -> float:
    """Largest gap between one SGD step of ``model_class`` and the manual update of Eq. 10-12."""
    model = model_class(*_tiny().children(), lambd=0.7)
    (xs, ys, xt), lr, lambd = _batches(), 0.1, 0.7
    f, gy, gd = model.feature_extractor, model.label_head, model.domain_head
    theta_f, theta_y, theta_d = list(f.parameters()), list(gy.parameters()), list(gd.parameters())

    # The two losses of Eq. 9, written out without any reversal layer.
    features_s, features_t = f(xs), f(xt)
    label_loss = F.cross_entropy(gy(features_s), ys)
    domain_loss = F.binary_cross_entropy_with_logits(
        gd(features_s).squeeze(1), torch.zeros(5, dtype=torch.float64)
    ) + F.binary_cross_entropy_with_logits(gd(features_t).squeeze(1), torch.ones(7, dtype=torch.float64))
    dly_f = torch.autograd.grad(label_loss, theta_f, retain_graph=True)
    dly_y = torch.autograd.grad(label_loss, theta_y)
    dld_f = torch.autograd.grad(domain_loss, theta_f, retain_graph=True)
    dld_d = torch.autograd.grad(domain_loss, theta_d)
    expected_f = [p - lr * (a - lambd * b) for p, a, b in zip(theta_f, dly_f, dld_f)]
    expected_y = [p - lr * a for p, a in zip(theta_y, dly_y)]
    expected_d = [p - lr * b for p, b in zip(theta_d, dld_d)]

    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    total, parts = model.loss(xs, ys, xt)
    torch.testing.assert_close(parts["label"], label_loss.detach(), rtol=0, atol=1e-14)
    torch.testing.assert_close(parts["domain"], domain_loss.detach(), rtol=0, atol=1e-14)
    total.backward()
    optimizer.step()
    pairs = zip([*theta_f, *theta_y, *theta_d], [*expected_f, *expected_y, *expected_d])
    return max((got.detach() - want.detach()).abs().max().item() for got, want in pairs)


def test_one_sgd_step_is_the_saddle_point_update() -> None:
    """theta_y -= mu dL_y; theta_d -= mu dL_d (unscaled); theta_f -= mu (dL_y - lambda dL_d) (Eq. 10-12)."""
    assert _sgd_step_error(DANN) <= 1e-14


def test_update_check_catches_wrong_reversals() -> None:
    assert _sgd_step_error(LambdaOnDomainLoss) > 1e-3
    assert _sgd_step_error(SignFlipped) > 1e-3


def test_loss_weights_domains_equally_whatever_the_batch_sizes() -> None:
    model, (xs, ys, xt) = _tiny(), _batches()
    _, parts = model.loss(xs, ys, xt)
    torch.testing.assert_close(parts["domain"], parts["domain_source"] + parts["domain_target"])
    _, again = model.loss(xs, ys, torch.cat([xt, xt]))  # duplicating target samples changes nothing
    torch.testing.assert_close(again["domain"], parts["domain"])


def test_forward_gives_class_and_domain_logits() -> None:
    model, (xs, _, _) = _tiny(), _batches()
    class_logits, domain_logits = model(xs)
    assert class_logits.shape == (5, 2) and domain_logits.shape == (5,)
    torch.testing.assert_close(domain_logits, model.domain_head(model.feature_extractor(xs)).squeeze(1))


def test_lambda_zero_gives_features_no_domain_gradient() -> None:
    model, (xs, ys, xt) = _tiny(), _batches()
    model.lambd = 0.0
    model.loss(xs, ys, xt)[0].backward()
    with_domain = [p.grad.clone() for p in model.feature_extractor.parameters()]
    model.zero_grad()
    F.cross_entropy(model.label_head(model.feature_extractor(xs)), ys).backward()
    for a, p in zip(with_domain, model.feature_extractor.parameters()):
        torch.testing.assert_close(a, p.grad, rtol=0, atol=1e-15)


def test_train_dann_follows_the_schedule_and_reports_progress() -> None:
    model, (xs, ys, xt) = _tiny(), _batches()
    events = []
    history = train_dann(
        model, xs, ys, xt, steps=20, record_every=5, yt=torch.zeros(7, dtype=torch.long), progress=events.append
    )
    assert history.steps == [0, 5, 10, 15, 20]
    assert history.lambdas[0] == 0.0 and 0.99 < history.lambdas[-1] <= 1.0
    assert history.lambdas == sorted(history.lambdas)
    assert history.target_accuracy is not None and history.target_accuracy.shape == (5,)
    assert len(events) == 21 and events[-1].done and events[-2].step == 20
    assert {"label_loss", "domain_loss", "lambd"} <= set(events[0].metrics)


def test_gradient_reversal_module_inside_a_model() -> None:
    """The module form composes in nn.Sequential: the domain gradient reaching the features is reversed."""
    features = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    head = nn.Linear(3, 1).double()
    plain = torch.autograd.grad(head(features).sum(), features)[0]
    reversed_ = torch.autograd.grad(nn.Sequential(GradientReversal(lambd=2.0), head)(features).sum(), features)[0]
    assert torch.equal(reversed_, -2.0 * plain)
