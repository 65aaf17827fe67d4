"""The f-distill generator loss: DMD's pseudo-target loss weighted by h(r) of a discriminator's density ratio.

"One-step Diffusion Models with f-Divergence Distribution Matching", Y. Xu, W. Nie, A. Vahdat, 2025,
arXiv:2502.15681; official code NVIDIA FastGen ``fastgen/methods/distribution_matching/f_distill.py``
(``FdistillModel._get_f_div_weighting_h``, ``_student_update_step``) and ``fastgen/methods/common_loss.py``
(``variational_score_distillation_loss``).

For student samples ``x = G(z)``, noised ``x_t = alpha_t x + sigma_t eps``, the teacher's and the fake
score's x0 predictions ``D_T(x_t)``, ``D_F(x_t)`` and a discriminator's logits ``d(x_t)``:

1. density ratio (the logistic discriminator's optimum is ``log p_t/q_t``):
   ``r = exp(clamp(mean_dims d(x_t), -10, 10))``, detached, clipped to ``ratio_clip``;
2. per-noise-level normalisation: ``t`` falls in one of ``n_bins`` equal-width bins of ``t_range``;
   each bin keeps a running mean of r (``bins``, a buffer, initialised to 1, updated by
   ``bins <- ema bins + (1 - ema) mean_batch-in-bin(r)`` only where the batch has samples), and
   ``r <- r / (bins[bin(t)] + eps)``;
3. ``h = f''(r) r^2`` (:mod:`gradhub_fdistill.divergences`), divided by its batch mean (all-reduced);
4. the paper's gradient as a pseudo-target MSE (VSD/DMD's form): with ``w = h / (mean_dims |x - D_T| + eps)``
   (DMD's normaliser, Yin et al. 2024 Eq. 8) and ``g = (D_F - D_T) w``, the loss is
   ``0.5 mean((x - sg(x - g))^2)``: its value is ``0.5 mean(g^2)`` and its gradient w.r.t. x is
   ``g / numel``, the f-divergence gradient (the score difference ``grad log p - grad log q`` is
   ``alpha (D_T - D_F) / sigma^2``, its positive factor absorbed in the weighting).

``divergence="rkl"`` (h = 1) is the DMD/VSD loss. The GAN term of the student's total loss is not
part of this loss (:class:`gradhub_fdistill.trainer.FDistillTrainer` adds it).

Differences from the official code: the bin means divide the bin's sum by its count exactly (the code
adds 1e-6 to the count); the bins and ``h`` are updated only when every input is finite (a call that
raises changes nothing); ``rkl`` gives a per-sample weight of ones (the code's 0-d constant breaks its
``len(h)``); h's global mean divides the all-reduced sum by the all-reduced count (the code: by the
local batch size times the world size, the same for equal batches); ``disc_logits`` may be (B,) or
(B, ...) (the code asserts (B, D)).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from gradhub.errors import UnsupportedInputError
from gradhub.kinds.inputs import require_matching_shapes, require_same_device, require_tensor, require_values
from gradhub.kinds.loss import loss
from gradhub_fdistill import FDISTILL_LOSS
from gradhub_fdistill.divergences import WEIGHTS

__all__ = ["LOGIT_CLAMP", "FDistillLoss", "distributed_sum"]

LOGIT_CLAMP = 10.0
"""The official code clamps the mean logit to [-10, 10] before the exponential (r in [4.5e-5, 2.2e4])."""

AllReduce = Callable[[Tensor], None]


def distributed_sum(tensor: Tensor) -> None:
    """Sum ``tensor`` in place over the processes of ``torch.distributed``'s default group, when one runs."""
    distributed = torch.distributed
    if distributed.is_available() and distributed.is_initialized() and distributed.get_world_size() > 1:
        distributed.all_reduce(tensor)


def _per_sample(values: Tensor) -> Tensor:
    """The mean over every dimension but the first: one value per sample."""
    return values.reshape(values.shape[0], -1).mean(1)


def _as_batch(coefficient: Tensor, like: Tensor) -> Tensor:
    """A (batch,) coefficient shaped to broadcast against ``like`` (batch, ...)."""
    return coefficient.reshape(-1, *([1] * (like.dim() - 1)))


@loss(FDISTILL_LOSS)
class FDistillLoss(nn.Module):
    """The student's f-divergence loss (module docstring), ``loss(x_gen, teacher_x0, fake_x0, disc_logits, t)``.

    ``x_gen`` (B, ...): the student's samples (gradients flow into it); ``teacher_x0`` and ``fake_x0``:
    the teacher's and the fake score's x0 predictions at ``x_t`` (like ``x_gen``; read without gradient);
    ``disc_logits`` (B,) or (B, ...): the discriminator's logits at ``x_t`` (read without gradient);
    ``t`` (B,): the noise times of ``x_t``, needed for the ratio normalisation (None is allowed without it).

    The per-bin running means of r are the buffer ``bins`` (``state_dict`` carries them, so they
    checkpoint with the student; kept in float32 unless the module is cast). Each call updates them
    first and then normalises with the updated values, as the official code. ``all_reduce`` sums a tensor
    in place across processes (counts and sums of the bins, h's sum): ``"auto"`` uses
    ``torch.distributed`` when it runs with several processes, ``None`` never reduces, or pass your own.
    The weights of the last call are kept (detached) in ``last_weights``. ``device``: where the buffer is
    made (default: torch's default device; ``.to()`` moves it like any buffer).
    """

    def __init__(
        self,
        *,
        divergence: str,
        ratio_clip: tuple[float, float] | None,
        ratio_normalization: bool,
        n_bins: int,
        ratio_ema: float,
        t_range: tuple[float, float],
        normalize_h: bool,
        dmd_normalizer: bool,
        eps: float,
        all_reduce: AllReduce | str | None = "auto",
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        if all_reduce == "auto":
            all_reduce = distributed_sum
        if all_reduce is not None and not callable(all_reduce):
            raise UnsupportedInputError(
                self.method, "all_reduce", repr(all_reduce), "'auto', None, or a callable summing a tensor in place"
            )
        self.divergence, self.ratio_clip, self.ratio_normalization = divergence, ratio_clip, ratio_normalization
        self.n_bins, self.ratio_ema, self.t_range = n_bins, ratio_ema, t_range
        self.normalize_h, self.dmd_normalizer, self.eps = normalize_h, dmd_normalizer, eps
        self.all_reduce = all_reduce
        self.register_buffer("bins", torch.ones(n_bins, dtype=torch.float32, device=device))
        self.last_weights: Tensor | None = None

    def extra_repr(self) -> str:
        return (
            f"divergence={self.divergence!r}, ratio_clip={self.ratio_clip}, ratio_normalization="
            f"{self.ratio_normalization}, n_bins={self.n_bins}, ratio_ema={self.ratio_ema}, t_range={self.t_range}"
        )

    def _sum_across_processes(self, tensor: Tensor) -> Tensor:
        if self.all_reduce is not None:
            self.all_reduce(tensor)
        return tensor

    def bin_index(self, t: Tensor) -> Tensor:
        """The bin of each time: ``floor((t - t_min) / width)`` clamped to [0, n_bins - 1] (float64 arithmetic)."""
        low, high = self.t_range
        position = (t.detach().to(torch.float64) - low) / ((high - low) / self.n_bins)
        return position.nan_to_num(0.0).floor().clamp(0, self.n_bins - 1).long()

    def _normalize_per_bin(self, r: Tensor, t: Tensor, commit: Tensor) -> Tensor:
        """Step 2: update the bins' running means with this batch (where it has samples), divide r by them."""
        index = self.bin_index(t)
        members = (index[:, None] == torch.arange(self.n_bins, device=r.device)).to(r.dtype)  # (B, n_bins)
        # counts and sums in one tensor: one all-reduce; a one-hot product is deterministic on every device
        statistics = self._sum_across_processes(torch.stack([members.sum(0), r @ members]))
        count, total = statistics[0], statistics[1]
        bins = self.bins.to(r.dtype)
        mean = total / count.clamp_min(1)
        updated = torch.where((count > 0) & commit, self.ratio_ema * bins + (1 - self.ratio_ema) * mean, bins)
        self.bins.copy_(updated)
        return r / (updated[index] + self.eps)

    def weights(self, disc_logits: Tensor, t: Tensor | None, commit: Tensor | None = None) -> Tensor:
        """Steps 1-3: the per-sample weights h (B,) in at least float32, from the logits (and t for the bins).

        Updates ``bins`` when ``ratio_normalization`` (only if ``commit``, a 0-d bool tensor, is true).
        """
        compute = torch.promote_types(disc_logits.dtype, torch.float32)
        logit = _per_sample(disc_logits.detach().to(compute)).clamp(-LOGIT_CLAMP, LOGIT_CLAMP)
        r = logit.exp()
        if self.ratio_clip is not None:
            r = r.clamp(*self.ratio_clip)
        if self.ratio_normalization:
            if t is None:
                raise UnsupportedInputError(
                    self.method, "t", None, "pass the noise times t (batch,), or set ratio_normalization=False"
                )
            if commit is None:
                commit = torch.ones((), dtype=torch.bool, device=r.device)
            r = self._normalize_per_bin(r, t, commit)
        h = WEIGHTS[self.divergence](r)
        if self.normalize_h:
            statistics = self._sum_across_processes(torch.stack([h.sum(), h.new_full((), float(h.numel()))]))
            h = h / (statistics[0] / statistics[1] + self.eps)
        return h

    def _check(self, x_gen: Tensor, teacher_x0: Tensor, fake_x0: Tensor, disc_logits: Tensor, t: Tensor | None) -> None:
        method = self.method
        require_tensor(method, "x_gen", x_gen, min_dim=1, nonempty=True, what="(batch, ...)")
        require_tensor(method, "teacher_x0", teacher_x0, what="like x_gen")
        require_tensor(method, "fake_x0", fake_x0, what="like x_gen")
        require_matching_shapes(method, x_gen=x_gen, teacher_x0=teacher_x0, fake_x0=fake_x0)
        require_tensor(method, "disc_logits", disc_logits, min_dim=1, what="(batch,) or (batch, ...)")
        batch = x_gen.shape[0]
        if disc_logits.shape[0] != batch or disc_logits.numel() == 0:
            raise UnsupportedInputError(
                method,
                "disc_logits shape",
                tuple(disc_logits.shape),
                f"disc_logits must be ({batch},) or ({batch}, ...)",
            )
        tensors = {"x_gen": x_gen, "teacher_x0": teacher_x0, "fake_x0": fake_x0, "disc_logits": disc_logits}
        if t is not None:
            require_tensor(method, "t", t, dtype="real", dim=1, what=f"of noise times, shape ({batch},)")
            if t.shape[0] != batch:
                raise UnsupportedInputError(method, "t shape", tuple(t.shape), f"t must be ({batch},), one per sample")
            tensors["t"] = t
        require_same_device(method, **tensors)

    def forward(
        self, x_gen: Tensor, teacher_x0: Tensor, fake_x0: Tensor, disc_logits: Tensor, t: Tensor | None = None
    ) -> Tensor:
        """The loss (a scalar in x_gen's dtype); its gradient w.r.t. x_gen is ``(D_F - D_T) w h / numel``."""
        self._check(x_gen, teacher_x0, fake_x0, disc_logits, t)
        finite = []
        for name, value in (
            ("x_gen", x_gen),
            ("teacher_x0", teacher_x0),
            ("fake_x0", fake_x0),
            ("disc_logits", disc_logits),
            ("t", t),
        ):
            if value is not None and value.is_floating_point():
                bad = ~torch.isfinite(value.detach())
                require_values(self.method, name, bad, value.detach(), f"{name} must be finite")
                finite.append(bad.any())
        commit = ~torch.stack(finite).any()
        with torch.no_grad():
            h = self.weights(disc_logits, t, commit)
            self.last_weights = h
            x = x_gen.detach()
            compute = h.dtype
            if self.dmd_normalizer:
                h = h / (_per_sample((x.to(compute) - teacher_x0.to(compute)).abs()) + self.eps)
            w = _as_batch(h.to(x.dtype), x)
            pseudo_target = x - (fake_x0.detach() - teacher_x0.detach()) * w
        return 0.5 * (x_gen - pseudo_target).square().mean()
