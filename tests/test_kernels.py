"""Multi-tensor helpers: grouping, batching, row blocks, write-back."""

from __future__ import annotations

import torch

from gradhub.kernels import as_rows, group_tensors, row_blocks, row_shape, same_shape_batches, write_back


def test_group_tensors_by_device_dtype_and_key() -> None:
    a, b, c = torch.zeros(2), torch.zeros(3, dtype=torch.float64), torch.zeros(4)
    groups = group_tensors([[a, b, c], [a + 1, b + 1, c + 1]], extra_keys=[1, 1, 2])
    assert [(key[1], key[2], [t.shape[0] for t in lists[0]]) for key, lists in groups.items()] == [
        (torch.float32, 1, [2]),
        (torch.float64, 1, [3]),
        (torch.float32, 2, [4]),
    ]
    assert torch.equal(groups[(a.device, torch.float32, 1)][1][0], a + 1)


def test_same_shape_batches_cap_the_batch_size() -> None:
    tensors = [torch.zeros(10, 10)] * 5 + [torch.zeros(1000)] + [torch.zeros(3)] * 2
    assert same_shape_batches(tensors, max_batch_numel=250) == [[5], [0, 1], [2, 3], [4], [6, 7]]


def test_as_rows_views_or_copies() -> None:
    single = torch.arange(24.0).view(2, 3, 4)
    rows, copied = as_rows([single])
    assert rows.shape == (1, 2, 12) and not copied and rows.data_ptr() == single.data_ptr()
    channels_last = torch.arange(24.0).view(1, 2, 3, 4).to(memory_format=torch.channels_last)
    rows, copied = as_rows([channels_last])
    assert copied and torch.equal(rows[0].view(1, 2, 3, 4), channels_last)
    scalar_rows, _ = as_rows([torch.tensor(2.0)])
    assert scalar_rows.shape == (1, 1, 1) and row_shape(torch.tensor(2.0)) == (1, 1)


def test_write_back_reaches_the_originals() -> None:
    tensors = [torch.zeros(2, 3), torch.ones(2, 3).to(memory_format=torch.contiguous_format)]
    rows, copied = as_rows(tensors)
    assert copied
    rows.add_(5)
    write_back(tensors, rows)
    assert torch.equal(tensors[0], torch.full((2, 3), 5.0)) and torch.equal(tensors[1], torch.full((2, 3), 6.0))


def test_row_blocks_cover_every_row_once() -> None:
    blocks = row_blocks(rows=10, row_length=7, max_block_numel=20)
    assert [(block.start, block.stop) for block in blocks] == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10)]
    assert [(b.start, b.stop) for b in row_blocks(3, 100, 10)] == [(0, 1), (1, 2), (2, 3)]


def test_foreach_copy_copies_plain_tensors_and_subclasses() -> None:
    import torch

    from gradhub.kernels import foreach_copy_

    targets = [torch.zeros(3), torch.zeros(2, 2)]
    sources = [torch.arange(3.0), torch.ones(2, 2)]
    foreach_copy_(targets, sources)
    assert all(torch.equal(t, s) for t, s in zip(targets, sources))

    class Marked(torch.Tensor):
        """A tensor subclass, as FSDP2's DTensor is: copied one by one."""

    marked = [torch.zeros(3).as_subclass(Marked)]
    foreach_copy_(marked, [torch.arange(3.0)])
    assert type(marked[0]) is Marked and torch.equal(marked[0].as_subclass(torch.Tensor), torch.arange(3.0))


def test_cache_blocks_cover_every_element_once_and_write_through() -> None:
    import torch

    from gradhub.kernels import cache_blocks

    shapes = [(3, 4), (50,), (7, 30), (2, 2), (1000,), (5,)]
    tensors = [torch.zeros(shape) for shape in shapes]
    twins = [torch.zeros(shape) for shape in shapes]
    blocks = list(cache_blocks([tensors, twins], max_block_numel=64))
    for block, twin_block in blocks:
        assert sum(t.numel() for t in block) <= 64 or len(block) == 1
        assert [t.shape for t in block] == [t.shape for t in twin_block]
        torch._foreach_add_(block, 1.0)
    assert all(bool((t == 1).all()) for t in tensors)  # every element exactly once, through the views
    assert all(bool((t == 0).all()) for t in twins)
    large = [b for b in blocks if b[0][0].numel() == 64 and b[0][0].dim() == 1]
    assert len(large) >= 15  # the 1000-element tensor was cut into flat 64-element slices
    noncontiguous = torch.zeros(100, 100).t()
    (only,) = list(cache_blocks([[noncontiguous]], max_block_numel=64))
    assert only[0][0] is noncontiguous  # not sliced: yielded whole


def test_cache_blocks_cut_parameters_but_not_tensor_subclasses() -> None:
    """An optimizer's lists hold ``nn.Parameter``s: a large one is cut like a plain tensor."""
    import torch

    from gradhub.kernels import cache_blocks

    parameter = torch.nn.Parameter(torch.zeros(1000))
    blocks = list(cache_blocks([[parameter], [torch.zeros(1000)]], max_block_numel=64))
    assert len(blocks) == 16
    with torch.no_grad():  # as in an optimizer step
        for block_params, _ in blocks:
            torch._foreach_add_(block_params, 1.0)
    assert bool((parameter == 1).all())

    class Marked(torch.Tensor):
        """A tensor subclass, as FSDP2's DTensor is: never cut into views."""

    marked = torch.zeros(1000).as_subclass(Marked)
    (only,) = list(cache_blocks([[marked]], max_block_numel=64))
    assert only[0][0] is marked


def test_global_norm_equals_the_norm_of_the_concatenation() -> None:
    from gradhub.kernels import global_norm

    generator = torch.Generator().manual_seed(0)
    tensors = [
        torch.randn(3, 4, generator=generator),
        torch.randn(5, generator=generator, dtype=torch.float64),
        torch.randn(7, generator=generator).bfloat16(),
    ]
    flat = torch.cat([t.double().flatten() for t in tensors])
    for order in (1.0, 2.0, float("inf")):
        norm = global_norm(tensors, order)
        assert norm.dtype == torch.float64 and norm.dim() == 0
        torch.testing.assert_close(norm, torch.linalg.vector_norm(flat, order), rtol=1e-6, atol=0)
    assert global_norm(tensors[:1] + tensors[2:]).dtype == torch.float32  # no float64 input: float32


def test_adam_blocks_give_torch_adams_step() -> None:
    """adam_moments_ + adam_step_scalars: 5 steps of torch.optim.Adam (float64, eps after the correction)."""
    from gradhub.kernels import adam_moments_, adam_step_scalars

    generator = torch.Generator().manual_seed(1)
    start = torch.randn(4, 3, generator=generator, dtype=torch.float64)
    grads = [torch.randn(4, 3, generator=generator, dtype=torch.float64) for _ in range(5)]
    reference = torch.nn.Parameter(start.clone())
    adam = torch.optim.Adam([reference], lr=1e-2, betas=(0.8, 0.9), eps=1e-3, foreach=False)
    weight, exp_avg, exp_avg_sq = start.clone(), torch.zeros_like(start), torch.zeros_like(start)
    for step, grad in enumerate(grads, start=1):
        reference.grad = grad
        adam.step()
        adam_moments_([exp_avg], [exp_avg_sq], [grad], 0.8, 0.9)
        step_size, scaled_eps = adam_step_scalars(1e-2, 0.8, 0.9, step, 1e-3)
        weight -= step_size * exp_avg / (exp_avg_sq.sqrt() + scaled_eps)
    torch.testing.assert_close(weight, reference.detach(), rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(exp_avg, adam.state[reference]["exp_avg"], rtol=1e-13, atol=1e-15)


def test_foreach_scalar_gives_the_same_bits_as_a_number() -> None:
    """A 0-d tensor (CPU, float32/float64) where foreach ops would wrap a number per tensor; never other results."""
    import torch

    from gradhub.kernels import foreach_add_scalar_, foreach_scalar

    generator = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.float64):
        tensors = [torch.randn(7, 3, generator=generator, dtype=dtype) for _ in range(5)]
        scalar = foreach_scalar(0.999, tensors[0])
        assert isinstance(scalar, torch.Tensor) and scalar.dtype == dtype and scalar.dim() == 0
        with_number, with_tensor = [t.clone() for t in tensors], [t.clone() for t in tensors]
        torch._foreach_mul_(with_number, 0.999)
        torch._foreach_mul_(with_tensor, scalar)
        torch._foreach_add_(with_number, 1e-8)
        foreach_add_scalar_(with_tensor, 1e-8)
        assert all(torch.equal(a, b) for a, b in zip(with_number, with_tensor))
    # bfloat16: a 0-d bfloat16 tensor would round 0.999 to 1.0 first; the number is kept.
    assert foreach_scalar(0.999, torch.zeros(2, dtype=torch.bfloat16)) == 0.999


def test_group_tensors_one_group_and_mixed_groups_keep_order() -> None:
    import torch

    from gradhub.kernels import group_tensors

    same = [torch.zeros(2), torch.ones(3)]
    (key, lists), *rest = group_tensors([same, same], extra_keys=[1, 1]).items()
    assert not rest and key == (torch.device("cpu"), torch.float32, 1)
    assert lists[0] is not same and [t is s for t, s in zip(lists[0], same)] == [True, True]
    mixed = [torch.zeros(1), torch.zeros(1, dtype=torch.float64), torch.ones(1), torch.ones(1)]
    groups = group_tensors([mixed], extra_keys=[1, 1, 1, 2])
    assert [len(lists[0]) for lists in groups.values()] == [2, 1, 1]
    assert groups[(torch.device("cpu"), torch.float32, 1)][0][1] is mixed[2]


# --- direct_apply: a custom autograd Function without Function.apply's per-call binding -------------


class _Scale(torch.autograd.Function):
    """y = c x; backward and jvp multiply by c (setup_context style, as torch.func needs)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor, c: float) -> torch.Tensor:
        return x * c

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.c = inputs[1]

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad * ctx.c, None

    @staticmethod
    def jvp(ctx, tangent: torch.Tensor, _: object) -> torch.Tensor:
        return tangent * ctx.c


def test_direct_apply_matches_function_apply_in_every_mode() -> None:
    from gradhub.kernels import direct_apply

    scale = direct_apply(_Scale)
    x = torch.randn(5, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(scale(x, 3.0).sum(), x)
    (reference,) = torch.autograd.grad(_Scale.apply(x, 3.0).sum(), x)
    assert torch.equal(grad, reference) and torch.equal(grad, torch.full_like(x, 3.0))
    # torch.func transforms go through Function.apply (vmap rule, forward-mode jvp, jacrev)
    batched = torch.func.vmap(lambda row: scale(row, 2.0))(torch.ones(3, 4))
    assert torch.equal(batched, torch.full((3, 4), 2.0))
    jacobian = torch.func.jacrev(lambda v: scale(v, 2.0))(torch.ones(3))
    assert torch.equal(jacobian, 2.0 * torch.eye(3))
    _, tangent = torch.func.jvp(lambda v: scale(v, -1.5), (torch.ones(3),), (torch.ones(3),))
    assert torch.equal(tangent, torch.full((3,), -1.5))
    assert scale.__name__ == "_Scale.direct_apply"
