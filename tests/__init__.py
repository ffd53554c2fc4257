"""The test suite; tests/support holds what its modules share."""

import pytest

# Helpers in tests/support assert too: rewrite them like test modules, for readable failures.
# This must run before the first import of tests.support, hence here and not in a conftest.
pytest.register_assert_rewrite("tests.support")
