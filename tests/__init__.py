"""The test suite (a package, so `tests.conftest` is ours even if a dependency ships a `tests`)."""
