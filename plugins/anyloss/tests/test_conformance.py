"""The gradhub conformance suite over every method of this plugin (collected by the gradhub pytest plugin)."""

import gradhub.testing

test_conformance = gradhub.testing.suite(
    "anyloss", "any_accuracy", "any_fbeta", "any_gmean", "any_balanced_accuracy", "wbce_any"
)
