"""The test suite (a package, so `tests.helpers` is ours even if a dependency ships a `tests`)."""
