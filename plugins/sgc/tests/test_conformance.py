"""The gradhub conformance suite over every method gradhub-sgc declares (read from its entry points)."""

import gradhub.testing

test_conformance = gradhub.testing.suite(distribution="gradhub-sgc")
