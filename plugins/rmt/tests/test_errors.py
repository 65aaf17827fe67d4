"""Clear errors: bad hyperparameters, shapes, non-finite inputs, and models without the layers RMT needs.

An error raised by the adapter leaves the model as it was.
"""

from __future__ import annotations

import pytest
import torch
from gradhub_rmt.losses import contrastive_loss, symmetric_cross_entropy
from gradhub_rmt.rmt import RMT, rmt
from rmt_reference import CLASSES, WIDTH, data, network, source
from torch import nn

from gradhub.errors import HyperparameterError, UnsupportedInputError

PROTOTYPES = torch.ones(CLASSES, WIDTH, dtype=torch.float64)


def source_free(**overrides):
    return {"lambda_ce_src": 0.0, "source_prototypes": PROTOTYPES, **overrides}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("teacher_momentum", 1.2),
        ("teacher_momentum", -0.5),
        ("lambda_ce_trg", -1.0),
        ("lambda_cont", -0.1),
        ("lambda_ce_src", -2.0),
        ("temperature", 0.0),
        ("temperature", -0.1),
        ("projection_dim", -1),
        ("contrast_mode", "some"),
        ("lr", float("nan")),
        ("warmup_samples", 1.5),
    ],
)
def test_bad_hyperparameters_name_the_method_parameter_and_value(name: str, value) -> None:
    for build in (lambda: RMT(network(), **source_free(**{name: value})), lambda: rmt(network(), [], **{name: value})):
        with pytest.raises(HyperparameterError) as error:
            build()
        message = str(error.value)
        assert message.startswith("rmt:") and name in message and repr(value) in message


def test_solver_bounds() -> None:
    with pytest.raises(HyperparameterError, match="tol"):
        rmt(network(), [], tol=-1.0)
    with pytest.raises(HyperparameterError, match="max_iter"):
        rmt(network(), [], max_iter=0)


def test_contrastive_loss_checks_its_arguments() -> None:
    embeddings = torch.randn(4, 3, 5)
    with pytest.raises(HyperparameterError, match="temperature"):
        contrastive_loss(embeddings, temperature=0.0)
    with pytest.raises(HyperparameterError, match="contrast_mode"):
        contrastive_loss(embeddings, contrast_mode="none")
    with pytest.raises(UnsupportedInputError, match="V >= 2 views"):
        contrastive_loss(torch.randn(4, 1, 5))
    with pytest.raises(UnsupportedInputError, match="N samples, V views, D"):
        contrastive_loss(torch.randn(4, 5))


def test_sce_checks_shapes_and_finiteness() -> None:
    logits = torch.randn(4, 3)
    with pytest.raises(UnsupportedInputError, match="same shape"):
        symmetric_cross_entropy(logits, torch.randn(4, 2))
    with pytest.raises(UnsupportedInputError, match="same shape"):
        symmetric_cross_entropy(logits, logits, torch.randn(5, 3))
    with pytest.raises(UnsupportedInputError, match="2-D"):
        symmetric_cross_entropy(torch.randn(4), torch.randn(4))
    bad = logits.clone()
    bad[1, 2] = float("nan")
    with pytest.raises(UnsupportedInputError, match="non-finite"):
        symmetric_cross_entropy(bad, logits)
    with pytest.raises(HyperparameterError, match="reduction"):
        symmetric_cross_entropy(logits, logits, reduction="max")


def _state(module: nn.Module) -> list[torch.Tensor]:
    return [tensor.clone() for tensor in module.state_dict().values()]


def test_non_finite_batch_is_an_error_that_changes_nothing() -> None:
    adapter = RMT(network(), **source_free())
    before = _state(adapter)
    x = data(8, seed=1)[0]
    x[3, 1] = float("inf")
    with pytest.raises(UnsupportedInputError, match="x values"):
        adapter(x)
    assert all(torch.equal(a, b) for a, b in zip(_state(adapter), before))
    model = network()
    with pytest.raises(UnsupportedInputError, match="x values"):
        rmt(model, [x], **source_free())
    assert model[0][1].track_running_stats  # the solver checked the stream before configuring the model


def test_non_finite_prototypes_are_an_error() -> None:
    prototypes = PROTOTYPES.clone()
    prototypes[0, 0] = float("nan")
    with pytest.raises(UnsupportedInputError, match="source_prototypes values"):
        RMT(network(), **source_free(source_prototypes=prototypes))


def test_prototypes_of_the_wrong_width_are_an_error_before_any_update() -> None:
    adapter = RMT(network(), **source_free(source_prototypes=torch.ones(CLASSES, WIDTH + 1)))
    before = _state(adapter)
    with pytest.raises(UnsupportedInputError, match="feature width D = 6"):
        adapter(data(8, seed=2)[0])
    assert all(torch.equal(a, b) for a, b in zip(_state(adapter), before))


def test_model_without_a_feature_extractor_classifier_split_is_an_error() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = network()

        def forward(self, x):
            return self.inner(x)

    model = Net()
    with pytest.raises(UnsupportedInputError, match="feature extractor / classifier split"):
        RMT(model, **source_free())
    with pytest.raises(UnsupportedInputError, match="pass both feature_extractor and classifier"):
        RMT(model, model.inner[0], **source_free())
    with pytest.raises(UnsupportedInputError, match="the model's own submodules"):
        RMT(model, network()[0], model.inner[1], **source_free())  # a feature extractor from another model
    with pytest.raises(UnsupportedInputError, match="the model's own submodules"):
        RMT(model, model.inner[0][0], model.inner[1], **source_free())  # BatchNorm left in neither half
    with pytest.raises(UnsupportedInputError, match="without parameters"):
        RMT(nn.Sequential(nn.ReLU(), nn.Identity()), **source_free())
    with pytest.raises(UnsupportedInputError, match=r"nn\.Module"):
        RMT(lambda x: x, **source_free())


def test_feature_extractor_must_give_flat_features() -> None:
    model = nn.Sequential(
        nn.Sequential(nn.Linear(5, WIDTH), nn.Unflatten(1, (WIDTH, 1))), nn.Flatten(), nn.Linear(WIDTH, 3)
    )
    model = model.double()
    adapter = RMT(model, model[0], nn.Sequential(model[1], model[2]), **source_free())
    with pytest.raises(UnsupportedInputError, match=r"end it with nn\.Flatten"):
        adapter(data(8, seed=3)[0])


def test_source_data_needed_by_replay_and_prototypes() -> None:
    with pytest.raises(UnsupportedInputError, match="source replay needs labelled source batches"):
        RMT(network(), source_prototypes=PROTOTYPES)
    with pytest.raises(UnsupportedInputError, match="needs the source class prototypes"):
        RMT(network(), lambda_ce_src=0.0)
    missing = [(x, torch.zeros_like(y)) for x, y in source()]  # only class 0
    model = network()
    before = _state(model)
    with pytest.raises(UnsupportedInputError, match=r"classes \[1, 2\]"):
        RMT(model, source_loader=missing)
    assert all(torch.equal(a, b) for a, b in zip(_state(model), before))
    assert model[0][1].track_running_stats  # not yet configured: the error came first
    with pytest.raises(UnsupportedInputError, match="class indices"):
        RMT(network(), source_loader=[(x, y + 5) for x, y in source()])
    with pytest.raises(UnsupportedInputError, match=r"\(x, y\) pairs"):
        RMT(network(), source_loader=[x for x, _ in source()])
    with pytest.raises(UnsupportedInputError, match="empty loader"):
        RMT(network(), source_loader=[])


def test_stream_and_augmentation_errors() -> None:
    with pytest.raises(UnsupportedInputError, match="empty stream"):
        rmt(network(), [], **source_free())
    with pytest.raises(UnsupportedInputError, match="x must be a floating-point tensor"):
        rmt(network(), [torch.ones(8, 5, dtype=torch.long)], **source_free())
    adapter = RMT(network(), tta_transform=lambda x: x[:4], **source_free())
    with pytest.raises(UnsupportedInputError, match="tensor of x's shape"):
        adapter(data(8, seed=4)[0])
    with pytest.raises(UnsupportedInputError, match="x must be on the model's device"):
        adapter(torch.ones(8, 5, dtype=torch.float64, device="meta"))
    with pytest.raises(UnsupportedInputError, match="callable"):
        RMT(network(), tta_transform=3, **source_free())
    with pytest.raises(UnsupportedInputError, match="torch Optimizer"):
        RMT(network(), optimizer_factory=lambda p: None, **source_free())
    with pytest.raises(UnsupportedInputError, match=r"torch\.Generator"):
        RMT(network(), generator=0, **source_free())
