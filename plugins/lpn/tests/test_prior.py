"""The learned prior: inverting f (to tolerance), the formula for R, the prox identity, non-convergence."""

from __future__ import annotations

import pytest
import torch
from gradhub_lpn.networks import LPN, ConvLPN
from gradhub_lpn.prior import lpn_prior

from gradhub.progress import ProgressEvent


def random_lpn(in_dim: int = 3, alpha: float = 0.2, seed: int = 0, **options) -> LPN:
    """An LPN with every parameter ~ N(0, 0.5^2), W clipped to >= 0 (a convex psi that is far from linear)."""
    model = LPN(in_dim, hidden=options.pop("hidden", 10), layers=options.pop("layers", 2), beta=3.0, alpha=alpha)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(0.5 * torch.randn(parameter.shape, generator=generator))
    model.clip_weights()
    return model.double()


def test_inversion_reaches_tolerance() -> None:
    """invert(x) returns y with ||f(y) - x|| < 1e-4 for random x (here to 1e-9), for both networks."""
    model = random_lpn()
    x = 3 * torch.randn(64, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y = model.invert(x, tol=1e-9)
    with torch.no_grad():
        assert (model(y) - x).norm(dim=1).max().item() < 1e-9
    image = ConvLPN(hidden=2, img_size=8, head=4, alpha=0.1).double()
    image.init_weights(mean=-1.0, std=0.5)
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    result = lpn_prior(image, x, tol=1e-8, max_iter=2000)
    assert result.converged and result.solution.shape == x.shape
    with torch.no_grad():
        assert (image(result.solution) - x).flatten(1).norm(dim=1).max().item() < 1e-8


def test_prior_formula_closed_form() -> None:
    """psi = alpha y^2 (every other weight 0): f(y) = 2 alpha y is the prox of R(x) = (1/(4 alpha) - 1/2) x^2,
    and R(x) = <x, y*> - x^2/2 - psi(y*) gives exactly that (constant R(0) = 0)."""
    alpha = 0.3
    model = LPN(2, hidden=4, layers=1, alpha=alpha).double()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
    x = torch.randn(10, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    result = lpn_prior(model, x, tol=1e-12)
    assert result.converged
    torch.testing.assert_close(result.solution, x / (2 * alpha))
    torch.testing.assert_close(result.prior, (1 / (4 * alpha) - 0.5) * x.square().sum(1))
    torch.testing.assert_close(result.potential, alpha * (x / (2 * alpha)).square().sum(1))


def _grid_prox(values: torch.Tensor, grid: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """argmin_x 0.5 (x - x0)^2 + values(x) over the grid, for each x0 in points."""
    objective = 0.5 * (grid.unsqueeze(0) - points.unsqueeze(1)) ** 2 + values.unsqueeze(0)
    return grid[objective.argmin(dim=1)]


def test_prox_identity_on_a_grid() -> None:
    """f(x0) = argmin_x 0.5 (x - x0)^2 + R(x): the grid minimiser is within a grid step of f(x0) (1-D)."""
    model = random_lpn(in_dim=1, alpha=0.25, seed=4, hidden=16, layers=3)
    points = torch.linspace(-3, 3, 41, dtype=torch.float64)
    with torch.no_grad():
        prox = model(points.unsqueeze(1)).squeeze(1)
    grid = torch.linspace(prox.min().item() - 2, prox.max().item() + 2, 4001, dtype=torch.float64)
    spacing = (grid[1] - grid[0]).item()
    result = lpn_prior(model, grid.unsqueeze(1), tol=1e-10)
    assert result.converged
    assert (_grid_prox(result.prior, grid, points) - prox).abs().max().item() <= spacing + 1e-12
    # wrong variant: R without the -||x||^2 / 2 term is not the prior whose prox f is
    wrong = result.prior + 0.5 * grid.square()
    assert (_grid_prox(wrong, grid, points) - prox).abs().max().item() > 0.5


def test_batch_equals_single_samples() -> None:
    """Each sample has its own step sizes and stops on its own: a batch gives each sample's own answer."""
    model = random_lpn(seed=5)
    x = 2 * torch.randn(6, 3, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    batch = lpn_prior(model, x, tol=1e-11)
    for index in range(len(x)):
        alone = lpn_prior(model, x[index : index + 1], tol=1e-11)
        torch.testing.assert_close(batch.solution[index], alone.solution[0], rtol=0, atol=1e-9)
        torch.testing.assert_close(batch.prior[index], alone.prior[0], rtol=0, atol=1e-9)


def test_model_and_inputs_unchanged_and_progress() -> None:
    model = random_lpn(seed=7)
    state = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    x = torch.randn(4, 3, dtype=torch.float64)
    start = torch.ones(4, 3, dtype=torch.float64)
    kept = x.clone(), start.clone()
    events: list[ProgressEvent] = []
    result = lpn_prior(model, x, start, tol=1e-10, progress=events.append)
    assert result.converged and len(events) == result.iterations + 1 and events[-1].done
    assert events[0].metrics["residual"] == pytest.approx(result.residuals[1].item())
    assert torch.equal(x, kept[0]) and torch.equal(start, kept[1])
    assert all(torch.equal(tensor, state[name]) for name, tensor in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters()) and not x.requires_grad
    assert result.residuals.shape == (result.iterations + 1,) and result.residuals[-1] <= 1e-10


def test_outside_the_range_is_not_converged() -> None:
    """alpha = 0: f is bounded, x = 100 has no preimage; the residual stalls, converged=False, and
    LPN.invert / LPN.prior warn instead of returning silently."""
    model = random_lpn(alpha=0.0, seed=8)
    x = torch.full((2, 3), 100.0, dtype=torch.float64)
    result = lpn_prior(model, x, max_iter=30)
    assert not result.converged and result.iterations == 30
    assert torch.isfinite(result.solution).all() and result.residuals[-1] > 1
    with pytest.warns(RuntimeWarning, match="lpn_prior: the inversion did not reach tol"):
        model.prior(x, max_iter=5)


def test_official_style_module() -> None:
    """Any module with scalar(y) -> (B, 1) is accepted (the official networks), through its own scalar."""

    class Quadratic(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = torch.nn.Parameter(torch.tensor(2.0, dtype=torch.float64))

        def scalar(self, y: torch.Tensor) -> torch.Tensor:
            return 0.5 * self.scale * y.square().sum(1, keepdim=True)

    x = torch.randn(5, 2, dtype=torch.float64)
    result = lpn_prior(Quadratic(), x, tol=1e-12)
    torch.testing.assert_close(result.solution, x / 2)
    # f(y) = 2y is the prox of R(x) = -x^2 / 4 (R(x) = <x, x/2> - x^2/2 - (x/2)^2)
    torch.testing.assert_close(result.prior, -0.25 * x.square().sum(1))
