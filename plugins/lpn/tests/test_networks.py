"""The LPN potentials: convexity (and a non-convex wrong variant), f = grad psi, gradients, alpha, layout."""

from __future__ import annotations

import pytest
import torch
from gradhub_lpn.networks import LPN, ConvLPN, potential_and_gradient

from gradhub.errors import UnsupportedInputError

torch.set_default_dtype(torch.float32)


def randomised(model: torch.nn.Module, seed: int, clip: bool = True) -> torch.nn.Module:
    """Every parameter ~ N(0, 0.7^2) (W's with both signs), then W clipped to >= 0 when ``clip``."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(0.7 * torch.randn(parameter.shape, generator=generator, dtype=torch.float64))
    if clip:
        model.clip_weights()
    return model


def fc(seed: int = 0, clip: bool = True, **overrides) -> LPN:
    options = {"hidden": 12, "layers": 3, "beta": 3.0, **overrides}
    return randomised(LPN(3, **options).double(), seed, clip)


def conv(seed: int = 0, clip: bool = True, **overrides) -> ConvLPN:
    options = {"hidden": 3, "img_size": 8, "head": 5, "beta": 3.0, **overrides}
    return randomised(ConvLPN(**options).double(), seed, clip)


def _pairs(shape: tuple[int, ...], count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    u = 2 * torch.randn((count, *shape), generator=generator, dtype=torch.float64)
    v = 2 * torch.randn((count, *shape), generator=generator, dtype=torch.float64)
    t = torch.rand(count, generator=generator, dtype=torch.float64)
    return u, v, t


def jensen_gaps(model: torch.nn.Module, shape: tuple[int, ...], count: int = 1000, seed: int = 1) -> torch.Tensor:
    """psi(t u + (1-t) v) - t psi(u) - (1-t) psi(v) for random pairs: <= 0 for a convex psi."""
    u, v, t = _pairs(shape, count, seed)
    w = t.view(-1, *[1] * len(shape))
    with torch.no_grad():
        mixed = model.scalar(w * u + (1 - w) * v).squeeze(1)
        return mixed - t * model.scalar(u).squeeze(1) - (1 - t) * model.scalar(v).squeeze(1)


def monotonicity(model: torch.nn.Module, shape: tuple[int, ...], count: int = 1000, seed: int = 2) -> torch.Tensor:
    """<f(u) - f(v), u - v> for random pairs: >= 0 for the gradient of a convex function."""
    u, v, _ = _pairs(shape, count, seed)
    with torch.no_grad():
        return ((model(u) - model(v)) * (u - v)).reshape(count, -1).sum(1)


@pytest.mark.parametrize("build,shape", [(fc, (3,)), (conv, (1, 8, 8))], ids=["lpn", "lpn_conv"])
def test_convex_after_clipping(build, shape) -> None:
    model = build()
    assert model.convexity_violation() == 0.0
    assert jensen_gaps(model, shape).max().item() <= 1e-6
    assert monotonicity(model, shape).min().item() >= -1e-9


@pytest.mark.parametrize("build,shape", [(fc, (3,)), (conv, (1, 8, 8))], ids=["lpn", "lpn_conv"])
def test_negative_weights_break_convexity(build, shape) -> None:
    """Wrong variant: the same networks with W < 0 allowed fail both criteria above."""
    model = build(clip=False)
    assert model.convexity_violation() > 0.1
    assert jensen_gaps(model, shape).max().item() > 1e-3
    assert monotonicity(model, shape).min().item() < -1e-3


def test_hessian_is_positive_semidefinite() -> None:
    model, broken = fc(seed=3), fc(seed=3, clip=False)
    points = torch.randn(20, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)

    def lowest_eigenvalue(network: LPN) -> float:
        hessians = torch.stack(
            [torch.autograd.functional.hessian(lambda y: network.scalar(y.unsqueeze(0)).sum(), p) for p in points]
        )
        return torch.linalg.eigvalsh(hessians).min().item()

    assert lowest_eigenvalue(model) >= -1e-10
    assert lowest_eigenvalue(broken) < -1e-3


def test_clip_weights_is_the_official_projection() -> None:
    """clip_weights clamps exactly the lin[1:] weights at 0; the passthroughs and H_0 keep their signs."""
    model = fc(clip=False)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    model.clip_weights()
    for name, parameter in model.named_parameters():
        if name.startswith("lin.") and not name.startswith("lin.0."):
            assert torch.equal(parameter, before[name].clamp(min=0)), name
        else:
            assert torch.equal(parameter, before[name]), name
    assert (before["res.0.weight"] < 0).any() and (before["lin.0.weight"] < 0).any()


def test_official_initialisation() -> None:
    """The constructor draws W = exp(N(-10, 0.1^2)): positive, ~4.5e-5 (official init_weights(-10, 0.1))."""
    torch.manual_seed(0)
    model = LPN(4, hidden=30, layers=2)
    constrained = torch.cat([layer.weight.flatten() for layer in model.lin[1:]])
    assert (constrained > 0).all()
    assert abs(constrained.log().mean().item() + 10) < 0.05
    assert abs(constrained.log().std().item() - 0.1) < 0.02
    model.init_weights(mean=-1.0, std=0.5)
    assert abs(torch.cat([layer.weight.flatten() for layer in model.lin[1:]]).log().mean().item() + 1) < 0.1


@pytest.mark.parametrize("build,shape", [(fc, (3,)), (conv, (1, 8, 8))], ids=["lpn", "lpn_conv"])
def test_forward_is_the_gradient_of_scalar(build, shape) -> None:
    """f(y) against central differences of psi (float64, step 1e-6): agreement to 1e-6."""
    model = build(seed=5)
    y = torch.randn((2, *shape), generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    with torch.no_grad():
        analytic = model(y)
        flat = y.reshape(2, -1)
        numeric = torch.empty_like(flat)
        for index in range(flat.shape[1]):
            step = torch.zeros_like(flat)
            step[:, index] = 1e-6
            plus = model.scalar((flat + step).reshape(y.shape)).squeeze(1)
            minus = model.scalar((flat - step).reshape(y.shape)).squeeze(1)
            numeric[:, index] = (plus - minus) / 2e-6
    torch.testing.assert_close(analytic.reshape(2, -1), numeric, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "build,shape",
    [(lambda **k: fc(hidden=4, layers=2, **k), (3,)), (lambda **k: conv(img_size=4, hidden=2, head=2, **k), (1, 4, 4))],
    ids=["lpn", "lpn_conv"],
)
def test_gradcheck_and_gradgradcheck(build, shape) -> None:
    """f(y) and its derivatives w.r.t. y and every parameter are exact (float64); the double backward (the
    Hessian-vector products a loss on f(y) needs twice over) w.r.t. y and the last layer's weights too."""
    model = build(seed=7, alpha=0.1)
    names = [name for name, _ in model.named_parameters()]
    y = torch.randn((2, *shape), generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    parameters = [p.detach().clone().requires_grad_() for p in model.parameters()]

    def prox(point: torch.Tensor, *values: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(model, dict(zip(names, values)), (point,))

    assert torch.autograd.gradcheck(prox, (y.requires_grad_(), *parameters), eps=1e-6, atol=1e-6, rtol=1e-4)

    head = names.index(f"lin.{len(model.lin) - 1}.weight")

    def prox_of_head(point: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        values = [p.detach() for p in parameters]
        values[head] = weight
        return prox(point, *values)

    assert torch.autograd.gradgradcheck(prox_of_head, (y, parameters[head]), eps=1e-6, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("build,shape", [(fc, (3,)), (conv, (1, 8, 8))], ids=["lpn", "lpn_conv"])
def test_alpha_term_is_alpha_squared_norm(build, shape) -> None:
    """All other weights zero: psi = alpha ||y||^2, f(y) = 2 alpha y exactly (the official convention)."""
    model = build(alpha=0.3)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
    y = torch.randn((4, *shape), generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(model(y), 2 * 0.3 * y)
        torch.testing.assert_close(model.scalar(y).squeeze(1), 0.3 * y.reshape(4, -1).square().sum(1))


def test_zero_hidden_weights() -> None:
    """With the hidden W_k = 0, psi = w^T s(H_L y + b_L) + h^T y + c (only the last passthrough feeds w):
    still convex, f monotone. With every W = 0 (w too), psi is affine and f the constant h."""
    model = fc(seed=10)
    with torch.no_grad():
        for layer in model.lin[1:-1]:
            layer.weight.zero_()
    y = torch.randn(500, 3, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    last, head = model.res[-2], model.lin[-1]
    expected = (torch.nn.functional.softplus(last(y), beta=model.beta) @ head.weight.T + model.res[-1](y)).squeeze(1)
    with torch.no_grad():
        torch.testing.assert_close(model.scalar(y).squeeze(1), expected)
    assert monotonicity(model, (3,)).min().item() >= -1e-9
    with torch.no_grad():
        head.weight.zero_()
        assert torch.allclose(model(y), model.res[-1].weight.expand(500, 3))


def test_official_parameter_layout() -> None:
    """The names and shapes of the official modules (lin / res), so official state dicts load."""
    model = LPN(1, hidden=50, layers=4)
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    expected = {"lin.0.weight": (50, 1), "lin.5.weight": (1, 50), "res.4.weight": (1, 1), "res.4.bias": (1,)}
    expected |= {f"lin.{k}.weight": (50, 50) for k in range(1, 5)}
    expected |= {f"res.{k}.weight": (50, 1) for k in range(4)} | {f"res.{k}.bias": (50,) for k in range(4)}
    assert shapes == expected
    image = ConvLPN(hidden=64)
    shapes = {name: tuple(p.shape) for name, p in image.named_parameters()}
    assert shapes["lin.4.weight"] == (64, 64 * 7 * 7) and shapes["lin.5.weight"] == (1, 64)
    assert shapes["res.3.weight"] == (64, 49) and "lin.0.bias" not in shapes and "lin.4.bias" not in shapes
    # lin: 3x3 convs 1->64 and 3x 64->64, dense 64*7*7->64, 64->1; res: 3x 3x3 convs 1->64 (+bias), dense 49->64
    assert sum(p.numel() for p in image.parameters()) == 576 + 3 * 36_864 + 200_704 + 64 + 3 * 640 + 3_200


def test_conv_passthroughs_are_bilinear_resizes() -> None:
    """The image LPN with its stride-2 passthroughs sees x bilinearly resized (28 -> 14 -> 7 for MNIST)."""
    model = conv(seed=12, img_size=12)
    y = torch.randn(2, 1, 12, 12, generator=torch.Generator().manual_seed(13), dtype=torch.float64)
    z = torch.nn.functional.softplus(model.lin[0](y), beta=model.beta)
    half = torch.nn.functional.interpolate(y, size=(6, 6), mode="bilinear")
    quarter = torch.nn.functional.interpolate(y, size=(3, 3), mode="bilinear")
    for weight, passthrough, source in zip(model.lin[1:4], model.res[:3], (y, half, half)):
        z = torch.nn.functional.softplus(weight(z) + passthrough(source), beta=model.beta)
    z = torch.nn.functional.softplus(model.lin[4](z.flatten(1)) + model.res[3](quarter.flatten(1)), beta=model.beta)
    with torch.no_grad():
        torch.testing.assert_close(model.scalar(y), model.lin[5](z))
    # the factor-2 bilinear resize is the 2x2 average, as the official code relies on
    torch.testing.assert_close(half, torch.nn.functional.avg_pool2d(y, 2))


def test_gradient_modes() -> None:
    """Training: the prox keeps its graph (parameters get gradients through the double backward).
    no_grad: the caller's tensor is left alone and the output carries no graph. inference_mode: an error."""
    model = fc()
    y = torch.randn(5, 3, dtype=torch.float64)
    model(y).square().sum().backward()
    for name, parameter in model.named_parameters():
        if name == f"res.{model.layers}.bias":  # psi's constant c: f = grad psi does not depend on it
            assert parameter.grad is None
        else:
            assert (
                parameter.grad is not None and torch.isfinite(parameter.grad).all() and parameter.grad.abs().sum() > 0
            )
    assert not y.requires_grad
    with torch.no_grad():
        out = model(y)
    assert not out.requires_grad and not y.requires_grad
    psi, gradient = potential_and_gradient(model, y, create_graph=False)
    assert psi.shape == (5,) and torch.equal(gradient, out)
    with torch.inference_mode(), pytest.raises(UnsupportedInputError, match=r"lpn: .*no_grad"):
        model(torch.randn(2, 3, dtype=torch.float64))


def test_any_shape_with_in_dim_entries() -> None:
    model = fc()
    y = torch.randn(4, 3, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(model(y.reshape(4, 1, 3)), model(y).reshape(4, 1, 3))
