"""The gradhub conformance suite over every method gradhub-convex-relu declares (read from its entry points)."""

import gradhub.testing

test_conformance = gradhub.testing.suite(distribution="gradhub-convex-relu")
