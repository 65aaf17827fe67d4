"""The gradhub conformance suite over every method gradhub-refined-schedules declares (read from its entry points)."""

import gradhub.testing

test_conformance = gradhub.testing.suite(distribution="gradhub-refined-schedules")
