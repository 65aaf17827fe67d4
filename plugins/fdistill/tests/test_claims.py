"""The claim check passes with the shipped loss and fails, by the same criterion, with wrong weightings."""

from __future__ import annotations

from gradhub_fdistill.claims import (
    criterion_holds,
    default_loss,
    default_students,
    distill_gaussian_students,
    students_per_divergence,
)
from gradhub_fdistill.loss import FDistillLoss

from gradhub.claims import single_thread


def test_claim_holds():
    result = students_per_divergence()
    assert result.passed, result.details
    measured = result.measured
    # the margins the README reports: kl covers both modes' spread, rkl sits on the heavy mode
    assert measured["std x1 (kl)"] >= 3 * measured["std x1 (rkl)"]
    assert abs(measured["mean x1 (rkl)"] + 3) < 0.3
    assert len(result.figures) == 2 and len(result.figures[0].series) == 8


def wrong_kl_student(loss) -> dict:
    """The shipped students with the kl one replaced by one distilled with ``loss``."""
    with single_thread():
        wrong = distill_gaussian_students({"kl": loss})
    return {**default_students(), **wrong}


def test_forward_kl_weighted_by_one_over_r_fails():
    """h = 1/r for "kl" (Neyman's weight, the ratio's role inverted): the student collapses onto one mode."""
    students = wrong_kl_student(
        FDistillLoss(divergence="neyman", ratio_clip=None, dmd_normalizer=False, t_range=(0.1, 3.0))
    )
    assert not criterion_holds(students)
    assert students["kl"].std[0].item() < 1.0


class InvertedRatio(FDistillLoss):
    """A wrong ratio estimate: q/p instead of p/q (the discriminator's logit negated)."""

    def forward(self, x_gen, teacher_x0, fake_x0, disc_logits, t=None):
        return super().forward(x_gen, teacher_x0, fake_x0, -disc_logits, t)


def test_inverted_ratio_fails():
    students = wrong_kl_student(
        InvertedRatio(divergence="kl", ratio_clip=None, dmd_normalizer=False, t_range=(0.1, 3.0))
    )
    assert not criterion_holds(students)


def test_the_shipped_students_satisfy_the_criterion_they_are_compared_with():
    """The criterion the wrong variants fail is the claim's own (and passes on the shipped students)."""
    assert criterion_holds(default_students())
    assert default_loss("kl").ratio_clip is None and not default_loss("kl").dmd_normalizer
