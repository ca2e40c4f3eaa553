"""Schemathesis against our own OpenAPI document: no 5xx, no answer outside the documented schema.

Bounded: a fixed number of examples per operation (RELAIS_FUZZ_EXAMPLES, default 25), run in-process through WSGI."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis import checks

from relais.wsgi import application

EXAMPLES = int(os.environ.get("RELAIS_FUZZ_EXAMPLES", "25"))

schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", application)

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.negative_data_rejection,
]


@pytest.fixture
def api_headers(bearer: dict[str, str]) -> Iterator[dict[str, str]]:
    # Like Django's test client: the app must not close the test's connection (and its transaction) after each request.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield {"Authorization": bearer["HTTP_AUTHORIZATION"], "Accept-Language": "en"}
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,  # same examples on every run: a failure in CI reproduces locally
    database=None,
)
@pytest.mark.django_db(transaction=False)
def test_api_conforms_to_its_schema(case: Any, api_headers: dict[str, str]) -> None:
    case.call_and_validate(headers=api_headers, checks=CHECKS)
