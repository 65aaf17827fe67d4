"""The gradhub conformance suite over every method gradhub-gifd declares (read from its entry points)."""

import gradhub.testing

test_conformance = gradhub.testing.suite(distribution="gradhub-gifd")
