"""The gradhub conformance suite over the plugin's three methods (collected by the gradhub pytest plugin)."""

import gradhub.testing

test_conformance = gradhub.testing.suite("linear_decay", "refined_schedule", "grad_norm_recorder", "grad_norm")
