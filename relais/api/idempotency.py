"""Idempotency-Key for single-object requests: a retry gets the first answer; the work is done once."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from relais.api.models import ApiClient, IdempotentResponse
from relais.submissions.models import Submission

HEADER = "Idempotency-Key"
KEEP = timedelta(hours=24)
_KEY_RE = re.compile(r"[\x21-\x7e]{1,200}")  # printable ASCII, no spaces


class KeyReused(Exception):
    """Same key, different request: refused (422) rather than guessing which one was meant."""


class BadKey(Exception):
    pass


class _Replay(Exception):
    def __init__(self, stored: IdempotentResponse) -> None:
        self.stored = stored


def request_key(request: HttpRequest) -> str:
    key = request.headers.get(HEADER, "")
    if key and not _KEY_RE.fullmatch(key):
        raise BadKey
    return key


def request_hash(request: HttpRequest, *, body: bytes | None = None) -> str:
    digest = hashlib.sha256()
    digest.update(f"{request.method} {request.path}\n".encode())
    digest.update(request.body if body is None else body)
    return digest.hexdigest()


def used_for_single_request(client: ApiClient, key: str) -> bool:
    """True when a single-object request already used this key (batches and files must then pick another)."""
    return IdempotentResponse.objects.filter(client=client, key=key, created_at__gt=timezone.now() - KEEP).exists()


def _stored(client: ApiClient, key: str, fingerprint: str) -> IdempotentResponse | None:
    stored = IdempotentResponse.objects.filter(client=client, key=key, created_at__gt=timezone.now() - KEEP).first()
    if stored is not None and stored.request_hash != fingerprint:
        raise KeyReused
    if stored is None and Submission.objects.filter(submitted_by_id=client.service_user_id, idempotency_key=key).exists():
        raise KeyReused  # the key named a batch or a file: one key, one request, whatever the endpoint
    return stored


def run_once(
    *, client: ApiClient, key: str, fingerprint: str, handler: Callable[[], tuple[int, dict[str, Any]]]
) -> tuple[int, dict[str, Any], bool]:
    """(status, body, replayed). Only successful answers are kept: a refused request changed nothing, so retrying it is safe."""
    if not key:
        status, body = handler()
        return status, body, False
    stored = _stored(client, key, fingerprint)
    if stored is not None:
        return stored.status_code, json.loads(stored.body), True
    try:
        with transaction.atomic():
            status, body = handler()
            if 200 <= status < 300:
                IdempotentResponse.objects.filter(client=client, created_at__lte=timezone.now() - KEEP).delete()  # kept 24 h
                try:
                    with transaction.atomic():
                        IdempotentResponse.objects.create(
                            client=client, key=key, request_hash=fingerprint, status_code=status, body=json.dumps(body)
                        )
                except IntegrityError:
                    # A concurrent retry finished first: undo our work and answer as it did.
                    raise _Replay(IdempotentResponse.objects.get(client=client, key=key)) from None
    except _Replay as replay:
        if replay.stored.request_hash != fingerprint:
            raise KeyReused from None
        return replay.stored.status_code, json.loads(replay.stored.body), True
    return status, body, False
