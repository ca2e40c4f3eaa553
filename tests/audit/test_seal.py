"""Sealing, checkpoints, status and the purge of whole sealed segments."""

from __future__ import annotations

import json
import stat
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import DatabaseError, transaction
from django.utils import timezone

from relais.audit import seal
from relais.audit.models import AuditCheckpoint, AuditEvent, AuditPurgedSegment, AuditSeal, AuditSubject
from relais.audit.services import audit_record
from tests.core.test_production_settings import _check, prod_env  # noqa: F401 - the fixture


@pytest.fixture
def sealing(settings: Any, tmp_path: Path) -> dict[str, Any]:
    settings.RELAIS_AUDIT_SEAL = {
        "every_events": 5,
        "every_seconds": 60,
        "delay_seconds": 300,
        "files": [str(tmp_path / "checkpoints.jsonl"), str(tmp_path / "copy" / "checkpoints.jsonl")],
    }
    return settings.RELAIS_AUDIT_SEAL


def record(n: int, **overrides: Any) -> list[AuditEvent]:
    events = []
    with transaction.atomic():
        for i in range(n):
            event = audit_record(
                actor=None,
                action=overrides.get("action", "test.read"),
                object_ids=overrides.get("object_ids", ()),
                detail={"i": i, "z": "é"},
            )
            events.append(event)
    return events


def test_seal_chains_every_event_and_checkpoints_every_n(db: Any, sealing: dict[str, Any]) -> None:
    record(12)
    report = seal.seal_pending()
    total = AuditEvent.objects.count()
    assert report.sealed == total
    seals = list(AuditSeal.objects.order_by("seq"))
    assert [s.seq for s in seals] == list(range(1, total + 1))
    previous = seal.GENESIS
    for s in seals:
        event = AuditEvent.objects.get(pk=s.event_id)
        assert s.content_hash == seal.content_hash(seal.canonical_event(event))
        previous = seal.chain(previous, s.content_hash)
        assert s.chain_hash == previous
    assert AuditCheckpoint.objects.count() == total // 5
    assert seal.seal_pending().sealed == 0
    seal.seal_pending(checkpoint=True)
    assert AuditCheckpoint.objects.order_by("-seq_last").first().seq_last == total  # type: ignore[union-attr]
    for path in sealing["files"]:
        lines = [json.loads(line) for line in Path(path).read_text().splitlines()]
        assert [line["checkpoint_hash"] for line in lines] == list(
            AuditCheckpoint.objects.order_by("seq_last").values_list("checkpoint_hash", flat=True)
        )
        assert stat.S_IMODE(Path(path).stat().st_mode) == 0o600


def test_status(db: Any, sealing: dict[str, Any]) -> None:
    record(3)
    status = seal.seal_status()
    assert status.unsealed_events == AuditEvent.objects.count() and status.sealed_events == 0 and status.healthy
    later = timezone.now() + timedelta(seconds=301)
    assert not seal.seal_status(now=later).healthy
    seal.seal_pending(checkpoint=True)
    status = seal.seal_status(now=later)
    assert status.healthy and status.unsealed_events == 0 and status.sealed_events == AuditEvent.objects.count()
    assert status.last_checkpoint_seq == status.sealed_events and status.last_checkpoint_key_id


def test_status_counts_unsealed_events_up_to_a_cap_and_finds_the_oldest(db: Any, sealing: dict[str, Any], monkeypatch: Any) -> None:
    record(5)
    first = AuditEvent.objects.order_by("id").first()
    assert first is not None
    monkeypatch.setattr(seal, "STATUS_COUNT_CAP", 3)
    status = seal.seal_status()
    assert status.unsealed_events == 3 and status.oldest_unsealed_at == first.occurred_at


def test_new_tables_are_append_only(db: Any, sealing: dict[str, Any]) -> None:
    record(5)
    seal.seal_pending()
    for model in (AuditSeal, AuditCheckpoint):
        with pytest.raises(DatabaseError), transaction.atomic():
            model.objects.all().update(count=1) if model is AuditCheckpoint else model.objects.all().update(content_hash="0")
        with pytest.raises(DatabaseError), transaction.atomic():
            model.objects.all().delete()


def test_purge_removes_whole_old_segments_and_keeps_checkpoints(db: Any, sealing: dict[str, Any]) -> None:
    record(11, object_ids=["6f1c5b8e-0000-4000-8000-000000000001"])
    seal.seal_pending()  # 2 checkpoints of 5, one event left uncheckpointed
    assert AuditCheckpoint.objects.count() == 2
    before = timezone.now() + timedelta(seconds=1)
    preview = seal.purge_sealed_segments(before=before, dry_run=True)
    assert preview == {"segments": 2, "events": 10, "first_seq": 1, "last_seq": 10}
    assert AuditEvent.objects.count() == 11
    assert seal.purge_sealed_segments(before=before) == preview
    assert AuditSeal.objects.order_by("seq").first().seq == 11  # type: ignore[union-attr]
    assert AuditEvent.objects.filter(action="test.read").count() == 1
    assert AuditCheckpoint.objects.count() == 2 and AuditPurgedSegment.objects.count() == 2
    assert not AuditSubject.objects.exclude(event_id__in=AuditEvent.objects.values("id")).exists()
    purge = AuditEvent.objects.get(action="audit.purge")
    assert purge.detail == preview
    # Rows outside a purged segment stay undeletable.
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditSeal.objects.filter(seq=11).delete()
    assert seal.purge_sealed_segments(before=before)["segments"] == 0


def test_purge_stops_at_a_segment_with_a_recent_event(db: Any, sealing: dict[str, Any]) -> None:
    record(10)
    seal.seal_pending()
    assert seal.purge_sealed_segments(before=timezone.now() - timedelta(days=1))["segments"] == 0


def test_production_refuses_to_start_without_a_distinct_signing_key_or_a_checkpoint_file(request: Any) -> None:
    base: dict[str, str] = request.getfixturevalue("prod_env")
    assert _check(base).returncode == 0
    env = dict(base)
    del env["RELAIS_AUDIT_SIGNING_KEY_FILE"]
    assert "RELAIS_AUDIT_SIGNING_KEY is missing" in _check(env).stderr
    env = dict(base, RELAIS_AUDIT_SIGNING_KEY_FILE=base["RELAIS_MASTER_KEY_FILE"])
    assert "RELAIS_AUDIT_SIGNING_KEY must differ" in _check(env).stderr
    env = dict(base, RELAIS_AUDIT_CHECKPOINT_FILE="")
    assert "RELAIS_AUDIT_CHECKPOINT_FILE" in _check(env).stderr
