from __future__ import annotations

from collections.abc import Iterator

import pytest

from relais.retention import services


@pytest.fixture(autouse=True)
def _no_hook() -> Iterator[None]:
    yield
    services.after_batch = None
