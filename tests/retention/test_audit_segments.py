"""The audit log is purged by whole sealed segments through the purge; audit_verify still passes afterwards."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from django.db import transaction

from relais.audit import seal
from relais.audit.models import AuditCheckpoint, AuditEvent
from relais.audit.services import audit_record
from relais.audit.verify import verify
from relais.retention.config import DEFAULT_RETENTION
from relais.retention.services import purge


def test_audit_segments_go_after_a_year_and_the_log_still_verifies(settings: Any, tmp_path: Path, db: Any) -> None:
    settings.RELAIS_AUDIT_SEAL = {"every_events": 5, "every_seconds": 60, "delay_seconds": 300, "files": [str(tmp_path / "cp.jsonl")]}
    with transaction.atomic():
        for i in range(10):
            audit_record(actor=None, action="test.read", detail={"i": i})
    seal.seal_pending()
    assert AuditCheckpoint.objects.count() == 2
    newest = AuditEvent.objects.order_by("-occurred_at").first().occurred_at  # type: ignore[union-attr]
    year = timedelta(days=DEFAULT_RETENTION["audit"])
    report = purge(now=newest + year - timedelta(days=1))
    assert report["classes"]["audit"]["segments"] == 0 and AuditEvent.objects.filter(action="test.read").count() == 10
    report = purge(now=newest + year + timedelta(seconds=1))
    assert report["classes"]["audit"]["segments"] == 2 and report["classes"]["audit"]["events"] == 10
    assert not AuditEvent.objects.filter(action="test.read").exists()
    assert AuditCheckpoint.objects.count() >= 2  # the signed checkpoints stay
    seal.seal_pending(checkpoint=True)
    result = verify()
    assert result.ok, result.problems
