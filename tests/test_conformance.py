"""The conformance suite over every installed method (first-party plugins included)."""

import gradhub.testing

test_installed_methods = gradhub.testing.suite()
