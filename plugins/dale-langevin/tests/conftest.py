"""Shared pieces for the Dale-Langevin tests: deliberately wrong variants built from the real objects."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gradhub_dale_langevin.schedule import GBMSchedule
from torch import Tensor

from gradhub.claims import single_thread


class NoItoSchedule(GBMSchedule):
    """A GBM schedule that forgot Ito: log-mean shift ``m_t = mu t`` instead of ``mu t - s_t^2 / 2``.

    Its closed-form marginal, its forward samples and every sampler step built on it drop the -sigma^2/2 drift.
    """

    def _mean_shift(self, t: Tensor) -> Tensor:
        return self.mu * t + 0 * self._log_var(t)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Each test on one torch thread: the tests run small ops, which OpenMP threads on a busy 2-core machine slow
    down many times over (the claim checks do the same); no result depends on it."""
    with single_thread():
        yield
