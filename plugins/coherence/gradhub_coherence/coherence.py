"""The coherence of per-example gradients, alpha, and the m-coherence m * alpha = alpha / alpha_perp.

Paper: Chatterjee & Zielinski, "On the Generalization Mystery in Deep Learning", 2022,
arXiv 2203.10036, Sec. 5 (the coherence metric). No official code exists.

    alpha = || (1/m) sum_i g_i ||^2 / ( (1/m) sum_i ||g_i||^2 )  =  E_{i,j}[g_i . g_j] / E_i[g_i . g_i]

(expectation over i, j including i = j), in [0, 1]: 1 iff all g_i are equal; for m
mutually orthogonal gradients of equal norm it is alpha_perp = 1/m. The m-coherence
``m * alpha = alpha / alpha_perp`` reads as "how many examples a small step on one
example helps, on average": about 1 when examples are memorised one by one, m when all
agree. It is computed without the m x d matrix G: chunks of examples accumulate
``s = sum_i g_i`` and ``q = sum_i ||g_i||^2`` in float64, then ``alpha = ||s||^2 / (m q)``.

Readings chosen (Sec. 5 leaves them open): the model is measured in eval mode
(BatchNorm on running statistics, dropout off), so the value is a deterministic function
of the checkpoint; all trainable parameters enter alpha unless ``parameters`` names a
subset (the result records how many coordinates entered). All gradients zero gives NaN.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from gradhub.errors import UnsupportedInputError
from gradhub.hyperparameters import validated
from gradhub.kinds import evaluation_mode
from gradhub.kinds.inputs import require_tensor
from gradhub.progress import ProgressCallback, tracker
from gradhub_coherence import M_COHERENCE
from gradhub_coherence.per_example import LossFunction, check_inputs, per_example_grads


@dataclass
class CoherenceResult:
    """The coherence of m per-example gradients (float64 scalars)."""

    alpha: Tensor
    """||mean g||^2 / mean ||g||^2, in [0, 1]."""
    m_coherence: Tensor
    """m * alpha = alpha / alpha_perp, in [0, m]."""
    alpha_perp: float
    """1/m: alpha of m orthogonal, equal-norm gradients."""
    examples: int
    """m."""
    coordinates: int
    """d: the number of gradient coordinates (parameter entries) that entered alpha."""


def _result(total: Tensor, square_norms: Tensor, examples: int, coordinates: int) -> CoherenceResult:
    m_alpha = total.square().sum() / square_norms
    return CoherenceResult(
        alpha=m_alpha / examples,
        m_coherence=m_alpha,
        alpha_perp=1.0 / examples,
        examples=examples,
        coordinates=coordinates,
    )


def coherence_from_grads(grads: Tensor, chunk_size: int | None = None) -> CoherenceResult:
    """Coherence of a precomputed per-example gradient matrix ``grads`` of shape (m, d) (or (m, ...)).

    Sums are accumulated in float64, ``chunk_size`` rows at a time (``None``: all at once).
    """
    rows_of = "(m, d) with m >= 1 per-example gradients as rows"
    grads = require_tensor(M_COHERENCE.name, "grads", grads, min_dim=2, what=rows_of)
    if grads.shape[0] == 0:
        raise UnsupportedInputError(M_COHERENCE.name, "grads shape", tuple(grads.shape), "grads must hold m >= 1 rows")
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
        raise UnsupportedInputError(M_COHERENCE.name, "chunk_size", chunk_size, "a positive int or None")
    rows = grads.reshape(grads.shape[0], -1)
    step = chunk_size or rows.shape[0]
    total = rows.new_zeros(rows.shape[1], dtype=torch.float64)
    square_norms = rows.new_zeros((), dtype=torch.float64)
    for start in range(0, rows.shape[0], step):
        chunk = rows[start : start + step].to(torch.float64)
        total += chunk.sum(0)
        square_norms += chunk.square().sum()
    return _result(total, square_norms, rows.shape[0], rows.shape[1])


@validated(M_COHERENCE)
def m_coherence(
    model: nn.Module,
    loss_fn: LossFunction,
    inputs: Tensor,
    targets: Tensor,
    *,
    chunk_size: int,
    parameters: Iterable[str] | None = None,
    generator: torch.Generator | None = None,
    progress: ProgressCallback | None = None,
) -> CoherenceResult:
    """alpha and m-coherence (Sec. 5) of the per-example gradients of ``model`` on (inputs, targets).

    Args:
        model: measured in eval mode at its current parameters; left as it was found.
        loss_fn: ``loss_fn(outputs, targets) -> scalar`` on a batch (called on batches of one).
        inputs, targets: the m examples (dim 0); the paper uses a fixed sample (e.g. m = 1000).
        chunk_size: examples per vmap chunk: memory is ``chunk_size x d``, never ``m x d`` (default from the model).
        parameters: names of the parameters whose gradients enter alpha (default: all trainable).
        generator: unused (the measurement is deterministic); accepted for the probe interface.
        progress: called once per chunk (``gradhub.progress``).
    """
    with evaluation_mode(model):
        check_inputs(M_COHERENCE.name, model, loss_fn, inputs, targets)
    examples = inputs.shape[0]
    chunks = range(0, examples, chunk_size)
    total: Tensor | None = None
    square_norms = torch.zeros((), dtype=torch.float64, device=inputs.device)
    with evaluation_mode(model), tracker(progress, total=len(chunks), task=M_COHERENCE.name) as bar:
        for start in chunks:
            grads = per_example_grads(
                model,
                loss_fn,
                inputs[start : start + chunk_size],
                targets[start : start + chunk_size],
                parameters=parameters,
            )
            rows = torch.cat([g.reshape(g.shape[0], -1) for g in grads.values()], dim=1).to(torch.float64)
            total = rows.sum(0) if total is None else total + rows.sum(0)
            square_norms = square_norms + rows.square().sum()
            bar.update()
    assert total is not None
    return _result(total, square_norms, examples, total.shape[0])


# The public names, from the objects themselves: each method's name is written once, in its spec.
__all__ = [
    exported.__name__
    for exported in (
        CoherenceResult,
        coherence_from_grads,
        m_coherence,
    )
]
