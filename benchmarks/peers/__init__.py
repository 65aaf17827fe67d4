"""Peer comparisons for ``benchmarks/kinds.py``: one module per group, each with ``comparisons(args)``
returning :class:`kinds.Comparison` rows (gradhub's call, the peer's, and the check that they agree)."""
