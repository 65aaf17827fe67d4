"""The winsorized mean and median of means, and the optimizers' limits."""

import pytest
import torch
from gradhub_coherence.aggregation import median_of_means, winsorized_mean
from gradhub_coherence.examples import classification_problem
from gradhub_coherence.per_example import attach_per_example_grads
from gradhub_coherence.robust_sgd import M3SGD, WinsorizedSGD
from torch.nn.functional import cross_entropy


def test_hand_example() -> None:
    values = torch.tensor([-10.0, 1.0, 2.0, 3.0, 100.0], dtype=torch.float64)
    assert winsorized_mean(values[torch.tensor([4, 0, 2, 1, 3])], 1).item() == 2.0
    assert winsorized_mean(values, 2).item() == 2.0
    assert winsorized_mean(values, 0).item() == pytest.approx(96 / 5)


def test_winsorized_matches_explicit_clamp() -> None:
    samples = torch.randn(9, 4, 3, dtype=torch.float64)
    for c in range(5):
        ordered = samples.sort(0).values
        expected = samples.clamp(ordered[c], ordered[8 - c]).mean(0)
        torch.testing.assert_close(winsorized_mean(samples, c), expected, rtol=1e-14, atol=1e-14)


def test_c0_is_mean_and_m3_c1_is_median() -> None:
    samples = torch.randn(7, 5, dtype=torch.float64)
    assert torch.equal(winsorized_mean(samples, 0), samples.mean(0))
    three = torch.randn(3, 6, 2, dtype=torch.float64)
    torch.testing.assert_close(winsorized_mean(three, 1), three.median(0).values, rtol=1e-15, atol=1e-15)


def test_median_of_means() -> None:
    group = torch.randn(4, 5, dtype=torch.float64)
    samples = torch.cat([group, group, group])  # three identical groups
    torch.testing.assert_close(median_of_means(samples, 3), samples.mean(0), rtol=1e-14, atol=1e-14)
    samples = torch.randn(12, 5, dtype=torch.float64)
    means = samples.reshape(3, 4, 5).mean(1)
    assert torch.equal(median_of_means(samples, 3), means.median(0).values)
    # uneven groups (sizes 4, 3, 4 as torch.tensor_split gives) and an even group count
    samples = torch.randn(11, 5, dtype=torch.float64)
    means = torch.stack([part.mean(0) for part in torch.tensor_split(samples, 3)])
    torch.testing.assert_close(median_of_means(samples, 3), means.median(0).values, rtol=1e-14, atol=1e-14)
    means = torch.stack([part.mean(0) for part in torch.tensor_split(samples, 4)])
    torch.testing.assert_close(median_of_means(samples, 4), means.quantile(0.5, dim=0), rtol=1e-14, atol=1e-14)


def _run(make, steps: int = 20):
    model, inputs, labels = classification_problem(dtype=torch.float64, examples=24)
    optimizer = make(model.parameters())
    for _ in range(steps):
        optimizer.zero_grad()
        attach_per_example_grads(model, cross_entropy, inputs, labels)
        if isinstance(optimizer, torch.optim.SGD):
            for p in model.parameters():
                p.grad = p.grad_sample.mean(0)  # what averaging the per-example gradients gives
        optimizer.step()
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("foreach", [False, True])
def test_winsorized_c0_and_m3_one_group_are_sgd_exactly(foreach: bool) -> None:
    hp = dict(lr=0.3, momentum=0.9, weight_decay=1e-2)
    sgd = _run(lambda p: torch.optim.SGD(p, foreach=foreach, **hp))
    winsorized = _run(lambda p: WinsorizedSGD(p, c=0, foreach=foreach, **hp))
    m3 = _run(lambda p: M3SGD(p, n_groups=1, foreach=foreach, **hp))
    assert all(torch.equal(a, b) for a, b in zip(sgd, winsorized))
    assert all(torch.equal(a, b) for a, b in zip(sgd, m3))


def test_winsorized_c0_matches_backward_sgd() -> None:
    model, inputs, labels = classification_problem(dtype=torch.float64)
    reference = classification_problem(dtype=torch.float64)[0]
    ours, sgd = (
        WinsorizedSGD(model.parameters(), lr=0.2, c=0, momentum=0.5),
        torch.optim.SGD(reference.parameters(), lr=0.2, momentum=0.5),
    )
    for _ in range(20):
        ours.zero_grad(), sgd.zero_grad()
        attach_per_example_grads(model, cross_entropy, inputs, labels)
        cross_entropy(reference(inputs), labels).backward()
        ours.step(), sgd.step()
    for p, q in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-12)


def test_winsorized_step_uses_winsorized_mean() -> None:
    model, inputs, labels = classification_problem(dtype=torch.float64)
    attach_per_example_grads(model, cross_entropy, inputs, labels)
    before = [p.detach().clone() for p in model.parameters()]
    expected = [b - 0.1 * winsorized_mean(p.grad_sample, 3) for b, p in zip(before, model.parameters())]
    WinsorizedSGD(model.parameters(), lr=0.1, c=3).step()
    for p, e in zip(model.parameters(), expected):
        torch.testing.assert_close(p.detach(), e, rtol=1e-14, atol=1e-14)
    # and it is not the plain mean
    assert not torch.allclose(before[0] - 0.1 * model[0].weight.grad, model[0].weight.detach())


def test_rm3_running_median() -> None:
    param = torch.nn.Parameter(torch.zeros(4, dtype=torch.float64))
    optimizer = M3SGD([param], lr=1.0, running=True)
    grads = [torch.randn(4, dtype=torch.float64) for _ in range(5)]
    expected = torch.zeros(4, dtype=torch.float64)
    for step, g in enumerate(grads):
        param.grad = g.clone()
        optimizer.step()
        update = g if step < 2 else torch.stack(grads[step - 2 : step + 1]).median(0).values
        expected -= update
        torch.testing.assert_close(param.detach(), expected, rtol=1e-14, atol=1e-14)
