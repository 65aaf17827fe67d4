"""The gradhub conformance suite over the plugin's four methods."""

import gradhub.testing

test_conformance = gradhub.testing.suite("dcdm", "cg", "dcdm_loss", "dcdm_net")
