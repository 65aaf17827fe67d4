"""Conformance for probes: they share ``model_unchanged`` with attacks (common.py); here the call."""

from __future__ import annotations

from gradhub.kinds.probe import ProbeExample
from gradhub.testing._helpers import register_model_kind

register_model_kind("probe", ProbeExample, None)
