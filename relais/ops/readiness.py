"""Readiness for a load balancer or an orchestrator, probed every few seconds: database, migrations, queues.

The answer names the failing parts only (database, migrations, queues and which queue stalled): no error text, no
counts of personal data. Liveness needs none of this (relais.core.views.healthz_live)."""

from __future__ import annotations

from functools import lru_cache

from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder

from relais.ops.queues import queue_health, stalled


@lru_cache(maxsize=1)
def _known_migrations() -> frozenset[tuple[str, str]]:
    """The migrations on disk, read once per process (a deployment with new code restarts the process)."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    return frozenset(loader.graph.nodes)


def pending_migrations() -> set[tuple[str, str]]:
    """One query: migrations on disk not recorded as applied (squashed ones count as applied with their replacements)."""
    applied = set(MigrationRecorder(connection).applied_migrations())
    return set(_known_migrations()) - applied


def readiness() -> tuple[bool, dict[str, object]]:
    """(ready, parts): each part "ok" or why not, by name only."""
    parts: dict[str, object] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        parts["database"] = "ok"
    except Exception:  # the probe reports, it does not crash
        parts["database"] = "unavailable"
        return False, parts
    try:
        parts["migrations"] = "pending" if pending_migrations() else "ok"
    except Exception:
        parts["migrations"] = "unknown"
    try:
        late = [health.name for health in queue_health() if stalled(health)]
        parts["queues"] = "ok" if not late else "stalled"
        if late:
            parts["stalled"] = late
    except Exception:
        parts["queues"] = "unknown"
    ready = all(parts[k] == "ok" for k in ("database", "migrations", "queues"))
    return ready, parts
