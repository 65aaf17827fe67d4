"""The gradhub conformance suite over this plugin's method (collected by the gradhub pytest plugin)."""

import gradhub.testing

test_conformance = gradhub.testing.suite("diffgrad")
