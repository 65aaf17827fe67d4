"""The gradhub conformance suite over this plugin's methods (collected by the gradhub pytest plugin)."""

import gradhub.testing

test_conformance = gradhub.testing.suite("mfac", "mfac_ihvp_static", "mfac_ihvp_dynamic")
