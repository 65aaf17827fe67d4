"""The gradhub conformance suite over both methods of this plugin (collected by the gradhub pytest plugin)."""

import gradhub.testing

test_conformance = gradhub.testing.suite("gns_newton", "gns_radius")
