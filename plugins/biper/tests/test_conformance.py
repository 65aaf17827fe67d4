"""The gradhub conformance suite over the four methods of this plugin."""

import gradhub.testing

test_conformance = gradhub.testing.suite("biper_conv2d", "biper_linear", "biper_sign", "biper_sign_act")
