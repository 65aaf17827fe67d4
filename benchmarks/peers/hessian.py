"""Hessian probes (gradhub-hessian-spectrum) against PyHessian 0.1 (amirgholami/PyHessian), group ``hessian``.

    python benchmarks/kinds.py --only hessian --rounds 3

Three problems, float32, cross-entropy over all the data in one batch, model in eval mode,
C = 6 Gaussian classes (centres 3 N(0, I) apart, unit noise) so the top of the spectrum stands
out of the bulk:

* MLP 64-64-6 (tanh), 4,550 parameters, 512 samples of 64 features;
* MLP 64-256-128-6 (tanh), 50,310 parameters, the same 512 samples;
* CNN conv 3->8 (3x3, pad 1) -> tanh -> maxpool 2 -> conv 8->16 (3x3, pad 1) -> tanh -> maxpool 2
  -> linear 256->6, 2,934 parameters, 128 images of 3x16x16.

Rows per problem (same weights and data on both sides; PyHessian gets its own copy of the
model, since it writes ``.grad``):

* **one HVP**: calling a prepared ``hvp(model, loss, data)`` closure against
  ``pyhessian.utils.hessian_vector_product(h.gradsH, h.params, v)`` on a prepared
  ``pyhessian.hessian`` object: both have built the gradient graph once, outside the timing,
  and a product is one backward through it. Checked: the products agree to float32 rounding.
* **top-5 eigenvalues, 50 HVPs each**: ``hessian_spectrum(method="lanczos", k=50)`` (50
  products, 50 Ritz values; the five largest in magnitude are what PyHessian's ``top_n=5``
  returns) against ``hessian(...).eigenvalues(top_n=5, maxIter=10, tol=0)``: power iteration
  with deflation, 10 products per eigenvalue, 50 in all (``tol=0`` never stops early). Both
  are timed from the model: the graph is built inside the call (PyHessian's constructor). The
  methods differ, so the check is against PyHessian run to convergence (``maxIter=1000,
  tol=1e-7``, once, not timed): our five agree with it to 1e-3 (relative); the check also
  prints how far PyHessian's own 50-product answer is (it has not converged).
* **top-5 eigenvalues at PyHessian's default stop**: the same call of ours against
  ``eigenvalues(top_n=5)`` with PyHessian's defaults (``maxIter=100, tol=1e-3``), what a user
  of PyHessian runs; the check prints how many products that took and its error.
* **density, 4 probes x 80 steps**: ``spectral_density(n_probes=4, m=80)`` against
  ``hessian(...).density(iter=80, n_v=4)``: 320 products each. PyHessian's ``density`` calls
  ``torch.eig``, removed from torch; the peer runs with ``torch.eig`` answered by
  ``torch.linalg.eigh`` of its (symmetric tridiagonal, 80 x 80) matrix, in the same
  ``(n, 2)`` real/imaginary layout. The probes are random on both sides (different draws), so
  the check compares what does not depend on them: every probe's quadrature weights sum to 1,
  the extreme Ritz values (converged after 80 steps) agree to 1e-3 of the spectrum's extent,
  and the mean quadrature moments (each probe's ``sum w theta = v^T H v``, a Hutchinson
  estimate of tr(H)/P) agree within five standard errors of the difference of two 4-probe
  means, the spread of ``v^T H v`` measured on 64 more probes (with 4 probes the moments can
  only be compared that loosely; the extreme Ritz values are the sharp check).
"""

from __future__ import annotations

import contextlib
import copy
import math
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pyhessian
import torch
from gradhub_hessian_spectrum.curvature import hvp
from gradhub_hessian_spectrum.spectrum import hessian_spectrum, spectral_density
from kinds import Comparison
from torch import Tensor, nn

GROUP = "hessian"
PEER = "PyHessian 0.1"
CLASSES = 6
TOP = 5
LANCZOS_STEPS = 50
POWER_ITERATIONS = LANCZOS_STEPS // TOP
PROBES = 4
DENSITY_STEPS = 80
loss_fn = nn.functional.cross_entropy


def _classes(shape: tuple[int, ...], count: int, device: torch.device) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(CLASSES).repeat(count // CLASSES + 1)[:count]
    centres = 3 * torch.randn(CLASSES, *shape, generator=generator)
    inputs = centres[labels] + torch.randn(count, *shape, generator=generator)
    return inputs.to(device), labels.to(device)


def problems(device: torch.device) -> list[tuple[str, nn.Module, tuple[Tensor, Tensor]]]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        small = nn.Sequential(nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, CLASSES))
        large = nn.Sequential(nn.Linear(64, 256), nn.Tanh(), nn.Linear(256, 128), nn.Tanh(), nn.Linear(128, CLASSES))
        conv = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.Tanh(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.Tanh(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(256, CLASSES),
        )
    vectors = _classes((64,), 512, device)
    images = _classes((3, 16, 16), 128, device)
    found = []
    for label, model, data in (
        ("MLP 64-64-6", small, vectors),
        ("MLP 64-256-128-6", large, vectors),
        ("CNN 2 conv + linear", conv, images),
    ):
        size = sum(p.numel() for p in model.parameters())
        found.append((f"{label} ({size:,} params, {'x'.join(map(str, data[0].shape))})", model.to(device).eval(), data))
    return found


@contextlib.contextmanager
def _symmetric_eig() -> Iterator[None]:
    """``torch.eig(T, eigenvectors=True)`` for PyHessian's density, from ``torch.linalg.eigh`` (T is symmetric)."""

    def eig(matrix: Tensor, eigenvectors: bool = False) -> tuple[Tensor, Tensor]:
        values, vectors = torch.linalg.eigh(matrix)
        return torch.stack([values, torch.zeros_like(values)], dim=1), vectors

    removed = torch.eig
    torch.eig = eig
    try:
        yield
    finally:
        torch.eig = removed


def _pyhessian(model: nn.Module, data: tuple[Tensor, Tensor], cuda: bool) -> Any:
    """A fresh ``pyhessian.hessian`` (forward and backward with ``create_graph=True`` into ``.grad``)."""
    model.zero_grad(set_to_none=True)  # PyHessian accumulates into .grad: start each call from none
    return pyhessian.hessian(model, loss_fn, data=data, cuda=cuda)


def _largest_in_magnitude(values: Tensor, count: int) -> Tensor:
    return values[values.abs().argsort(descending=True)[:count]]


def _hvp_row(name: str, model: nn.Module, data: tuple[Tensor, Tensor], cuda: bool, sync: Callable) -> Comparison:
    theirs_model = copy.deepcopy(model)
    reference = _pyhessian(theirs_model, data, cuda)
    generator = torch.Generator().manual_seed(1)
    vector = torch.randn(sum(p.numel() for p in model.parameters()), generator=generator).to(data[0].device)
    pieces = [
        piece.view_as(p) for piece, p in zip(vector.split([p.numel() for p in reference.params]), reference.params)
    ]
    product = hvp(model, loss_fn, data)

    def check(ours: Tensor, theirs: tuple[Tensor, ...]) -> None:
        flat = torch.cat([h.reshape(-1) for h in theirs])
        torch.testing.assert_close(ours, flat, rtol=1e-4, atol=1e-5 * flat.abs().max().item())

    return Comparison(
        GROUP,
        f"one HVP, {name}",
        lambda: product(vector),
        lambda: pyhessian.utils.hessian_vector_product(reference.gradsH, reference.params, pieces),
        check,
        peer_name=f"{PEER} hessian_vector_product",
        repeats=20,
        sync=sync,
    )


_CONVERGED: dict[str, Tensor] = {}


def _converged_top(name: str, model: nn.Module, data: tuple[Tensor, Tensor], cuda: bool) -> Tensor:
    """PyHessian's power iteration run to convergence (not timed, once per problem): the top-5 reference."""
    if name not in _CONVERGED:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            values, _ = _pyhessian(copy.deepcopy(model), data, cuda).eigenvalues(maxIter=1000, tol=1e-7, top_n=TOP)
        _CONVERGED[name] = _largest_in_magnitude(torch.tensor(values, dtype=torch.float64), TOP)
    return _CONVERGED[name]


def _products_of(call: Callable[[], Any]) -> tuple[Any, int]:
    """``call()`` and how many Hessian-vector products PyHessian made in it."""
    module = sys.modules["pyhessian.hessian"]  # the module (the package exports the class under the same name)
    product, count = module.hessian_vector_product, [0]

    def counted(*args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        return product(*args, **kwargs)

    module.hessian_vector_product = counted
    try:
        return call(), count[0]
    finally:
        module.hessian_vector_product = product


def _top_row(
    name: str, model: nn.Module, data: tuple[Tensor, Tensor], cuda: bool, sync: Callable, *, default_stop: bool
) -> Comparison:
    theirs_model = copy.deepcopy(model)
    device = data[0].device
    # equal work: 10 power iterations per eigenvalue, never stopping early (tol=0); or PyHessian's own defaults
    settings = {} if default_stop else {"maxIter": POWER_ITERATIONS, "tol": 0.0}

    def ours() -> Tensor:
        generator = torch.Generator(device=device).manual_seed(0)
        return hessian_spectrum(model, loss_fn, data, method="lanczos", k=LANCZOS_STEPS, generator=generator)

    def peer() -> list[float]:
        return _pyhessian(theirs_model, data, cuda).eigenvalues(top_n=TOP, **settings)[0]

    def check(ritz: Tensor, theirs: list[float]) -> None:
        expected = _converged_top(name, model, data, cuda)
        found = _largest_in_magnitude(ritz.cpu(), TOP)
        error = ((found - expected).abs() / expected.abs()).max().item()
        if error > 1e-3:
            raise AssertionError(f"{name}: top-{TOP} {found.tolist()} vs PyHessian converged {expected.tolist()}")
        again, count = _products_of(peer)
        short = _largest_in_magnitude(torch.tensor(again, dtype=torch.float64), TOP)
        print(
            f"  check: Lanczos k={LANCZOS_STEPS} within {error:.1e} (relative) of PyHessian converged; PyHessian "
            f"{settings or 'defaults'} made {count} products and is within "
            f"{((short - expected).abs() / expected.abs()).max().item():.1e}"
        )

    work = (
        "PyHessian's default stop (maxIter=100, tol=1e-3)"
        if default_stop
        else f"{LANCZOS_STEPS} HVPs each: power iteration {POWER_ITERATIONS} x {TOP}"
    )
    return Comparison(
        GROUP,
        f"top-{TOP} eigenvalues, Lanczos k={LANCZOS_STEPS} vs {work}, {name}",
        ours,
        peer,
        check,
        peer_name=f"{PEER} eigenvalues",
        repeats=1 if default_stop else 3,
        sync=sync,
    )


def _quadratic_form_spread(model: nn.Module, data: tuple[Tensor, Tensor], probes: int = 64) -> float:
    """The standard deviation of ``v^T H v`` over unit Rademacher vectors ``v`` (``probes`` of them, not timed)."""
    product = hvp(model, loss_fn, data)
    generator = torch.Generator().manual_seed(2)
    size = sum(p.numel() for p in model.parameters())
    values = []
    for _ in range(probes):
        vector = (2 * torch.randint(0, 2, (size,), generator=generator) - 1).float().to(data[0].device) / size**0.5
        values.append(torch.dot(vector, product(vector)).item())
    return torch.tensor(values, dtype=torch.float64).std().item()


def _density_row(name: str, model: nn.Module, data: tuple[Tensor, Tensor], cuda: bool, sync: Callable) -> Comparison:
    theirs_model = copy.deepcopy(model)
    device = data[0].device

    def ours() -> Any:
        generator = torch.Generator(device=device).manual_seed(0)
        return spectral_density(model, loss_fn, data, n_probes=PROBES, m=DENSITY_STEPS, generator=generator)

    def peer() -> tuple[list[list[float]], list[list[float]]]:
        with _symmetric_eig():
            return _pyhessian(theirs_model, data, cuda).density(iter=DENSITY_STEPS, n_v=PROBES)

    def check(result: Any, theirs: tuple[list[list[float]], list[list[float]]]) -> None:
        nodes, weights = result.nodes.cpu(), result.weights.cpu()
        their_nodes = torch.tensor(theirs[0], dtype=torch.float64)
        their_weights = torch.tensor(theirs[1], dtype=torch.float64)
        torch.testing.assert_close(weights.sum(-1), torch.ones(PROBES, dtype=torch.float64), rtol=0, atol=1e-9)
        torch.testing.assert_close(their_weights.sum(-1), torch.ones(PROBES, dtype=torch.float64), rtol=0, atol=1e-4)
        extent = (nodes.max() - nodes.min()).item()
        for label, a, b in (
            ("largest", nodes.max(), their_nodes.max()),
            ("smallest", nodes.min(), their_nodes.min()),
        ):
            if abs(a - b) > 1e-3 * extent:
                raise AssertionError(f"{name}: {label} Ritz value {a.item():.6g} vs PyHessian {b.item():.6g}")
        # each probe's first moment is v^T H v for its unit Rademacher v: compare the two means within five
        # standard errors of a difference of two PROBES-sample means, the spread taken from 64 more probes
        ours_moment, their_moment = (nodes * weights).sum(-1), (their_nodes * their_weights).sum(-1)
        spread = _quadratic_form_spread(model, data)
        error = spread * math.sqrt(2 / PROBES)
        if abs(ours_moment.mean() - their_moment.mean()) > 5 * error:
            raise AssertionError(
                f"{name}: mean v^T H v {ours_moment.mean().item():.6g} vs PyHessian {their_moment.mean().item():.6g} "
                f"(standard error of the difference {error:.2g})"
            )

    return Comparison(
        GROUP,
        f"density ({PROBES} probes x {DENSITY_STEPS} Lanczos steps), {name}",
        ours,
        peer,
        check,
        peer_name=f"{PEER} density",
        repeats=1,
        sync=sync,
    )


def comparisons(args: Any) -> list[Comparison]:
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    # PyHessian's constructor calls loss.backward(create_graph=True) (it reads the gradient from .grad)
    warnings.filterwarnings("ignore", message=r"Using backward\(\) with create_graph=True", category=UserWarning)
    rows = []
    for name, model, data in problems(device):
        rows.append(_hvp_row(name, model, data, cuda, sync))
        rows.append(_top_row(name, model, data, cuda, sync, default_stop=False))
        rows.append(_top_row(name, model, data, cuda, sync, default_stop=True))
        rows.append(_density_row(name, model, data, cuda, sync))
    return rows
