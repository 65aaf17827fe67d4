"""The claim check passes, and a probe that returns G for H (the HVP without its R term) fails it."""

from gradhub_hessian_spectrum.claims import dense_ggn, outliers_follow_clusters


def test_claim_outliers_follow_clusters():
    result = outliers_follow_clusters()
    assert result.passed, result.details
    assert len(result.figures) == 2


def test_claim_fails_for_gauss_newton_only_probe():
    result = outliers_follow_clusters(hessian_fn=dense_ggn)
    assert not result.passed
    assert "(e) FAIL" in result.details
