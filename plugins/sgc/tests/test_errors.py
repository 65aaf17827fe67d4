"""Clear errors: forbidden parameters, patterns off the model (round and worker named), too many stragglers,
non-finite gradients, wrong shapes."""

from __future__ import annotations

import pytest
import torch
from gradhub_sgc.codes import GradientCode
from gradhub_sgc.distributed import coded_gradients
from gradhub_sgc.examples import tiny_regression_jobs
from gradhub_sgc.runs import gradient_coding, m_sgc, sr_sgc
from gradhub_sgc.schemes import MultiplexedSGC, SelectiveRepeatSGC
from gradhub_sgc.simulator import bursty_stragglers
from gradhub_sgc.stragglers import StragglerModelError
from gradhub_sgc.tasks import Task

from gradhub.errors import HyperparameterError, UnknownHyperparameterError, UnsupportedInputError


@pytest.mark.parametrize(
    "make,words",
    [
        (lambda: GradientCode(4, 4), ["gradient_coding", "s=4 must be < n_workers=4"]),
        (lambda: GradientCode(5, 1, scheme="frc"), ["gradient_coding", "(s + 1) | n_workers", "'crc'"]),
        (lambda: GradientCode(5, -1), ["gradient_coding", "invalid s=-1", ">= 0"]),
        (lambda: GradientCode(5, 1, scheme="mds"), ["gradient_coding", "scheme", "'frc'"]),
        (lambda: SelectiveRepeatSGC(8, 2, 4, 2), ["sr_sgc", "(W - 1) % B must be 0", "W=4, B=2"]),
        (lambda: SelectiveRepeatSGC(1, 1, 2, 1), ["sr_sgc", "s = ceil(B * lam / (W - 1 + B)) = 1", "n_workers=1"]),
        (lambda: MultiplexedSGC(4, 3, 3, 1), ["m_sgc", "W=3 must be > B=3"]),
        (lambda: MultiplexedSGC(4, 1, 3, 5), ["m_sgc", "lam=5 must be <= n_workers=4"]),
        (lambda: MultiplexedSGC(4, 1, 1, 1), ["m_sgc", "invalid W=1", ">= 2"]),
    ],
)
def test_forbidden_parameters(make, words) -> None:
    with pytest.raises(HyperparameterError) as info:
        make()
    for word in words:
        assert word in str(info.value), str(info.value)


def test_unknown_keyword() -> None:
    with pytest.raises(UnknownHyperparameterError, match="did you mean 'lam'"):
        sr_sgc(torch.zeros(2, 4, 1), n_workers=4, B=1, W=3, lamb=2)


@pytest.mark.parametrize(
    "run,pattern,where",
    [
        (lambda g, p: gradient_coding(g, p, n_workers=4, s=1), ["x---", "-x--", "x---", "----"], (0, 2, "per-round")),
        (
            lambda g, p: sr_sgc(g, p, n_workers=4, B=1, W=3, lam=2),
            ["x-x--", "-----", "-----", "-----"],
            (2, 0, "temporal"),
        ),
        (
            lambda g, p: sr_sgc(g, p, n_workers=4, B=1, W=3, lam=2),
            ["x----", "-x---", "--x--", "-----"],
            (2, 2, "spatial"),
        ),
    ],
)
def test_patterns_off_the_model_name_the_round_and_the_worker(run, pattern, where) -> None:
    stragglers = torch.tensor([[c == "x" for c in row] for row in pattern], dtype=torch.bool)
    gradients = torch.zeros(4, 4, 2)
    with pytest.raises(StragglerModelError) as info:
        run(gradients, stragglers)
    error = info.value
    assert (error.round, error.worker, error.rule) == where
    assert f"round {where[0]}, worker {where[1]}" in str(error)


def test_multiplexed_pattern_off_the_model() -> None:
    scheme = MultiplexedSGC(4, 1, 3, 1)
    stragglers = torch.zeros(4, 6, dtype=torch.bool)
    stragglers[2, 1] = stragglers[3, 3] = True  # two distinct stragglers in rounds [1, 3], lambda = 1
    with pytest.raises(StragglerModelError, match=r"m_sgc: .*round 3, worker 3: 2 distinct workers \[2, 3\]"):
        m_sgc(torch.zeros(4, scheme.n_chunks, 2), stragglers, n_workers=4, B=1, W=3, lam=1)


def test_more_stragglers_than_decodable() -> None:
    code = GradientCode(6, 2)
    messages = code.encode(torch.randn(6, 3, dtype=torch.float64))
    with pytest.raises(UnsupportedInputError, match=r"gradient_coding: .*3 of n=6 \(missing: \[0, 1, 2\]\).*n - s = 4"):
        code.decode({i: messages[i] for i in (3, 4, 5)})
    scheme = SelectiveRepeatSGC(4, 1, 3, 2)
    with pytest.raises(UnsupportedInputError, match=r"sr_sgc: .*results of job 5.*missing workers \[0, 1\]"):
        scheme.decode(5, {2: messages[0], 3: messages[1]})
    multiplexed = MultiplexedSGC(4, 1, 3, 2)
    d1 = {Task(0, w, "d1", u): torch.ones(3) for w in range(4) for u in range(2)}
    with pytest.raises(UnsupportedInputError, match=r"m_sgc: .*D1 mini-tasks .*\(3, 1\)"):
        multiplexed.decode(0, {key: value for key, value in d1.items() if key != Task(0, 3, "d1", 1)})
    with pytest.raises(UnsupportedInputError, match=r"m_sgc: .*1 coded results of D2 group 0.*n - lam = 2"):
        multiplexed.decode(0, {**d1, Task(0, 1, "d2", 0): torch.ones(3)})


def test_non_finite_gradients() -> None:
    gradients = torch.randn(3, 4, 2, dtype=torch.float64)
    gradients[1, 2, 0] = float("nan")
    with pytest.raises(UnsupportedInputError, match=r"gradient_coding: unsupported chunk_gradients values"):
        gradient_coding(gradients, n_workers=4, s=1)
    code = GradientCode(4, 1)
    messages = code.encode(torch.randn(4, 3, dtype=torch.float64))
    messages[2, 1] = float("inf")
    with pytest.raises(UnsupportedInputError, match=r"gradient_coding: .*non-finite.*workers \[2\]"):
        code.decode({i: messages[i] for i in range(4)})
    multiplexed = MultiplexedSGC(4, 1, 3, 3)
    d1 = {Task(0, w, "d1", u): torch.ones(3) for w in range(4) for u in range(2)}
    d1[Task(0, 2, "d1", 0)] = torch.full((3,), float("nan"))
    with pytest.raises(UnsupportedInputError, match=r"m_sgc: .*D1 results of job 0.*non-finite"):
        multiplexed.decode(0, {**d1, Task(0, 0, "d2", 0): torch.ones(3)})


def test_input_shapes() -> None:
    with pytest.raises(UnsupportedInputError, match=r"m_sgc: .*K = 12 chunks: \(J, 12, \.\.\.\)"):
        m_sgc(torch.zeros(3, 4, 2), n_workers=4, B=1, W=3, lam=2)
    with pytest.raises(UnsupportedInputError, match=r"gradient_coding: .*stragglers.*\(n_workers=4, rounds >= 3\)"):
        gradient_coding(torch.zeros(3, 4, 2), torch.zeros(4, 2, dtype=torch.bool), n_workers=4, s=1)
    with pytest.raises(UnsupportedInputError, match=r"gradient_coding: .*stragglers dtype"):
        gradient_coding(torch.zeros(3, 4, 2), torch.zeros(4, 3), n_workers=4, s=1)
    with pytest.raises(UnsupportedInputError, match=r"gradient_coding: .*chunk_gradients shape"):
        GradientCode(4, 1).encode(torch.zeros(3, 2))
    with pytest.raises(UnsupportedInputError, match=r"returned workers.*distinct worker ids in \[0, 3\]"):
        GradientCode(4, 1).decode({7: torch.zeros(2), 0: torch.zeros(2), 1: torch.zeros(2)})


def test_probe_inputs() -> None:
    example = tiny_regression_jobs()
    model, loss, inputs, targets = example.model, *example.args
    with pytest.raises(UnsupportedInputError, match=r"bursty_stragglers: .*examples per job: 24.*at least 27"):
        bursty_stragglers(model, loss, inputs, targets, n_workers=9)
    with pytest.raises(UnsupportedInputError, match=r"bursty_stragglers: .*targets shape"):
        bursty_stragglers(model, loss, inputs, targets[:, :5])
    with pytest.raises(UnsupportedInputError, match=r"bursty_stragglers: .*model"):
        bursty_stragglers(lambda x: x, loss, inputs, targets)
    with pytest.raises(HyperparameterError, match=r"bursty_stragglers: .*scheme='gc' runs with s = lam"):
        bursty_stragglers(model, loss, inputs, targets, scheme="gc", lam=4)


def test_distributed_needs_a_process_group() -> None:
    with pytest.raises(UnsupportedInputError, match=r"gradient_coding: .*init_process_group"):
        coded_gradients(GradientCode(2, 1), torch.nn.Linear(2, 1), lambda o, y: o.sum(), [], torch.zeros(2, 1) > 0)
