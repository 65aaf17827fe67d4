"""Shared pieces for the Dale-Langevin tests: deliberately wrong variants built from the real objects."""

from __future__ import annotations

from gradhub_dale_langevin.schedule import GBMSchedule
from torch import Tensor

from gradhub.testing.pytest_plugin import one_torch_thread_per_test as pytest_runtest_call  # noqa: F401


class NoItoSchedule(GBMSchedule):
    """A GBM schedule that forgot Ito: log-mean shift ``m_t = mu t`` instead of ``mu t - s_t^2 / 2``.

    Its closed-form marginal, its forward samples and every sampler step built on it drop the -sigma^2/2 drift.
    """

    def _mean_shift(self, t: Tensor) -> Tensor:
        return self.mu * t + 0 * self._log_var(t)
