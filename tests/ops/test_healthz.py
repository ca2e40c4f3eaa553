"""/healthz/live answers without the database; /healthz/ready checks database, migrations and queues; /healthz stays."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from relais.ops import readiness
from relais.transfer.models import OutboxMessage


def test_live_needs_no_database(client: Client, db: Any) -> None:
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/healthz/live")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert len(queries) == 0


def test_ready(client: Client, db: Any) -> None:
    response = client.get("/healthz/ready")
    assert response.status_code == 200, response.content
    assert response.json() == {"status": "ok", "database": "ok", "migrations": "ok", "queues": "ok"}
    assert client.get("/healthz").json() == {"status": "ok", "database": "ok"}


def test_ready_is_cheap(client: Client, db: Any) -> None:
    client.get("/healthz/ready")
    with CaptureQueriesContext(connection) as queries:
        client.get("/healthz/ready")
    assert len(queries) <= 25, [q["sql"] for q in queries.captured_queries]


def test_not_ready_names_a_stalled_queue_only(client: Client, screening: Any) -> None:
    OutboxMessage.objects.update(next_attempt_at=timezone.now() - timedelta(hours=1))  # due for an hour, nobody took it
    response = client.get("/healthz/ready")
    assert response.status_code == 503
    assert response.json() == {"status": "not ready", "database": "ok", "migrations": "ok", "queues": "stalled", "stalled": ["transfer"]}


def test_not_ready_with_a_migration_pending(client: Client, db: Any) -> None:
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM django_migrations WHERE app = 'audit' AND name = '0005_event_pharmacy_actor_indexes'")
    response = client.get("/healthz/ready")
    assert response.status_code == 503 and response.json()["migrations"] == "pending"


def test_not_ready_without_database(client: Client, db: Any, monkeypatch: Any) -> None:
    def broken() -> Any:
        raise RuntimeError("connection refused to host secret-db.internal")

    with monkeypatch.context() as patch:
        patch.setattr(readiness.connection, "cursor", broken)
        response = client.get("/healthz/ready")
    assert response.status_code == 503 and response.json() == {"status": "not ready", "database": "unavailable"}
