"""CG against scipy.sparse.linalg.cg; its one-vector path against the batched one and its accelerator formulation
against the CPU one; the randomised symmetry check (refuses a non-symmetric A, never a symmetric one)."""

from __future__ import annotations

import contextlib
import math
import warnings

import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg
import torch
from gradhub_dcdm import cg as cg_module
from gradhub_dcdm.cg import cg
from gradhub_dcdm.dcdm import dcdm
from gradhub_dcdm.operators import LinearSystem, check_symmetric, poisson_matrix, require_all_finite

from gradhub.errors import UnsupportedInputError
from gradhub.kernels import accelerator_formulation, native
from gradhub.kernels.native import KernelUnavailableWarning


def random_spd(n: int, seed: int, condition: float = 1e3, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=torch.float64))
    values = torch.logspace(0, float(np.log10(condition)), n, dtype=torch.float64)
    return ((q * values) @ q.T).to(dtype)  # symmetric up to rounding only


def rhs(shape: int | tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def csr(matrix: torch.Tensor) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return matrix.to_sparse_csr()


def forms(dense: torch.Tensor) -> dict[str, object]:
    return {"dense": dense, "csr": csr(dense), "callable": lambda v: dense @ v}


# --- parity with scipy ------------------------------------------------------------------------------


def scipy_iterates(matrix, b: np.ndarray, rtol: float) -> tuple[int, list[np.ndarray]]:
    iterates: list[np.ndarray] = []
    _, info = scipy.sparse.linalg.cg(
        matrix, b, rtol=rtol, atol=0.0, maxiter=10 * b.size, callback=lambda x: iterates.append(x.copy())
    )
    return info, iterates


@pytest.mark.parametrize(
    ("system", "rtol"), [("poisson-csr", 1e-4), ("poisson-csr", 1e-9), ("poisson-dense", 1e-9), ("spd-dense", 1e-4)]
)
def test_matches_scipy_cg(system: str, rtol: float) -> None:
    """The same iteration count for tol = scipy's rtol (x0 = 0, atol = 0), and the same iterates.

    scipy stops when ||r_k|| < rtol ||b|| (strict), gradhub when ||r_k|| <= tol ||r_0||, r_0 = b: the
    same rule but at equality. Iterates agree to rounding: 1e-11 ||x|| after up to 46 iterations.
    The systems need far fewer iterations than n: once CG runs for about n iterations and more
    (loss of orthogonality), a rounding difference in a dot product can move the count by one or
    two, between scipy and any other implementation (random SPD, n = 100, cond 1e3, rtol 1e-9:
    scipy 176 iterations, gradhub 185).
    """
    if system == "spd-dense":
        matrix = random_spd(200, 0, condition=1e2)
        peer = matrix.numpy()
    else:
        matrix = poisson_matrix(10, layout=system.removeprefix("poisson-"))
        dense = matrix.to_dense() if matrix.layout == torch.sparse_csr else matrix
        peer = scipy.sparse.csr_array(dense.numpy()) if matrix.layout == torch.sparse_csr else dense.numpy()
    b = rhs(matrix.shape[0], 1)
    info, iterates = scipy_iterates(peer, b.numpy(), rtol)
    result = cg(matrix, b, tol=rtol, max_iter=1000)
    assert info == 0 and result.converged
    assert result.iterations == len(iterates)
    scale = np.linalg.norm(iterates[-1])
    for k in sorted({1, 2, len(iterates) // 2, len(iterates)}):
        ours = cg(matrix, b, tol=0.0, max_iter=k).solution.numpy()
        assert np.abs(ours - iterates[k - 1]).max() <= 1e-11 * scale, k
    batch = cg(matrix, torch.stack([b, -2 * b]), tol=rtol, max_iter=1000)  # the batched path, too
    assert batch.iterations == len(iterates)
    assert np.abs(batch.solution[1].numpy() + 2 * iterates[-1]).max() <= 1e-10 * scale


# --- the one-vector path and the accelerator formulation ---------------------------------------------


# Poisson rather than a random spectrum: CG's iterates on it are well-conditioned in the rounding (two
# implementations agree to 1e-15 after 57 iterations, where on Q diag(logspace(0, 2, 300)) Q^T they drift
# apart to 1e-9 by iteration 99), so the comparisons can be tight.
POISSON = poisson_matrix(16, layout="dense")


@pytest.mark.parametrize("form", ["dense", "csr", "callable"])
@pytest.mark.parametrize("recompute", [False, True])
def test_one_vector_path_equals_batched_path(form: str, recompute: bool) -> None:
    matrix = forms(POISSON)[form]
    b, x0 = rhs(256, 3), rhs(256, 4)
    single = cg(matrix, b, x0, tol=1e-10, recompute_residual=recompute)
    batch = cg(matrix, b.unsqueeze(0), x0.unsqueeze(0), tol=1e-10, recompute_residual=recompute)
    assert single.converged and batch.converged
    assert single.iterations == batch.iterations == 57
    assert single.solution.shape == (256,) and batch.solution.shape == (1, 256)
    scale = single.solution.norm().item()
    torch.testing.assert_close(single.solution, batch.solution[0], rtol=0, atol=1e-14 * scale)
    torch.testing.assert_close(single.residuals, batch.residuals, rtol=0, atol=1e-14)
    for k in (1, 5, 17):  # iteration by iteration (tol = 0 runs exactly max_iter iterations)
        one = cg(matrix, b, tol=0.0, max_iter=k, recompute_residual=recompute).solution
        rows = cg(matrix, b.unsqueeze(0), tol=0.0, max_iter=k, recompute_residual=recompute).solution
        torch.testing.assert_close(one, rows[0], rtol=0, atol=1e-14 * one.norm().item())


@pytest.mark.parametrize("form", ["dense", "csr", "callable"])
@pytest.mark.parametrize("recompute", [False, True])
def test_accelerator_formulation_matches_cpu_formulation(form: str, recompute: bool) -> None:
    """The one-vector path keeps its scalars on the device (one host read per iteration) off the CPU."""
    matrix = forms(POISSON)[form]
    b = rhs(256, 6)
    host = cg(matrix, b, tol=1e-10, recompute_residual=recompute)
    with accelerator_formulation():
        device = cg(matrix, b, tol=1e-10, recompute_residual=recompute)
    assert host.converged and device.converged
    assert host.iterations == device.iterations
    scale = host.solution.norm().item()
    torch.testing.assert_close(device.solution, host.solution, rtol=0, atol=1e-14 * scale)
    torch.testing.assert_close(device.residuals, host.residuals, rtol=0, atol=1e-14)


def test_one_vector_path_float32() -> None:
    matrix = poisson_matrix(8, dtype=torch.float32)
    b = rhs(64, 7).float()
    single = cg(matrix, b, tol=1e-5)
    batch = cg(matrix, b.unsqueeze(0), tol=1e-5)
    with accelerator_formulation():
        device = cg(matrix, b, tol=1e-5)
    assert single.solution.dtype == torch.float32 and single.converged
    assert single.iterations == batch.iterations == device.iterations
    torch.testing.assert_close(single.solution, batch.solution[0], rtol=0, atol=1e-5 * b.norm().item())
    torch.testing.assert_close(single.solution, device.solution, rtol=0, atol=1e-5 * b.norm().item())


@pytest.mark.parametrize("formulation", ["cpu", "accelerator"])
def test_one_vector_path_breakdowns(formulation: str) -> None:
    """Non-positive curvature raises in both formulations; a callable's NaN stops the frame at iteration 0."""
    negative = -random_spd(10, 8)
    nan = torch.full((10, 10), float("nan"), dtype=torch.float64)
    b = rhs(10, 9)
    with accelerator_formulation() if formulation == "accelerator" else contextlib.nullcontext():
        with pytest.raises(UnsupportedInputError, match=r"^cg: unsupported A: a matrix with p\^T A p = -.* <= 0 at "):
            cg(negative, b)
        stopped = cg(lambda v: nan @ v, b)
        assert not stopped.converged and stopped.iterations == 0 and torch.isnan(stopped.residuals[-1])
        zero = cg(random_spd(10, 8), torch.zeros(10, dtype=torch.float64))
        assert zero.converged and zero.iterations == 0 and torch.equal(zero.solution, torch.zeros(10).double())


# --- the symmetry check ------------------------------------------------------------------------------

NON_SYMMETRIC = r"^{}: unsupported A: a non-symmetric matrix \(max \|A - A\^T\| = {}\); A must be symmetric"


def perturbed_poisson(amount: float, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    dense = poisson_matrix(16, layout="dense", dtype=dtype)
    dense[3, 200] += amount  # one entry: A - A^T has two non-zeros of the 256^2
    return dense


@pytest.mark.parametrize(
    ("matrix", "shown"),
    [
        (torch.triu(torch.ones(4, 4, dtype=torch.float64)) + 3 * torch.eye(4, dtype=torch.float64), "1"),
        (torch.triu(torch.ones(4, 4)) + 3 * torch.eye(4), "1"),
        (csr(torch.triu(torch.ones(4, 4, dtype=torch.float64)) + 3 * torch.eye(4, dtype=torch.float64)), "1"),
        (perturbed_poisson(1e-6), "1e-06"),
        (csr(perturbed_poisson(1e-6)), "1e-06"),
        (perturbed_poisson(1e-3, torch.float32), "0.001"),
    ],
    ids=["dense", "float32", "csr", "one-entry-1e-6", "one-entry-csr", "one-entry-float32"],
)
def test_non_symmetric_matrix_is_refused(matrix: torch.Tensor, shown: str) -> None:
    """Sparse CSR A is checked now too; one entry off by 1e-6 (entries O(1), n = 256) is caught."""
    b = torch.ones(matrix.shape[0], dtype=matrix.dtype)
    for name, solve in (("cg", cg), ("dcdm", lambda A, b: dcdm(A, b, lambda r: r))):
        with pytest.raises(UnsupportedInputError, match=NON_SYMMETRIC.format(name, shown)):
            solve(matrix, b)
        with pytest.raises(UnsupportedInputError, match=NON_SYMMETRIC.format(name, shown)):
            solve(matrix, b.unsqueeze(0).repeat(2, 1))


def exactly_symmetric(size: int, seed: int) -> torch.Tensor:
    gaussian = torch.randn(size, size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return gaussian + gaussian.T  # a_ij + a_ji and a_ji + a_ij round alike


SCALES = torch.logspace(-15, 15, 300, dtype=torch.float64)
SYMMETRIC = {
    "rounded-float64": lambda: random_spd(300, 12, condition=1e8),  # Q D Q^T: symmetric up to rounding only
    "rounded-float32": lambda: random_spd(300, 12, condition=1e4, dtype=torch.float32),
    "float32-large-entries": lambda: (1e36 * random_spd(300, 13)).float(),  # up to ~1e36, near float32's max
    "float32-tiny-entries": lambda: (1e-36 * random_spd(300, 13)).float(),  # subnormal float32 among them
    "scaled-1e-30-to-1e30": lambda: SCALES[:, None] * random_spd(300, 14) * SCALES[None, :],  # rounded per entry
    "cancelling": lambda: 1e12 * torch.ones(300, 300, dtype=torch.float64) + exactly_symmetric(300, 15),
    "float32-3e38": lambda: (lambda m: (m / m.abs().max() * 3e38).float())(exactly_symmetric(300, 16)),
    "poisson-3d-float32": lambda: poisson_matrix(12, 3, layout="dense", dtype=torch.float32),
    "large-n-float32": lambda: (1e20 * exactly_symmetric(1500, 17)).float(),
}


@pytest.mark.parametrize("case", list(SYMMETRIC))
def test_symmetric_matrix_is_never_refused(case: str) -> None:
    """Matrices symmetric only up to rounding, float32 near overflow or underflow, entries over 60 decades."""
    matrix = SYMMETRIC[case]()
    if case in ("rounded-float64", "scaled-1e-30-to-1e30"):
        assert (matrix - matrix.T).abs().max() > 0  # the case tests what it says: not exactly symmetric
    check_symmetric("cg", matrix)
    check_symmetric("cg", csr(matrix))


def test_symmetry_check_is_deterministic_and_leaves_the_global_generator_alone() -> None:
    state = torch.get_rng_state()
    for _ in range(2):
        with pytest.raises(UnsupportedInputError, match="non-symmetric"):
            check_symmetric("cg", perturbed_poisson(1e-6))
        check_symmetric("cg", poisson_matrix(16))
    assert torch.equal(torch.get_rng_state(), state)


def test_finiteness_check_reads_sums_and_looks_closer_only_when_they_are_not_finite() -> None:
    """sum |entries| is finite iff the entries are, unless it overflowed: then each entry is examined."""
    large = torch.full((4,), 3e38)  # finite float32 entries whose sum overflows
    sums = require_all_finite("cg", b=large, A=torch.eye(4))
    assert sums["b"] == float("inf") and sums["A"] == 4.0
    with pytest.raises(UnsupportedInputError, match=r"^cg: unsupported b values: 1 of 4 entries non-finite"):
        require_all_finite("cg", b=torch.tensor([3e38, float("inf"), 0.0, 0.0]))


# --- fused=True: the CPU kernel (csrc/cg.cpp) ---------------------------------------------------------
# ``cg(..., fused=True)``: the hand-written CPU kernel (csrc/cg.cpp) against the unfused iteration.
#
# The kernel runs the same recurrence with its dot products accumulated in float64 in another
# order, so the two agree to round-off: iteration counts equal on well-conditioned systems,
# solutions to a few ulps of the condition number. Its block partials make the answer independent
# of the number of threads, bit for bit. It takes one b and a dense or CSR A on the CPU; anything
# else (a batch, a callable, ``recompute_residual=True``) runs the unfused iteration, the same numbers.


def poisson_csr(side: int, indices: torch.dtype) -> torch.Tensor:
    matrix = poisson_matrix(side, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            matrix.crow_indices().to(indices),
            matrix.col_indices().to(indices),
            matrix.values(),
            matrix.shape,
            check_invariants=True,
        )


@pytest.fixture(scope="module")
def kernel() -> None:
    probe = LinearSystem("cg", torch.eye(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64), None, None)
    if cg_module._fused_kernels(probe) is None:
        pytest.fail(f"the CG kernel did not compile: {native.status('dcdm_cg')}")


def calls_of_the_kernel(monkeypatch: pytest.MonkeyPatch, kernel: None) -> list[int]:
    calls: list[int] = []
    original = cg_module._one_rhs_fused

    def counted(system: object, kernels: object):
        calls.append(1)
        return original(system, kernels)

    monkeypatch.setattr(cg_module, "_one_rhs_fused", counted)
    return calls


@pytest.mark.parametrize(
    ("name", "matrix"),
    [
        ("csr-int32", poisson_csr(16, torch.int32)),
        ("csr-int64", poisson_csr(16, torch.int64)),
        ("dense", poisson_matrix(16, layout="dense", dtype=torch.float64)),
        ("dense-transposed-view", random_spd(256, 1, condition=100).T),
    ],
)
def test_fused_equals_the_unfused_iteration(
    name: str, matrix: torch.Tensor, monkeypatch: pytest.MonkeyPatch, kernel: None
) -> None:
    calls = calls_of_the_kernel(monkeypatch, None)
    b, x0 = rhs(256, 3), rhs(256, 4)
    plain = cg(matrix, b, x0, tol=1e-10, fused=False)
    fused = cg(matrix, b, x0, tol=1e-10, fused=True)
    assert calls == [1], name
    # Late iterates part by rounding (a random spectrum loses A-orthogonality): the count may move by one.
    assert plain.converged and fused.converged and abs(plain.iterations - fused.iterations) <= 1
    torch.testing.assert_close(fused.solution, plain.solution, rtol=0, atol=1e-8 * plain.solution.norm().item())
    for k in (1, 2, 9):  # iterate by iterate
        one = cg(matrix, b, tol=0.0, max_iter=k, fused=False).solution
        other = cg(matrix, b, tol=0.0, max_iter=k, fused=True).solution
        torch.testing.assert_close(other, one, rtol=0, atol=1e-13 * one.norm().item())


def test_fused_float32_accumulates_in_float64(kernel: None) -> None:
    matrix = poisson_matrix(16, layout="dense", dtype=torch.float32)
    b = rhs(256, 5).float()
    fused = cg(matrix, b, tol=1e-5, fused=True)
    exact = torch.linalg.solve(matrix.double(), b.double())
    assert fused.converged and fused.solution.dtype == torch.float32
    assert (fused.solution.double() - exact).norm() <= 1e-4 * exact.norm()


def test_fused_answer_does_not_depend_on_the_number_of_threads(monkeypatch: pytest.MonkeyPatch, kernel: None) -> None:
    """Several blocks (a small grain), on one thread and on two: the same bits."""
    monkeypatch.setattr(cg_module, "FUSED_GRAIN", 64)
    matrix, b = poisson_csr(32, torch.int32), rhs(1024, 6)
    dense = matrix.to_dense()
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = [cg(a, b, tol=0.0, max_iter=40, fused=True) for a in (matrix, dense)]
        torch.set_num_threads(2)
        two = [cg(a, b, tol=0.0, max_iter=40, fused=True) for a in (matrix, dense)]
    finally:
        torch.set_num_threads(threads)
    for single, double in zip(one, two, strict=True):
        assert torch.equal(single.solution, double.solution)
        assert torch.equal(single.residuals, double.residuals)
    plain = cg(matrix, b, tol=0.0, max_iter=40, fused=False)
    torch.testing.assert_close(one[0].solution, plain.solution, rtol=0, atol=1e-12 * plain.solution.norm().item())


def test_fused_breakdown_raises_the_same_error(kernel: None) -> None:
    with pytest.raises(UnsupportedInputError, match=r"^cg: unsupported A: a matrix with p\^T A p = -.* <= 0 at "):
        cg(-random_spd(10, 8), rhs(10, 9), fused=True)
    zero = cg(random_spd(10, 8), torch.zeros(10, dtype=torch.float64), fused=True)
    assert zero.converged and zero.iterations == 0


@pytest.mark.parametrize("case", ["batch", "callable", "recompute"])
def test_what_the_kernel_does_not_take_runs_unfused(case: str, monkeypatch: pytest.MonkeyPatch, kernel: None) -> None:
    calls = calls_of_the_kernel(monkeypatch, None)
    matrix = poisson_matrix(16, layout="dense", dtype=torch.float64)
    b = rhs(256, 7)
    args = {
        "batch": ((matrix, b.unsqueeze(0)), {}),
        "callable": ((lambda v: matrix @ v, b), {}),
        "recompute": ((matrix, b), {"recompute_residual": True}),
    }[case]
    plain = cg(*args[0], tol=1e-10, fused=False, **args[1])
    fused = cg(*args[0], tol=1e-10, **args[1])
    assert calls == []
    assert torch.equal(plain.solution, fused.solution)


def test_without_a_compiler_it_warns_once_and_runs_unfused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    real_load = native.load

    def fresh_load(name: str, sources: list, **options: object):
        return real_load(name + "_without_compiler", sources, **options)

    monkeypatch.setattr(cg_module.native, "load", fresh_load)
    matrix, b = poisson_csr(8, torch.int32), rhs(64, 8)
    with pytest.warns(
        KernelUnavailableWarning, match=r"^cg: the fused kernel .* falling back to the unfused iteration"
    ):
        fused = cg(matrix, b, tol=1e-10, fused=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", KernelUnavailableWarning)
        again = cg(matrix, b, tol=1e-10, fused=True)
    plain = cg(matrix, b, tol=1e-10, fused=False)
    assert torch.equal(fused.solution, plain.solution) and torch.equal(again.solution, plain.solution)


def test_the_default_runs_the_kernel_where_it_applies(monkeypatch: pytest.MonkeyPatch, kernel: None) -> None:
    """``fused=None`` (the default) takes the kernel for one b and a dense or CSR A on the CPU; False never."""
    calls = calls_of_the_kernel(monkeypatch, None)
    matrix, b = poisson_csr(16, torch.int32), rhs(256, 11)
    default = cg(matrix, b, tol=1e-10)
    assert calls == [1]
    plain = cg(matrix, b, tol=1e-10, fused=False)
    assert calls == [1]
    assert default.converged and abs(default.iterations - plain.iterations) <= 1
    torch.testing.assert_close(default.solution, plain.solution, rtol=0, atol=1e-8 * plain.solution.norm().item())


def test_without_a_compiler_the_default_is_quiet_and_fused_true_still_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    real_load = native.load

    def fresh_load(name: str, sources: list, **options: object):
        return real_load(name + "_quiet_without_compiler", sources, **options)

    monkeypatch.setattr(cg_module.native, "load", fresh_load)
    matrix, b = poisson_csr(8, torch.int32), rhs(64, 12)
    with warnings.catch_warnings():
        warnings.simplefilter("error", KernelUnavailableWarning)
        quiet = cg(matrix, b, tol=1e-10)
    with pytest.warns(KernelUnavailableWarning, match=r"^cg: the fused kernel .* falling back to the unfused"):
        loud = cg(matrix, b, tol=1e-10, fused=True)
    assert torch.equal(quiet.solution, loud.solution)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 9, 63, 130])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_dense_kernel_reads_the_upper_triangle(
    n: int, dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch, kernel: None
) -> None:
    """One dense step against ``A @ p`` in float64, with a grain small enough for several triangle blocks (rows
    in fours and the rest one by one), and with the lower triangle poisoned: the kernel must not read it."""
    monkeypatch.setattr(cg_module, "FUSED_GRAIN", 16)
    generator = torch.Generator().manual_seed(n)
    factor = torch.randn(n, n, generator=generator, dtype=torch.float64)
    exact = factor @ factor.T + n * torch.eye(n, dtype=torch.float64)
    matrix = exact.to(dtype)
    matrix = torch.triu(matrix) + torch.tril(torch.full_like(matrix, math.nan), -1)
    p = torch.randn(n, generator=generator, dtype=torch.float64).to(dtype)
    x, r, q = torch.zeros(n, dtype=dtype), p.clone(), torch.empty(n, dtype=dtype)
    rr = float(r.double() @ r.double())
    kernels = cg_module._fused_kernels(
        LinearSystem("cg", torch.eye(2, dtype=dtype), torch.ones(2, dtype=dtype), None, None)
    )
    curvature, _ = kernels.cg_dense_step(matrix, x, r, p.clone(), q, rr, cg_module.FUSED_GRAIN)
    product = torch.triu(exact.to(dtype).double()) + torch.triu(exact.to(dtype).double(), 1).T
    expected = product @ p.double()
    tolerance = 4 * n * torch.finfo(dtype).eps * (product.abs() @ p.double().abs()).max().item()
    assert (q.double() - expected).abs().max().item() <= tolerance
    assert abs(curvature - float(p.double() @ expected)) <= tolerance * p.double().abs().sum().item()
