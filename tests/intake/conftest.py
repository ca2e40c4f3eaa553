"""The API client fixtures, shared with tests/api."""

from tests.api.conftest import bearer, registered

__all__ = ["bearer", "registered"]
