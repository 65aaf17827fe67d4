"""The RMT adapter: set-up, one adaptation step against a direct re-computation, warm-up, the solver."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from gradhub_rmt.rmt import RMT, RMTResult, StreamPredictions, configure_model, rmt
from rmt_reference import CLASSES, WIDTH, closed_form, data, network, reference_contrastive, source
from torch import nn


def shifted(x: torch.Tensor) -> torch.Tensor:
    """A deterministic stand-in for the augmentation, so that a step can be recomputed by hand."""
    return 0.9 * x + 0.1


def sgd(parameters) -> torch.optim.Optimizer:
    return torch.optim.SGD(parameters, lr=0.1)


HPARAMS = dict(
    teacher_momentum=0.8,
    lambda_ce_trg=0.7,
    lambda_cont=0.6,
    lambda_ce_src=0.5,
    temperature=0.3,
    projection_dim=4,
    warmup_samples=0,
)


def adapter(**overrides) -> RMT:
    settings = {**HPARAMS, "optimizer_factory": sgd, "tta_transform": shifted, "source_loader": source()}
    settings.update(overrides)
    return RMT(network(), generator=torch.Generator().manual_seed(0), **settings)


def test_setup_configures_student_and_teacher_as_the_official_code() -> None:
    model = network()
    rmt_adapter = RMT(model, source_loader=source(), warmup_samples=0, generator=torch.Generator().manual_seed(0))
    assert rmt_adapter.student is model and model.training and rmt_adapter.teacher.training
    for module in (*model.modules(), *rmt_adapter.teacher.modules()):
        if isinstance(module, nn.BatchNorm1d):
            assert not module.track_running_stats and module.running_mean is None and module.running_var is None
    assert all(p.requires_grad for p in model.parameters())
    assert not any(p.requires_grad for p in rmt_adapter.teacher.parameters())
    # The teacher is a copy, not the same tensors.
    assert all(t.data_ptr() != s.data_ptr() for t, s in zip(rmt_adapter.teacher.parameters(), model.parameters()))
    # Projector Linear(D, 128) - ReLU - Linear(128, 128) in a second param group with the first group's lr.
    first, relu, second = rmt_adapter.projector
    assert isinstance(relu, nn.ReLU) and first.in_features == WIDTH and second.out_features == 128
    groups = rmt_adapter.optimizer.param_groups
    assert len(groups) == 2 and groups[1]["lr"] == groups[0]["lr"] == 1e-3
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in rmt_adapter.projector.parameters()}
    assert isinstance(rmt_adapter.optimizer, torch.optim.Adam) and groups[0]["betas"] == (0.9, 0.999)


def test_prototypes_are_the_class_means_of_source_features() -> None:
    loader = source(batches=3)
    rmt_adapter = RMT(network(), source_loader=loader, lambda_ce_src=0.0, warmup_samples=0)
    configured = copy.deepcopy(rmt_adapter.teacher)  # the source model with batch statistics
    with torch.no_grad():
        features = torch.cat([configured[0](x) for x, _ in loader])
    labels = torch.cat([y for _, y in loader])
    expected = torch.stack([features[labels == c].mean(0) for c in range(CLASSES)])
    torch.testing.assert_close(rmt_adapter.prototypes, expected, rtol=1e-12, atol=1e-12)


def test_one_step_equals_a_direct_recomputation() -> None:
    """Forward, prototypes, three projected views, SCE, contrastive and source CE, one SGD step, then the EMA."""
    rmt_adapter = adapter()
    x, _ = data(8, seed=1)
    student, teacher, projector = (
        copy.deepcopy(m) for m in (rmt_adapter.student, rmt_adapter.teacher, rmt_adapter.projector)
    )
    prototypes = rmt_adapter.prototypes.clone()
    source_x, source_y = source()[0]  # the first replayed batch

    features, aug_features = student[0](x), student[0](shifted(x))
    logits, aug_logits = student[1](features), student[1](aug_features)
    with torch.no_grad():
        teacher_logits = teacher(x)
        nearest = F.cosine_similarity(features[:, None, :], prototypes[None, :, :], dim=-1).argmax(1)
    views = torch.stack([prototypes[nearest], features, aug_features], dim=1)
    projected = projector(views.reshape(-1, WIDTH)).reshape(8, 3, -1)
    target_loss = 0.7 * closed_form(logits, teacher_logits, aug_logits).mean() + 0.6 * reference_contrastive(
        projected, 0.3, "all"
    )
    loss = target_loss + 0.5 * F.cross_entropy(student(source_x), source_y)
    parameters = [*student.parameters(), *projector.parameters()]
    gradients = torch.autograd.grad(loss, parameters)
    expected_student = [p - 0.1 * g for p, g in zip(parameters, gradients)][: len(list(student.parameters()))]
    expected_projector = [p - 0.1 * g for p, g in zip(parameters, gradients)][len(expected_student) :]
    expected_teacher = [0.8 * t + 0.2 * s for t, s in zip(teacher.parameters(), expected_student)]

    step = rmt_adapter.adapt(x)
    close = dict(rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(step.student_logits, logits.detach(), **close)
    torch.testing.assert_close(step.teacher_logits, teacher_logits, **close)
    torch.testing.assert_close(step.logits, (logits + teacher_logits).detach(), **close)  # the ensemble output
    torch.testing.assert_close(step.loss, target_loss.detach(), **close)
    for actual, expected in zip(rmt_adapter.student.parameters(), expected_student):
        torch.testing.assert_close(actual.detach(), expected.detach(), **close)
    for actual, expected in zip(rmt_adapter.projector.parameters(), expected_projector):
        torch.testing.assert_close(actual.detach(), expected.detach(), **close)
    for actual, expected in zip(rmt_adapter.teacher.parameters(), expected_teacher):
        torch.testing.assert_close(actual, expected.detach(), **close)


class _SwappedEMA(RMT):
    """Wrong: the teacher update with momentum and 1 - momentum swapped."""

    def adapt(self, x: torch.Tensor):
        self.teacher_momentum = 1 - self.teacher_momentum
        try:
            return super().adapt(x)
        finally:
            self.teacher_momentum = 1 - self.teacher_momentum


@pytest.mark.parametrize(("cls", "passes"), [(RMT, True), (_SwappedEMA, False)], ids=["implemented", "wrong-swapped"])
def test_teacher_follows_the_student_by_the_ema(cls, passes: bool) -> None:
    rmt_adapter = adapter()
    rmt_adapter.__class__ = cls
    before = [t.clone() for t in rmt_adapter.teacher.parameters()]
    rmt_adapter.adapt(data(8, seed=2)[0])
    expected = [0.8 * b + 0.2 * s for b, s in zip(before, rmt_adapter.student.parameters())]
    agree = all(torch.allclose(t, e, rtol=1e-12) for t, e in zip(rmt_adapter.teacher.parameters(), expected))
    assert agree is passes


def test_only_student_and_projector_parameters_get_gradients() -> None:
    """(e) the teacher's parameters never require grad and never hold one."""
    rmt_adapter = adapter()
    rmt_adapter.adapt(data(8, seed=3)[0])
    assert all(p.grad is not None for p in rmt_adapter.student.parameters())
    assert all(p.grad is not None for p in rmt_adapter.projector.parameters())
    assert all(not p.requires_grad and p.grad is None for p in rmt_adapter.teacher.parameters())
    trained = {id(p) for group in rmt_adapter.optimizer.param_groups for p in group["params"]}
    assert trained == {id(p) for p in (*rmt_adapter.student.parameters(), *rmt_adapter.projector.parameters())}


def test_warm_up_ramps_the_lr_on_source_images_and_restores_it() -> None:
    seen: list[float] = []

    class Recording(torch.optim.SGD):
        def step(self, closure=None):
            seen.append(self.param_groups[0]["lr"])
            return super().step(closure)

    loader = source(batches=2, size=12)
    rmt_adapter = RMT(
        network(),
        source_loader=loader,
        warmup_samples=40,  # 40 // 12 = 3 steps
        optimizer_factory=lambda p: Recording(p, lr=0.3),
        generator=torch.Generator().manual_seed(0),
    )
    assert seen == pytest.approx([0.1, 0.2, 0.3])
    assert [group["lr"] for group in rmt_adapter.optimizer.param_groups] == [0.3, 0.3]
    # The teacher followed the warm-up: it is no longer the source model.
    assert not all(torch.equal(t, s) for t, s in zip(rmt_adapter.teacher.parameters(), network().parameters()))


def test_warm_up_minimises_the_two_term_sce_between_student_and_teacher() -> None:
    loader = source(batches=1, size=12)
    model = network()
    rmt_adapter = RMT(model, source_loader=loader, warmup_samples=12, optimizer_factory=sgd, lambda_ce_src=0.0)
    student, teacher = network(), network()
    configure_model(student)
    configure_model(teacher, trainable=False)
    x, _ = loader[0]
    loss = closed_form(student(x), teacher(x).detach()).mean()
    gradients = torch.autograd.grad(loss, list(student.parameters()))
    # One step at lr 0.1 * 1/1, then the EMA with the default 0.999.
    for actual, p, g in zip(rmt_adapter.student.parameters(), student.parameters(), gradients):
        torch.testing.assert_close(actual.detach(), (p - 0.1 * g).detach(), rtol=1e-12, atol=1e-12)


def test_setup_reports_progress_only_to_a_listener(capsys) -> None:
    events = []
    RMT(network(), source_loader=source(batches=2, size=12), warmup_samples=36, progress=events.append)
    steps = [(event.task, event.step, event.done) for event in events]
    assert steps == [
        ("rmt prototypes", 1, False),
        ("rmt prototypes", 2, False),
        ("rmt prototypes", 2, True),
        ("rmt warm-up", 1, False),
        ("rmt warm-up", 2, False),
        ("rmt warm-up", 3, False),
        ("rmt warm-up", 3, True),
    ]
    RMT(network(), source_loader=source(batches=2, size=12), warmup_samples=36)
    assert capsys.readouterr() == ("", "")


def test_reset_and_predict() -> None:
    rmt_adapter = adapter()
    x = data(8, seed=4)[0]
    initial = copy.deepcopy(rmt_adapter.state_dict())
    prediction = rmt_adapter.predict(x)
    assert all(torch.equal(a, b) for a, b in zip(rmt_adapter.state_dict().values(), initial.values()))
    first = rmt_adapter(x)
    torch.testing.assert_close(first, prediction)  # the prediction is made before the update
    rmt_adapter(x)
    rmt_adapter.reset()
    assert all(torch.equal(a, b) for a, b in zip(rmt_adapter.state_dict().values(), initial.values()))
    torch.testing.assert_close(rmt_adapter(x), first)


def test_source_free_with_given_prototypes() -> None:
    prototypes = torch.randn(CLASSES, WIDTH, dtype=torch.float64)
    rmt_adapter = RMT(network(), lambda_ce_src=0.0, source_prototypes=prototypes, lr=0.01)
    assert rmt_adapter.source is None
    torch.testing.assert_close(rmt_adapter.prototypes, prototypes)
    assert rmt_adapter(data(8, seed=5)[0]).shape == (8, CLASSES)
    # Without the contrastive term, no projector and no prototypes are needed.
    plain = RMT(network(), lambda_ce_src=0.0, lambda_cont=0.0)
    assert isinstance(plain.projector, nn.Identity) and plain.prototypes is None
    assert len(plain.optimizer.param_groups) == 1


def test_explicit_split_of_a_custom_model() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            inner = network()
            self.encoder, self.head = inner[0], inner[1]

        def forward(self, x):
            return self.head(self.encoder(x))

    model = Net()
    rmt_adapter = RMT(model, model.encoder, model.head, lambda_ce_src=0.0, source_prototypes=torch.ones(CLASSES, WIDTH))
    assert rmt_adapter(data(8, seed=6)[0]).shape == (8, CLASSES)


def _stream(count: int = 4) -> list[torch.Tensor]:
    return [data(8, seed=10 + b)[0] for b in range(count)]


def test_solver_equals_the_adapter_loop() -> None:
    stream = _stream()
    settings = {**HPARAMS, "optimizer_factory": sgd, "tta_transform": shifted}
    result = rmt(network(), stream, source_loader=source(), generator=torch.Generator().manual_seed(0), **settings)
    rmt_adapter = RMT(network(), source_loader=source(), generator=torch.Generator().manual_seed(0), **settings)
    with torch.no_grad():
        first_residual = closed_form(rmt_adapter.student(stream[0]), rmt_adapter.teacher(stream[0])).mean()
    steps = [rmt_adapter.adapt(x) for x in stream]
    assert isinstance(result, RMTResult) and isinstance(result.solution, StreamPredictions)
    assert result.iterations == 4 and not result.converged  # tol = 0: a stream never "converges"
    torch.testing.assert_close(result.solution.logits, torch.cat([s.logits for s in steps]))
    residuals = [first_residual, *(closed_form(s.student_logits, s.teacher_logits).mean() for s in steps)]
    torch.testing.assert_close(result.residuals, torch.stack(residuals).double(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(result.losses, torch.stack([s.loss for s in steps]))
    assert result.adapter is not None and result.adapter.student is not rmt_adapter.student


def test_solver_stops_at_max_iter_and_at_tol_and_ignores_labels() -> None:
    labelled = [(x, torch.zeros(8, dtype=torch.long)) for x in _stream(5)]
    settings = {**HPARAMS, "lambda_ce_src": 0.0, "source_prototypes": torch.ones(CLASSES, WIDTH, dtype=torch.float64)}

    def run(**more):
        return rmt(network(), labelled, generator=torch.Generator().manual_seed(0), **settings, **more)

    capped = run(max_iter=2)
    assert capped.iterations == 2 and capped.solution.student.shape == (16, CLASSES)
    full = run()
    assert full.iterations == 5 and not full.converged
    tol = float(full.residuals[2])
    stopped = run(tol=tol)
    assert stopped.converged and stopped.iterations == int((full.residuals <= tol).nonzero()[0])
    torch.testing.assert_close(stopped.residuals, full.residuals[: stopped.iterations + 1])
