"""Bad inputs raise gradhub errors naming the method, the parameter, the value and what is allowed."""

import pytest
import torch
from gradhub_coherence.coherence import coherence_from_grads, m_coherence
from gradhub_coherence.examples import classification_problem
from gradhub_coherence.per_example import attach_per_example_grads, per_example_grads
from gradhub_coherence.robust_sgd import M3SGD, WinsorizedSGD
from torch import nn
from torch.nn.functional import cross_entropy

import gradhub


def test_hyperparameters() -> None:
    p = [nn.Parameter(torch.zeros(2))]
    with pytest.raises(gradhub.HyperparameterError, match=r"winsorized_sgd.*c"):
        WinsorizedSGD(p, lr=0.1, c=-1)
    with pytest.raises(gradhub.HyperparameterError, match=r"median_of_means_sgd.*n_groups"):
        M3SGD(p, lr=0.1, n_groups=0)
    with pytest.raises(gradhub.HyperparameterError, match=r"m_coherence.*chunk_size"):
        model, x, y = classification_problem()
        m_coherence(model, cross_entropy, x, y, chunk_size=0)


def test_grad_without_grad_sample() -> None:
    model, x, y = classification_problem()
    cross_entropy(model(x), y).backward()
    optimizer = WinsorizedSGD(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(gradhub.UnsupportedInputError, match=r"winsorized_sgd.*grad_sample.*attach_per_example_grads"):
        optimizer.step()
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_too_few_examples_and_bad_shape() -> None:
    model, x, y = classification_problem()
    attach_per_example_grads(model, cross_entropy, x[:4], y[:4])
    with pytest.raises(gradhub.UnsupportedInputError, match=r"winsorized_sgd.*examples.*4.*>= 5"):
        WinsorizedSGD(model.parameters(), lr=0.1, c=2).step()
    with pytest.raises(gradhub.UnsupportedInputError, match=r"median_of_means_sgd.*examples.*>= 5"):
        M3SGD(model.parameters(), lr=0.1, n_groups=5).step()
    model[0].weight.grad_sample = torch.zeros(4, 3)
    with pytest.raises(gradhub.UnsupportedInputError, match=r"grad_sample shape"):
        WinsorizedSGD(model.parameters(), lr=0.1).step()


def test_zero_grad_clears_grad_sample() -> None:
    model, x, y = classification_problem()
    attach_per_example_grads(model, cross_entropy, x, y)
    optimizer = WinsorizedSGD(model.parameters(), lr=0.1)
    optimizer.zero_grad()
    assert all(p.grad_sample is None and p.grad is None for p in model.parameters())


def test_probe_inputs() -> None:
    model, x, y = classification_problem()
    with pytest.raises(gradhub.UnsupportedInputError, match=r"per_example_grads.*targets.*5 examples"):
        per_example_grads(model, cross_entropy, x, y[:5])
    with pytest.raises(gradhub.UnsupportedInputError, match=r"m_coherence.*inputs"):
        m_coherence(model, cross_entropy, 3.0, y)
    with pytest.raises(gradhub.UnsupportedInputError, match=r"per_example_grads.*parameters"):
        per_example_grads(model, cross_entropy, x, y, parameters=["nope"])
    with pytest.raises(gradhub.UnsupportedInputError, match=r"m_coherence.*grads"):
        coherence_from_grads(torch.zeros(3))
    bn = nn.Sequential(nn.Linear(8, 4), nn.BatchNorm1d(4)).train()
    with pytest.raises(gradhub.UnsupportedInputError, match=r"attach_per_example_grads.*BatchNorm"):
        attach_per_example_grads(bn, cross_entropy, x, y)
    if torch.device("meta") != x.device:
        with pytest.raises(
            gradhub.UnsupportedInputError, match=r"per_example_grads: unsupported devices: inputs on meta"
        ):
            per_example_grads(model, cross_entropy, x.to("meta"), y)


@pytest.mark.parametrize(
    ("cls", "hparams"), [(WinsorizedSGD, {"c": 1}), (M3SGD, {"n_groups": 3}), (M3SGD, {"n_groups": 3, "momentum": 0.9})]
)
def test_one_nonfinite_example_gradient_is_outvoted(cls, hparams: dict) -> None:
    """Better than torch.optim.SGD/Adam (which put the NaN into its entry): a NaN or infinite per-example
    gradient sorts to an end and is clamped away (c >= 1) or outvoted by the other group means (M3)."""
    model, x, y = classification_problem()
    optimizer = cls(model.parameters(), lr=0.1, **hparams)
    attach_per_example_grads(model, cross_entropy, x, y)
    first = next(model.parameters())
    first.grad_sample[0, 0, 0] = float("nan")
    first.grad_sample[5, 1, 1] = float("inf")
    before = [p.detach().clone() for p in model.parameters()]
    optimizer.step()
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
