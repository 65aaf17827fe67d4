"""The claim check passes, and fails for a GIFD whose feature stages do not search."""

from __future__ import annotations

from typing import Any
from unittest import mock

from gradhub_gifd import attack
from gradhub_gifd.claims import OUT_OF_DISTRIBUTION, feature_domains_beat_latent


def test_feature_domains_beat_latent() -> None:
    """OOD: mean PSNR(gifd) >= mean PSNR(gifd_latent) + 1 dB; gifd's matching loss never above the baseline's."""
    result = feature_domains_beat_latent()
    assert result.passed, result.report()
    assert result.measured["gifd stage 0 identical to gifd_latent"] == 1.0
    assert result.measured["iDLG labels correct"] == 1.0
    assert result.measured["images with gifd matching loss <= gifd_latent's"] == 6
    assert len(result.figures) == 1 and len(result.figures[0].rows) == 6


def frozen_features(*args: Any, **kwargs: Any) -> Any:
    """A WRONG GIFD: after each step of a feature stage the feature is put back at its start (radius 0)."""
    original = attack._projection

    def projection(options: Any, stage: int, start: Any, radius: Any) -> Any:
        return original(options, stage, start, radius) if stage == 0 else (lambda h: start)

    with mock.patch.object(attack, "_projection", projection):
        return attack.gifd(*args, **kwargs)


def test_claim_fails_when_features_are_not_searched() -> None:
    result = feature_domains_beat_latent(gifd=frozen_features, indices=OUT_OF_DISTRIBUTION[:1], pixel_baseline=False)
    assert not result.passed, result.report()
    assert abs(result.measured["OOD gain (dB)"]) < 0.1
