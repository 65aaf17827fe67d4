"""The gradhub conformance suite over this plugin's four methods."""

import gradhub.testing

test_conformance = gradhub.testing.suite("winsorized_sgd", "median_of_means_sgd", "m_coherence", "per_example_grads")
