"""The gradhub conformance suite over the four registered methods (collected by the gradhub pytest plugin)."""

import gradhub.testing

test_conformance = gradhub.testing.suite("grad_reverse", "gradient_reversal", "dann", "dann_lambda", "dann_lr")
