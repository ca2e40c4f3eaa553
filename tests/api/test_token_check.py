"""The bearer check (one hand-built statement, issue 13): the same answer as the ORM query it replaced, in one query."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.db.models import Q
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from relais.api.models import AccessToken, ApiClient, ApiClientKey
from relais.api.services import client_for_token, token_issue
from tests.factories import AUDIENCE, _assertion

pytestmark = pytest.mark.django_db


def _issue(registered: tuple[ApiClient, Any]) -> str:
    api_client, private = registered
    return token_issue(client_id=str(api_client.pk), assertion=_assertion(private, str(api_client.pk)), audience=AUDIENCE).access_token


def _orm(token: str) -> ApiClient | None:
    """The ORM query the check used before: the reference the fast path must agree with."""
    from relais.api.services import _hash

    row = (
        AccessToken.objects.select_related("client__service_user", "client__pharmacy")
        .filter(token_hash=_hash(token), expires_at__gt=timezone.now(), client__revoked_at__isnull=True)
        .filter(Q(key__isnull=True) | Q(key__revoked_at__isnull=True))
        .first()
    )
    return row.client if row else None


def _fields(obj: Any) -> dict[str, Any]:
    return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}


def test_valid_token_loads_the_client_its_user_and_pharmacy_in_one_query(registered: tuple[ApiClient, Any]) -> None:
    token = _issue(registered)
    with CaptureQueriesContext(connection) as queries:
        client = client_for_token(token)
        assert client is not None
        user, pharmacy = client.service_user, client.pharmacy
    assert len(queries) == 1
    reference = _orm(token)
    assert reference is not None
    assert _fields(client) == _fields(reference)  # same values and types (UUIDs, datetimes, booleans) as the ORM gives
    assert _fields(user) == _fields(reference.service_user) and _fields(pharmacy) == _fields(reference.pharmacy)
    assert client._state.adding is False and client._state.db == "default"


def test_unknown_tampered_and_expired_tokens_are_refused(registered: tuple[ApiClient, Any]) -> None:
    token = _issue(registered)
    assert client_for_token("nope") is None
    assert client_for_token(token[:-1] + ("A" if token[-1] != "A" else "B")) is None  # one character changed
    assert client_for_token(token, now=timezone.now() + timedelta(minutes=11)) is None  # tokens live 10 minutes
    AccessToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert client_for_token(token) is None and _orm(token) is None


def test_revoked_client_or_key_is_refused_at_the_next_request(registered: tuple[ApiClient, Any]) -> None:
    api_client, _ = registered
    token = _issue(registered)
    assert client_for_token(token) == api_client
    ApiClientKey.objects.update(revoked_at=timezone.now())  # rows left in place: the check itself must refuse
    assert client_for_token(token) is None
    ApiClientKey.objects.update(revoked_at=None)
    assert client_for_token(token) == api_client
    ApiClient.objects.update(revoked_at=timezone.now())
    assert client_for_token(token) is None
    ApiClient.objects.update(revoked_at=None)
    AccessToken.objects.update(key=None)  # a token from before keys were tracked still needs a live client
    assert client_for_token(token) == api_client
