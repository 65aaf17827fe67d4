"""The gradhub conformance suite over the four probes of this plugin."""

import gradhub.testing

test_conformance = gradhub.testing.suite("hessian_spectrum", "spectral_density", "ggn_decomposition", "loss_along_path")
