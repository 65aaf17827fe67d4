"""The DCDM training loss (paper §3.3, Eq. 6): the residual after one A-norm line search along f(b).

Paper: "A Deep Conjugate Direction Method for Iteratively Solving Linear Systems",
Ayano Kaneda, Osman Akar, Jingyu Chen, Victoria Kala, David Hyde, Joseph Teran, ICML 2023,
arXiv:2205.10763. Official code: https://github.com/ayano721/2023_DCDM
(``src/train.py``, ``custom_loss_function_cnn_1d_fast``).

    loss(f, b) = || b - (f^T b / f^T A f) A f ||^2

The factor ``f^T b / f^T A f`` is the exact line-search step, so the loss is the squared
residual of one DCDM step from ``x_0 = 0`` along ``f`` and is invariant to ``f -> c f``
(c != 0): the network only has to get A^-1 b up to a constant. It is 0 exactly when
``f`` is parallel to ``A^-1 b``. The official reduction is the batch mean.

Argument order: gradhub's losses take the prediction first (``inputs[0]`` is what is
differentiated), so this is ``dcdm_loss(f_b, b, A)``, not the official Keras order ``(y_true=b, y_pred=f_b)``.
``f = 0`` has no defined step (0/0): the official code returns NaN, the loss frame raises (``check_finite=False``: NaN).
"""

from __future__ import annotations

from torch import Tensor

from gradhub.errors import UnsupportedInputError
from gradhub.kinds.inputs import require_matching_shapes, require_same_device, require_tensor
from gradhub.kinds.loss import loss, reduce
from gradhub_dcdm import DCDM_LOSS
from gradhub_dcdm.operators import MatrixLike, Operator, check_matrix, describe


@loss(DCDM_LOSS)
def dcdm_loss(f_b: Tensor, b: Tensor, A: MatrixLike, *, reduction: str) -> Tensor:
    """``||b - (f^T b / f^T A f) A f||^2`` per sample of a batch, reduced over the batch.

    Args:
        f_b: the model's output, (B, *dims) (e.g. (B, n) or (B, 1, N, N)); differentiable.
        b: the right-hand sides, same shape.
        A: (n, n) dense or ``torch.sparse_csr`` SPD matrix, or a matvec callable
            (called with an (n, B) matrix of columns), n = prod(dims).
        reduction: ``"mean"`` (official), ``"sum"`` or ``"none"`` (shape (B,)).
    """
    method = DCDM_LOSS.name
    require_tensor(method, "f_b", f_b, min_dim=2)  # a batch: (B, n) or (B, 1, *grid)
    require_tensor(method, "b", b, min_dim=2)
    require_matching_shapes(method, f_b=f_b, b=b)
    if b.shape[0] == 0 or b[0].numel() == 0:
        raise UnsupportedInputError(
            method,
            "b shape",
            tuple(b.shape),
            "f_b and b must hold a batch of at least one sample (B >= 1), each with at least one entry",
        )
    require_same_device(method, f_b=f_b, b=b, **({"A": A} if isinstance(A, Tensor) else {}))
    size = check_matrix(method, A)
    batch = b.shape[0]
    n = b[0].numel()
    if size is not None and size != n:
        raise UnsupportedInputError(
            method, "A", describe(A), f"A must be ({n}, {n}) for samples of shape {tuple(b.shape[1:])}"
        )
    if isinstance(A, Tensor) and A.dtype != f_b.dtype:
        A = A.to(f_b.dtype)
    operator = Operator(method, A, n, f_b.dtype, unbatched=False)
    f = f_b.reshape(batch, n)
    rhs = b.reshape(batch, n).to(f.dtype)
    image = operator(f)
    step = (f * rhs).sum(-1) / (f * image).sum(-1)
    values = (rhs - step.unsqueeze(-1) * image).square().sum(-1)
    return reduce(values, reduction, method)
