"""The gradhub conformance suite over every method gradhub-dale-langevin declares (read from its entry points)."""

import gradhub.testing

test_conformance = gradhub.testing.suite(distribution="gradhub-dale-langevin")
