"""Shared set-up for gradhub-normalized-lrgd's tests (nothing to share yet beyond float64 helpers)."""
