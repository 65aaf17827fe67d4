"""The gradhub conformance suite over this plugin's three optimizers."""

import gradhub.testing

test_conformance = gradhub.testing.suite("npg_igt", "harpg", "n_harpg")
