"""R_lambda (Eq. 13-14): identity forward, exactly -lambda times the gradient backward, everywhere autograd goes."""

from __future__ import annotations

import pytest
import torch
from gradhub_dann.reversal import GradientReversal, grad_reverse

DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
LAMBDAS = (0.0, 0.5, 1.0, 3.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (7,), (3, 4), (2, 3, 4, 5)])
def test_forward_is_bitwise_identity(dtype: torch.dtype, shape: tuple[int, ...]) -> None:
    x = (torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 100).to(dtype)
    y = grad_reverse(x, lambd=0.7)
    assert y.dtype == x.dtype and y.shape == x.shape and y.device == x.device
    assert torch.equal(y, x)
    assert y is not x  # a new tensor (a view), so autograd can attach R_lambda's backward to it


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lambd", LAMBDAS)
@pytest.mark.parametrize("as_tensor", [False, True])
def test_backward_is_exactly_minus_lambda(dtype: torch.dtype, lambd: float, as_tensor: bool) -> None:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(5, 6, generator=generator, dtype=torch.float64).to(dtype).requires_grad_()
    w = torch.randn(5, 6, generator=generator, dtype=torch.float64).to(dtype)
    scale = torch.tensor(lambd, dtype=torch.float64) if as_tensor else lambd
    (gradient,) = torch.autograd.grad((w * grad_reverse(x, lambd=scale)).sum(), x)
    assert gradient.dtype == dtype
    assert torch.equal(gradient, -lambd * w)


def test_lambda_gets_no_gradient() -> None:
    x = torch.randn(4, requires_grad=True)
    lambd = torch.tensor(0.5, requires_grad=True)
    x_grad, lambd_grad = torch.autograd.grad(grad_reverse(x, lambd=lambd).square().sum(), (x, lambd), allow_unused=True)
    assert lambd_grad is None
    assert torch.equal(x_grad, -0.5 * 2 * x.detach())


def test_tensor_lambda_changed_before_backward_is_an_error() -> None:
    """A 0-dim lambda is saved for backward: changing it in place between forward and backward is caught."""
    lambd = torch.tensor(1.0)
    x = torch.ones(3, requires_grad=True)
    y = grad_reverse(x, lambd=lambd)
    lambd.fill_(2.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


@pytest.mark.parametrize("lambd", [0.25, 2.0])
def test_gradcheck_double_reversal_is_exact(lambd: float) -> None:
    """R_{1/lambda} o R_lambda has Jacobian (-1/lambda)(-lambda) I = I: gradcheck passes through tanh and a product."""

    def function(x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(grad_reverse(grad_reverse(x, lambd=lambd), lambd=1 / lambd)) * x

    x = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2), requires_grad=True)
    assert torch.autograd.gradcheck(function, (x,))
    assert torch.autograd.gradgradcheck(function, (x,))


def test_single_reversal_is_minus_lambda_times_true_gradient() -> None:
    """Through a nonlinearity the gradient is -lambda times the true one; gradcheck (the true one) must fail."""
    x = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3), requires_grad=True)
    (reversed_grad,) = torch.autograd.grad(torch.tanh(grad_reverse(x, lambd=0.5)).sum(), x)
    (true_grad,) = torch.autograd.grad(torch.tanh(x).sum(), x)
    torch.testing.assert_close(reversed_grad, -0.5 * true_grad, rtol=0, atol=1e-15)
    assert not torch.autograd.gradcheck(lambda v: torch.tanh(grad_reverse(v, lambd=0.5)), (x,), raise_exception=False)


def test_double_backward_sees_minus_lambda_again() -> None:
    """f = sum(R(x)^3): df/dx = -3 lambda x^2; its derivative goes through R again: +6 lambda^2 x."""
    lambd = 0.5
    x = torch.randn(6, dtype=torch.float64, generator=torch.Generator().manual_seed(4), requires_grad=True)
    (first,) = torch.autograd.grad(grad_reverse(x, lambd=lambd).pow(3).sum(), x, create_graph=True)
    torch.testing.assert_close(first, -3 * lambd * x.detach() ** 2)
    (second,) = torch.autograd.grad(first.sum(), x)
    torch.testing.assert_close(second, 6 * lambd**2 * x.detach())


@pytest.mark.parametrize("as_tensor", [False, True])
def test_torch_func_transforms(as_tensor: bool) -> None:
    lambd = torch.tensor(1.5, dtype=torch.float64) if as_tensor else 1.5
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(4, dtype=torch.float64, generator=generator)
    w = torch.randn(4, dtype=torch.float64, generator=generator)
    gradient = torch.func.grad(lambda v: (w * grad_reverse(v, lambd=lambd)).sum())(x)
    assert torch.equal(gradient, -1.5 * w)
    expected = -1.5 * torch.eye(4, dtype=torch.float64)
    assert torch.equal(torch.func.jacrev(lambda v: grad_reverse(v, lambd=lambd))(x), expected)
    assert torch.equal(torch.func.jacfwd(lambda v: grad_reverse(v, lambd=lambd))(x), expected)
    batch = torch.randn(3, 4, dtype=torch.float64, generator=generator)
    per_row = torch.func.vmap(torch.func.grad(lambda v: (w * grad_reverse(v, lambd=lambd)).sum()))(batch)
    assert torch.equal(per_row, (-1.5 * w).expand(3, 4))


def test_torch_compile() -> None:
    """Works under torch.compile; Dynamo cannot trace a Function with a custom jvp, so it graph-breaks there."""
    torch._dynamo.reset()
    compiled = torch.compile(lambda v, s: torch.sin(grad_reverse(v, lambd=s)), backend="aot_eager")
    x = torch.randn(5, requires_grad=True)
    compiled(x, 0.5).sum().backward()
    torch.testing.assert_close(x.grad, -0.5 * torch.cos(x.detach()))


def test_autocast_keeps_gradient_dtype() -> None:
    """Under CPU autocast the linear layer's output is bfloat16; the reversed gradient stays bfloat16."""
    layer = torch.nn.Linear(4, 3)
    x = torch.randn(2, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        hidden = layer(x)
        out = grad_reverse(hidden, lambd=0.5)
        loss = (out.float() * torch.arange(3.0)).sum()
    assert hidden.dtype == out.dtype == torch.bfloat16
    (gradient,) = torch.autograd.grad(loss, hidden)
    assert gradient.dtype == torch.bfloat16
    assert torch.equal(gradient, (-0.5 * torch.arange(3.0)).to(torch.bfloat16).expand(2, 3))


def test_module_lambda_is_mutable() -> None:
    layer = GradientReversal(lambd=0.0)
    x = torch.ones(3, requires_grad=True)
    layer(x).sum().backward()
    assert torch.equal(x.grad, torch.full((3,), -0.0))
    for value in (0.5, torch.tensor(2.0)):
        x.grad = None
        layer.lambd = value
        layer(x).sum().backward()
        assert torch.equal(x.grad, torch.full((3,), -float(value)))
    assert "lambd=" in repr(layer)
    assert list(layer.parameters()) == [] and layer.state_dict() == {}


def test_module_matches_function() -> None:
    x = torch.randn(3, 2, requires_grad=True)
    w = torch.randn(3, 2)
    (a,) = torch.autograd.grad((w * GradientReversal(lambd=0.3)(x)).sum(), x)
    (b,) = torch.autograd.grad((w * grad_reverse(x, lambd=0.3)).sum(), x)
    assert torch.equal(a, b)


def test_a_call_binds_no_signature(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside torch.func and torch.compile a call goes to autograd's C++ entry: torch's Function.apply binds
    forward's signature on every call for Functions with setup_context (~10 µs); ours must not. Gradients
    are unchanged."""
    import inspect

    from gradhub_dann import reversal

    x = torch.randn(5, requires_grad=True)
    reversal.grad_reverse(x, lambd=0.5)  # the first call fills the binding caches
    bound = []
    original = inspect.Signature.bind
    monkeypatch.setattr(inspect.Signature, "bind", lambda *a, **k: (bound.append(1), original(*a, **k))[1])
    monkeypatch.setattr(inspect, "signature", lambda *a, **k: (bound.append(1), pytest.fail("signature built")))
    y = reversal.grad_reverse(x, lambd=0.5)
    y.sum().backward()
    assert bound == []
    assert torch.equal(x.grad, torch.full((5,), -0.5))
