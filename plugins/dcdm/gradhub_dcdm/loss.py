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
differentiated), so this is ``dcdm_loss(f_b, b, A)``, not the brief's ``(b, f_b, A)``.
``f = 0`` has no defined step (0/0) and gives NaN, as in the official code.
"""

from __future__ import annotations

from torch import Tensor

from gradhub.errors import UnsupportedInputError
from gradhub.hyperparameters import validated
from gradhub.kinds.loss import reduce
from gradhub_dcdm import DCDMLossHyperparameters
from gradhub_dcdm.operators import MatrixLike, Operator, check_matrix, describe

METHOD = "dcdm_loss"


@validated(METHOD, DCDMLossHyperparameters)
def dcdm_loss(f_b: Tensor, b: Tensor, A: MatrixLike, reduction: str = "mean") -> Tensor:
    """``||b - (f^T b / f^T A f) A f||^2`` per sample of a batch, reduced over the batch.

    Args:
        f_b: the model's output, (B, *dims) (e.g. (B, n) or (B, 1, N, N)); differentiable.
        b: the right-hand sides, same shape.
        A: (n, n) dense or ``torch.sparse_csr`` SPD matrix, or a matvec callable
            (called with an (n, B) matrix of columns), n = prod(dims).
        reduction: ``"mean"`` (official), ``"sum"`` or ``"none"`` (shape (B,)).
    """
    for name, value in (("f_b", f_b), ("b", b)):
        if not isinstance(value, Tensor) or not value.dtype.is_floating_point or value.dim() < 2:
            raise UnsupportedInputError(
                METHOD, name, describe(value), f"{name} must be a floating (B, n) or (B, 1, *grid) batch"
            )
    if f_b.shape != b.shape:
        raise UnsupportedInputError(METHOD, "f_b", describe(f_b), f"f_b must have b's shape {tuple(b.shape)}")
    if f_b.device != b.device or (isinstance(A, Tensor) and A.device != b.device):
        raise UnsupportedInputError(
            METHOD, "device", f"f_b on {f_b.device}, b on {b.device}", "f_b, b and A must be on one device"
        )
    size = check_matrix(METHOD, A)
    batch = b.shape[0]
    n = b[0].numel()
    if size is not None and size != n:
        raise UnsupportedInputError(
            METHOD, "A", describe(A), f"A must be ({n}, {n}) for samples of shape {tuple(b.shape[1:])}"
        )
    if isinstance(A, Tensor) and A.dtype != f_b.dtype:
        A = A.to(f_b.dtype)
    operator = Operator(METHOD, A, n, f_b.dtype, unbatched=False)
    f = f_b.reshape(batch, n)
    rhs = b.reshape(batch, n).to(f.dtype)
    image = operator(f)
    step = (f * rhs).sum(-1) / (f * image).sum(-1)
    values = (rhs - step.unsqueeze(-1) * image).square().sum(-1)
    return reduce(values, reduction, METHOD)
