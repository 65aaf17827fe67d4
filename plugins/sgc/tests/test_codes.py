"""Gradient coding (FRC and CRC): encode/decode exactness for every straggler set, loads, and wrong decoders."""

from __future__ import annotations

import itertools

import pytest
import torch
from gradhub_sgc.codes import GradientCode

SMALL = [(4, 0), (4, 1), (4, 2), (4, 3), (5, 1), (5, 2), (6, 1), (6, 2), (7, 3), (8, 3)]


def _chunks(n: int, dtype: torch.dtype = torch.float64, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randn(n, 3, 5, generator=generator, dtype=dtype, device="cpu")


def _schemes(n: int, s: int) -> list[str]:
    return ["frc", "crc"] if n % (s + 1) == 0 else ["crc"]


@pytest.mark.parametrize("n,s", SMALL)
def test_every_straggler_set_of_size_at_most_s_decodes_exactly(n: int, s: int) -> None:
    """Exhaustive: every subset of at most s stragglers, FRC and CRC, float64."""
    gradients = _chunks(n)
    exact = gradients.sum(0)
    for scheme in _schemes(n, s):
        code = GradientCode(n, s, scheme=scheme)
        messages = code.encode(gradients)
        for size in range(s + 1):
            for missing in itertools.combinations(range(n), size):
                returned = {i: messages[i] for i in range(n) if i not in missing}
                error = (code.decode(returned) - exact).abs().max()
                # CRC's random H makes some sets ill-conditioned: ~5e-12 relative at worst measured (n = 6, s = 2)
                assert float(error) <= 1e-10 * float(exact.abs().max()), (scheme, missing, float(error))


def test_crc_twenty_workers_two_hundred_random_straggler_sets() -> None:
    """The claim check's n = 20, s = 4, with CRC: 200 random sets of s stragglers to 1e-9; s + 1 stragglers raise."""
    code = GradientCode(20, 4, scheme="crc", seed=1)
    gradients = _chunks(20)
    exact = gradients.sum(0)
    messages = code.encode(gradients)
    generator = torch.Generator(device="cpu").manual_seed(2)
    for _ in range(200):
        missing = set(torch.randperm(20, generator=generator)[:4].tolist())
        decoded = code.decode({i: messages[i] for i in range(20) if i not in missing})
        assert float((decoded - exact).abs().max()) <= 1e-9 * float(exact.abs().max())
    with pytest.raises(ValueError, match=r"missing: \[15, 16, 17, 18, 19\].*at least n - s = 16"):
        code.decode({i: messages[i] for i in range(15)})


@pytest.mark.parametrize("n,s", [(6, 1), (6, 2), (8, 3), (20, 4)])
def test_frc_takes_one_survivor_per_group_and_is_exact_in_float32(n: int, s: int) -> None:
    code = GradientCode(n, s, scheme="frc")
    groups = torch.arange(n) // (s + 1)
    gradients = _chunks(n, torch.float32)
    messages = code.encode(gradients)
    for missing in [(), tuple(range(s)), tuple(range(n - s, n)), tuple(range(1, n, n // s))[:s]]:
        returned = [i for i in range(n) if i not in missing]
        vector = code.decoding_vector(returned)
        assert set(vector.unique().tolist()) <= {0.0, 1.0}
        chosen = vector.nonzero().flatten()
        assert sorted(groups[chosen].tolist()) == list(range(n // (s + 1)))  # one per group
        for group in range(n // (s + 1)):  # the lowest-index survivor of the group
            assert int(chosen[groups[chosen] == group]) == min(i for i in returned if groups[i] == group)
        decoded = code.decode({i: messages[i] for i in returned})
        # coefficients 0/1: the decoded value is the sum of the survivors' messages, no rounding from codes
        by_hand = torch.stack([messages[i] for i in chosen.tolist()]).sum(0)
        torch.testing.assert_close(decoded, by_hand, rtol=2e-7, atol=2e-6)
        torch.testing.assert_close(decoded.double(), gradients.double().sum(0), rtol=1e-5, atol=1e-5)


def test_crc_in_float32_is_accurate_to_single_precision_only() -> None:
    code = GradientCode(7, 3, scheme="crc")
    gradients = _chunks(7)
    exact = gradients.sum(0)
    messages = code.encode(gradients.float())
    decoded = code.decode({i: messages[i] for i in (0, 2, 4, 5)})
    relative = float((decoded.double() - exact).abs().max() / exact.abs().max())
    assert relative < 1e-4


@pytest.mark.parametrize("n,s", [(5, 2), (6, 2), (20, 4), (9, 0), (9, 8)])
def test_load_assignment_and_encoding_matrix(n: int, s: int) -> None:
    for scheme in _schemes(n, s):
        code = GradientCode(n, s, scheme=scheme)
        matrix = code.encode_coeffs()
        assert code.load == pytest.approx((s + 1) / n)
        assert ((matrix != 0).sum(1) == s + 1).all()  # every worker computes s + 1 chunks
        assert ((matrix != 0).sum(0) == s + 1).all()  # every chunk is computed by s + 1 workers
        assert [sorted(chunks) for chunks in code.assignment()] == [row.nonzero().flatten().tolist() for row in matrix]
        # CRC: the rows live in null(H), of dimension n - s; FRC: one distinct row per group
        assert int(torch.linalg.matrix_rank(matrix)) == (n - s if scheme == "crc" else n // (s + 1))
        gradients = _chunks(n)
        messages = code.encode(gradients)
        for worker, chunks in enumerate(code.assignment()):  # a worker needs only its own chunks
            own = sum(matrix[worker, k] * gradients[k] for k in chunks)
            torch.testing.assert_close(messages[worker], own, rtol=1e-12, atol=1e-12)


def test_cyclic_supports() -> None:
    assert GradientCode(5, 2).assignment() == [[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 0], [4, 0, 1]]
    assert GradientCode(6, 1).scheme == "frc" and GradientCode(6, 1).assignment()[:3] == [[0, 1], [0, 1], [2, 3]]
    different = GradientCode(5, 2, seed=1).encode_coeffs()
    assert not torch.equal(GradientCode(5, 2).encode_coeffs(), different)  # the seed draws H
    assert torch.equal(GradientCode(5, 2, seed=1).encode_coeffs(), different)


def test_a_decoder_that_ignores_which_workers_returned_fails() -> None:
    """Wrong variant: the decoding vector solved for workers 0..n-s-1, applied to the workers that returned."""
    code = GradientCode(6, 2, scheme="crc")
    gradients = _chunks(6)
    exact = gradients.sum(0)
    messages = code.encode(gradients)
    fixed = code.decoding_vector([0, 1, 2, 3])
    worst = 0.0
    for missing in itertools.combinations(range(6), 2):
        returned = [i for i in range(6) if i not in missing]
        wrong = sum(float(fixed[k]) * messages[w] for k, w in enumerate(returned[:4]))
        right = code.decode({i: messages[i] for i in returned})
        assert float((right - exact).abs().max()) < 1e-10 * float(exact.abs().max())
        worst = max(worst, float((wrong - exact).abs().max()))
    assert worst > 1.0


def test_a_decoder_that_sums_the_messages_fails() -> None:
    """Wrong variant: adding the returned messages up (no decoding vector) is not the gradient."""
    code = GradientCode(6, 2, scheme="frc")
    gradients = _chunks(6)
    messages = code.encode(gradients)
    assert float((messages[[0, 1, 2, 3]].sum(0) - gradients.sum(0)).abs().max()) > 1.0
