"""The gradhub conformance suite over this plugin's three methods (collected by the gradhub pytest plugin)."""

import gradhub.testing

test_conformance = gradhub.testing.suite("normalized_lrgd", "lr_gd", "batch_perceptron")
