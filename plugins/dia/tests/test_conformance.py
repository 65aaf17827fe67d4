"""Every gradhub conformance check for dia, inverting_gradients and mask_dropout, one pytest test each."""

import gradhub.testing

test_conformance = gradhub.testing.suite("dia", "inverting_gradients", "mask_dropout")
