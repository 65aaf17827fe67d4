"""DiffSortNet against PyPI diffsort 0.2.0, the hard-sorting limit, the product of layer matrices, gradients."""

from __future__ import annotations

import diffsort
import pytest
import torch
from gradhub_groco.networks import comparators
from gradhub_groco.sorting import RELAXATIONS, DiffSortNet

from gradhub.claims import single_thread

SIZES = {"odd_even": (2, 3, 5, 8, 11, 16), "bitonic": (2, 4, 8, 16, 32)}
STEEPNESS = (0.5, 3.0, 30.0)
ART_LAMBDA = 0.3


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny float64 matrix products (diffsort's) wait milliseconds on a second BLAS thread of a busy machine."""
    with single_thread():
        yield


def _ours(x: torch.Tensor, network: str, relaxation: str, steepness: float) -> tuple[torch.Tensor, torch.Tensor]:
    return DiffSortNet(
        x.shape[-1], sorting_network=network, relaxation=relaxation, steepness=steepness, art_lambda=ART_LAMBDA
    )(x)


def _reference(x: torch.Tensor, network: str, relaxation: str, steepness: float) -> tuple[torch.Tensor, torch.Tensor]:
    sorter = diffsort.DiffSortNet(
        network, x.shape[-1], steepness=steepness, art_lambda=ART_LAMBDA, distribution=relaxation
    )
    return sorter(x)


@pytest.mark.parametrize("relaxation", sorted(RELAXATIONS))
@pytest.mark.parametrize("network", sorted(SIZES))
def test_values_and_permutation_equal_diffsort(network: str, relaxation: str) -> None:
    """Sorted values and P equal diffsort's DiffSortNet in float64, for every size and steepness; so do the
    gradients of a random projection of both outputs (diffsort's Gaussian backward uses a float32 sigma, hence
    1e-6 there)."""
    generator = torch.Generator().manual_seed(0)
    gradient_tolerance = 1e-6 if relaxation == "gaussian" else 1e-11
    for n in SIZES[network]:
        for steepness in STEEPNESS:
            x = torch.randn(5, n, generator=generator, dtype=torch.float64, requires_grad=True)
            weights = torch.randn(5, n, generator=generator, dtype=torch.float64)
            mixing = torch.randn(5, n, n, generator=generator, dtype=torch.float64)
            results = []
            for sort in (_ours, _reference):
                values, P = sort(x, network, relaxation, steepness)
                (gradient,) = torch.autograd.grad((values * weights).sum() + (P * mixing).sum(), x)
                results.append((values.detach(), P.detach(), gradient))
            (values, P, gradient), (ref_values, ref_P, ref_gradient) = results
            where = f"{network} n={n} {relaxation} steepness={steepness}"
            torch.testing.assert_close(values, ref_values, rtol=0, atol=1e-12, msg=where)
            torch.testing.assert_close(P, ref_P, rtol=0, atol=1e-12, msg=where)
            torch.testing.assert_close(
                gradient, ref_gradient, rtol=gradient_tolerance, atol=gradient_tolerance, msg=where
            )


def test_transposed_permutation_fails_the_parity_criterion() -> None:
    """WRONG: P transposed (rank -> input instead of input -> rank) is caught by the comparison above."""
    x = torch.randn(5, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    _, P = _ours(x, "odd_even", "cauchy", 3.0)
    _, ref_P = _reference(x, "odd_even", "cauchy", 3.0)
    assert (P.mT - ref_P).abs().max() > 1e-2


def test_float32_equals_diffsort() -> None:
    x = torch.randn(128, 16, generator=torch.Generator().manual_seed(2))
    for network, n in (("odd_even", 16), ("bitonic", 32)):
        x = torch.randn(128, n, generator=torch.Generator().manual_seed(n))
        values, P = _ours(x, network, "cauchy", 10.0)
        ref_values, ref_P = _reference(x, network, "cauchy", 10.0)
        torch.testing.assert_close(values, ref_values, rtol=0, atol=1e-5)
        torch.testing.assert_close(P, ref_P, rtol=0, atol=1e-5)


def _separated(batch: int, n: int, seed: int) -> torch.Tensor:
    """Random orders of 0..n-1 plus jitter < 0.3: neighbours at least 0.4 apart, no ties."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.rand(batch, n, generator=generator).argsort(-1).to(torch.float64)
    return order + 0.3 * torch.rand(batch, n, generator=generator, dtype=torch.float64)


def _hard_limit_error(P: torch.Tensor, x: torch.Tensor) -> float:
    """Largest distance of P from the one-hot matrix of the true argsort: P[b, argsort[b, r], r] = 1."""
    target = torch.zeros_like(P).scatter_(-2, x.argsort(-1).unsqueeze(-2), 1.0)
    return (P - target).abs().max().item()


@pytest.mark.parametrize("relaxation", sorted(RELAXATIONS))
def test_large_steepness_gives_the_hard_sort(relaxation: str) -> None:
    """(a) At steepness 1e6 the values are sorted and P is the permutation matrix of argsort (float64)."""
    for network, n in (("odd_even", 7), ("odd_even", 16), ("bitonic", 16)):
        x = _separated(32, n, seed=n)
        values, P = DiffSortNet(n, sorting_network=network, relaxation=relaxation, steepness=1e6)(x)
        torch.testing.assert_close(values, x.sort(-1).values, rtol=0, atol=1e-4)
        assert _hard_limit_error(P, x) < 1e-4, (network, n)
        assert torch.equal(P.argmax(-2), x.argsort(-1))  # rank r's input
        assert torch.equal(P.argmax(-1), x.argsort(-1).argsort(-1))  # input i's rank


def test_transposed_permutation_fails_the_hard_limit_criterion() -> None:
    """WRONG: a transposed P is not argsort's permutation matrix (whenever the permutation is not an involution)."""
    x = _separated(32, 8, seed=3)
    _, P = DiffSortNet(8, steepness=1e6)(x)
    assert _hard_limit_error(P.mT, x) > 0.99


@pytest.mark.parametrize("relaxation", sorted(RELAXATIONS))
@pytest.mark.parametrize("steepness", (0.1, 1.0, 10.0, 1e3))
def test_doubly_stochastic_and_sorted_is_x_times_P(relaxation: str, steepness: float) -> None:
    """P's rows and columns sum to 1 and values = x @ P, at any steepness."""
    x = torch.randn(6, 3, 8, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    for network in ("odd_even", "bitonic"):
        values, P = DiffSortNet(8, sorting_network=network, relaxation=relaxation, steepness=steepness)(x)
        assert P.shape == (6, 3, 8, 8)
        assert bool((P >= -1e-15).all())
        torch.testing.assert_close(P.sum(-1), torch.ones_like(values), rtol=0, atol=1e-12)
        torch.testing.assert_close(P.sum(-2), torch.ones_like(values), rtol=0, atol=1e-12)
        torch.testing.assert_close(values, (x.unsqueeze(-2) @ P).squeeze(-2), rtol=0, atol=1e-12)


def _layer_product(x: torch.Tensor, network: str, steepness: float, reverse: bool = False) -> torch.Tensor:
    """P as the product of dense layer matrices, one comparator at a time (Petersen et al. 2021, Eq. 2-3)."""
    batch, n = x.shape
    P = torch.eye(n, dtype=x.dtype).repeat(batch, 1, 1)
    matrices = []
    for layer in comparators(network, n):
        M = torch.eye(n, dtype=x.dtype).repeat(batch, 1, 1)
        values = (x.unsqueeze(1) @ P).squeeze(1)  # the values entering this layer
        for low, high in layer:  # low receives the minimum
            alpha = torch.atan(steepness * (values[:, high] - values[:, low])) / torch.pi + 0.5
            M[:, low, low], M[:, high, low] = alpha, 1 - alpha
            M[:, high, high], M[:, low, high] = alpha, 1 - alpha
        matrices.append(M)
        P = P @ M
    if reverse:
        P = torch.eye(n, dtype=x.dtype).repeat(batch, 1, 1)
        for M in reversed(matrices):
            P = P @ M
    return P


def test_permutation_is_the_product_of_the_layer_matrices() -> None:
    """P = M_1 M_2 ... M_L with each comparator's 2 x 2 block [[a, 1 - a], [1 - a, a]]; the reversed product fails."""
    for network, n in (("odd_even", 6), ("bitonic", 8)):
        x = torch.randn(4, n, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
        _, P = DiffSortNet(n, sorting_network=network, steepness=2.0)(x)
        torch.testing.assert_close(P, _layer_product(x, network, 2.0), rtol=0, atol=1e-12)
        assert (P - _layer_product(x, network, 2.0, reverse=True)).abs().max() > 1e-3  # WRONG order


def test_networks_sort_every_zero_one_vector() -> None:
    """The 0-1 principle: each network (hard comparators) sorts all 2^n binary vectors, so it sorts everything."""
    for network, n in (("odd_even", 7), ("odd_even", 8), ("bitonic", 8)):
        codes = torch.arange(2**n)
        bits = ((codes.unsqueeze(1) >> torch.arange(n)) & 1).to(torch.float64)
        values, _ = DiffSortNet(n, sorting_network=network, steepness=1e9)(bits)
        torch.testing.assert_close(values, bits.sort(-1).values, rtol=0, atol=1e-6, msg=network)


@pytest.mark.parametrize("relaxation", sorted(RELAXATIONS))
def test_gradcheck(relaxation: str) -> None:
    for network in ("odd_even", "bitonic"):
        x = torch.randn(2, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64, requires_grad=True)
        sorter = DiffSortNet(4, sorting_network=network, relaxation=relaxation, steepness=1.5)
        assert torch.autograd.gradcheck(sorter, (x,))


def test_half_precision_and_leading_dimensions() -> None:
    x = torch.randn(2, 3, 8, generator=torch.Generator().manual_seed(6))
    values, P = DiffSortNet(8)(x.to(torch.bfloat16))
    assert values.dtype == P.dtype == torch.bfloat16 and P.shape == (2, 3, 8, 8)
    ref_values, ref_P = DiffSortNet(8)(x.to(torch.bfloat16).float())
    torch.testing.assert_close(values, ref_values.to(torch.bfloat16))
    torch.testing.assert_close(P, ref_P.to(torch.bfloat16))
    single, P1 = DiffSortNet(8)(x[0, 0])
    assert single.shape == (8,) and P1.shape == (8, 8)
    torch.testing.assert_close(single, DiffSortNet(8)(x)[0][0, 0])
