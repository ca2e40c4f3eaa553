"""audit_verify names the first damaged sequence and its kind, for each kind of damage, triggers dropped first."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.utils import timezone

from relais.audit import seal, sealcrypto
from relais.audit import verify as v
from relais.audit.models import AuditCheckpoint, AuditEvent, AuditSeal, AuditSubject
from relais.audit.services import audit_record

PATIENT = "6f1c5b8e-0000-4000-8000-00000000000a"
TABLES = ("audit_auditevent", "audit_auditsubject", "audit_auditseal", "audit_auditcheckpoint", "audit_auditpurgedsegment")


@pytest.fixture
def sealing(settings: Any, tmp_path: Path) -> dict[str, Any]:
    settings.RELAIS_AUDIT_SEAL = {
        "every_events": 5,
        "every_seconds": 60,
        "delay_seconds": 300,
        "files": [str(tmp_path / "checkpoints.jsonl"), str(tmp_path / "copy.jsonl")],
    }
    return settings.RELAIS_AUDIT_SEAL


@pytest.fixture
def log(db: Any, sealing: dict[str, Any]) -> list[AuditEvent]:
    """20 sealed events (4 signed segments of 5); events 3, 9 and 14 name the patient."""
    events = []
    with transaction.atomic():
        for i in range(20):
            ids = [PATIENT] if i in (3, 9, 14) else []
            events.append(audit_record(actor=None, action="patient.view", object_ids=ids, detail={"i": i, "b": [1, "x"]}))
    seal.seal_pending(checkpoint=True)
    assert AuditSeal.objects.count() == 20 and AuditCheckpoint.objects.count() == 4
    return events


@contextmanager
def triggers_dropped() -> Iterator[None]:
    """What the issue's attacker did: drop the append-only triggers, tamper, re-create them."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT t.tgname, c.relname, pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "WHERE NOT t.tgisinternal AND c.relname = ANY(%s)",
                [list(TABLES)],
            )
            saved = cursor.fetchall()
            for name, table, _ in saved:
                cursor.execute(f'DROP TRIGGER "{name}" ON {table}')
            statements = [definition for _, _, definition in saved]
        else:
            marks = ",".join("?" * len(TABLES))
            query = f"SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN ({marks})"  # noqa: S608
            cursor.execute(query, TABLES)
            saved = cursor.fetchall()
            for name, _ in saved:
                cursor.execute(f'DROP TRIGGER "{name}"')
            statements = [sql for _, sql in saved]
    assert statements
    yield
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def sql(statement: str, params: list[Any] | tuple[Any, ...] = ()) -> None:
    with triggers_dropped(), connection.cursor() as cursor:
        cursor.execute(statement, params)


def event_at(seq: int) -> int:
    return AuditSeal.objects.get(seq=seq).event_id


def first(**kwargs: Any) -> v.Problem:
    report = v.verify(**kwargs)
    assert not report.ok
    assert report.first is not None
    return report.first


def test_an_intact_log_verifies(log: list[AuditEvent]) -> None:
    report = v.verify()
    assert report.ok, report.problems
    assert report.events == 20 and report.checkpoints == 4
    out = StringIO()
    call_command("audit_verify", "--json", "--quiet", stdout=out)
    assert json.loads(out.getvalue())["ok"] is True


def test_a_modified_field_is_found(log: list[AuditEvent]) -> None:
    sql("UPDATE audit_auditevent SET detail = %s WHERE id = %s", ['{"i": 99, "b": [1, "x"]}', event_at(7)])
    assert (first().kind, first().seq) == (v.MODIFIED, 7)
    with pytest.raises(CommandError) as failure:
        call_command("audit_verify", "--quiet", stdout=StringIO())
    assert failure.value.returncode == 1 and "7" in str(failure.value)


def test_a_relabelled_actor_is_found(log: list[AuditEvent]) -> None:
    sql("UPDATE audit_auditevent SET actor_label = 'someone.else@test.example' WHERE id = %s", [event_at(12)])
    assert (first().kind, first().seq) == (v.MODIFIED, 12)


def test_a_deleted_event_is_found(log: list[AuditEvent]) -> None:
    sql("DELETE FROM audit_auditevent WHERE id = %s", [event_at(8)])
    assert (first().kind, first().seq) == (v.DELETED, 8)


def test_a_deleted_event_and_its_seal_are_found(log: list[AuditEvent]) -> None:
    sql("DELETE FROM audit_auditevent WHERE id = %s", [event_at(8)])
    sql("DELETE FROM audit_auditseal WHERE seq = 8")
    assert (first().kind, first().seq) == (v.DELETED, 8)


def test_deleted_last_events_and_seals_are_found(log: list[AuditEvent]) -> None:
    sql("DELETE FROM audit_auditevent WHERE id IN (SELECT event_id FROM audit_auditseal WHERE seq >= 19)")
    sql("DELETE FROM audit_auditseal WHERE seq >= 19")
    assert (first().kind, first().seq) == (v.DELETED, 19)


def test_an_inserted_back_dated_event_is_found(log: list[AuditEvent]) -> None:
    template = AuditEvent.objects.get(pk=event_at(4))
    with triggers_dropped():
        AuditEvent.objects.create(
            occurred_at=template.occurred_at - timedelta(days=1), action="patient.view", actor_label="forged", object_ids=[]
        )
    problem = first()
    assert (problem.kind, problem.seq) == (v.INSERTED, 21)


def test_swapped_events_are_found(log: list[AuditEvent]) -> None:
    a, b = AuditEvent.objects.get(pk=event_at(3)), AuditEvent.objects.get(pk=event_at(8))
    with triggers_dropped():
        fields = [f.name for f in AuditEvent._meta.fields if f.name not in {"id", "public_id"}]
        AuditEvent.objects.filter(pk=a.pk).update(public_id=timezone.now().strftime("%f").rjust(32, "0"))
        AuditEvent.objects.filter(pk=b.pk).update(public_id=a.public_id, **{f: getattr(a, f) for f in fields})
        AuditEvent.objects.filter(pk=a.pk).update(public_id=b.public_id, **{f: getattr(b, f) for f in fields})
    problem = first()
    assert (problem.kind, problem.seq) == (v.REORDERED, 3)


def test_swapped_seals_are_found(log: list[AuditEvent]) -> None:
    s6, s7 = AuditSeal.objects.get(seq=6), AuditSeal.objects.get(seq=7)
    with triggers_dropped():
        AuditSeal.objects.filter(seq=6).update(seq=-6)
        AuditSeal.objects.filter(seq=7).update(seq=6, chain_hash=s6.chain_hash)
        AuditSeal.objects.filter(seq=-6).update(seq=7, chain_hash=s7.chain_hash)
    problem = first()
    assert (problem.kind, problem.seq) == (v.REORDERED, 6)


def test_events_rewritten_with_recomputed_seals_are_found_by_the_signed_root(log: list[AuditEvent]) -> None:
    sql("UPDATE audit_auditevent SET actor_label = 'nobody' WHERE id = %s", [event_at(13)])
    with triggers_dropped():
        previous = AuditSeal.objects.get(seq=10).chain_hash
        for s in AuditSeal.objects.filter(seq__gte=11).order_by("seq"):
            digest = seal.content_hash(seal.canonical_event(AuditEvent.objects.get(pk=s.event_id)))
            previous = seal.chain(previous, digest)
            AuditSeal.objects.filter(pk=s.pk).update(content_hash=digest, chain_hash=previous)
    problem = first()
    assert (problem.kind, problem.seq) == (v.MODIFIED, 11)


def test_a_forged_checkpoint_signature_is_found(log: list[AuditEvent]) -> None:
    sql("UPDATE audit_auditcheckpoint SET signature = %s WHERE seq_last = 10", ["00" * 64])
    problem = first()
    assert (problem.kind, problem.seq) == (v.FORGED, 6)


def test_a_checkpoint_re_signed_with_another_key_is_found(log: list[AuditEvent], sealing: dict[str, Any], settings: Any) -> None:
    trusted = settings.RELAIS_AUDIT_SIGNING_KEY
    settings.RELAIS_AUDIT_SIGNING_KEY = sealcrypto._b64(b"\x07" * 32)  # the attacker's own key, not the trusted one
    for path in sealing["files"]:
        Path(path).unlink()
    with triggers_dropped():
        AuditCheckpoint.objects.all().delete()
    seal.seal_pending(checkpoint=True)
    settings.RELAIS_AUDIT_SIGNING_KEY = trusted
    problem = first()
    assert (problem.kind, problem.seq) == (v.FORGED, 1)


def test_a_checkpoint_deleted_from_the_database_is_found(log: list[AuditEvent]) -> None:
    sql("DELETE FROM audit_auditcheckpoint WHERE seq_last = 10")
    problem = first()
    assert (problem.kind, problem.seq) == (v.MISSING, 6)


def test_a_checkpoint_deleted_from_a_file_is_found(log: list[AuditEvent], sealing: dict[str, Any]) -> None:
    path = Path(sealing["files"][1])
    lines = path.read_text().splitlines()
    path.write_text("\n".join(line for line in lines if json.loads(line)["seq_last"] != 15) + "\n")
    problem = first()
    assert (problem.kind, problem.seq) == (v.MISSING, 11)


def test_a_forged_line_in_a_file_is_found(log: list[AuditEvent], sealing: dict[str, Any]) -> None:
    path = Path(sealing["files"][0])
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    lines[1]["merkle_root"] = "ab" * 32
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    problem = first()
    assert (problem.kind, problem.seq) == (v.FORGED, 6)


def test_an_event_left_unsealed_past_the_delay_is_found(log: list[AuditEvent], sealing: dict[str, Any]) -> None:
    with transaction.atomic():
        audit_record(actor=None, action="patient.view")
    assert v.verify().ok  # the sealer still has time
    problem = first(now=timezone.now() + timedelta(seconds=sealing["delay_seconds"] + 1))
    assert (problem.kind, problem.seq) == (v.UNSEALED, 21)


def test_sealed_events_left_without_a_checkpoint_are_found(db: Any, sealing: dict[str, Any]) -> None:
    with transaction.atomic():
        for _ in range(3):
            audit_record(actor=None, action="patient.view")
    seal.seal_pending()  # 3 < 5 events and younger than every_seconds: no checkpoint yet
    assert v.verify().ok
    problem = first(now=timezone.now() + timedelta(seconds=sealing["delay_seconds"] + sealing["every_seconds"] + 1))
    assert (problem.kind, problem.seq) == (v.MISSING, 1)


def test_an_event_committed_late_with_a_smaller_id_is_sealed_after(log: list[AuditEvent]) -> None:
    # Simulates a long transaction: its event got an id before events sealed already, and commits after them.
    late_id = min(e.pk for e in log) - 1
    assert not AuditEvent.objects.filter(pk=late_id).exists()
    AuditEvent.objects.create(id=late_id, occurred_at=timezone.now(), action="patient.view")
    seal.seal_pending(checkpoint=True)
    assert AuditSeal.objects.get(event_id=late_id).seq == 21
    assert v.verify().ok


def test_the_issue_scenario_is_detected(log: list[AuditEvent]) -> None:
    """Drop triggers, delete every event about one patient, relabel an actor, re-create triggers."""
    ids = list(AuditSubject.objects.filter(object_id=PATIENT).values_list("event_id", flat=True))
    assert len(ids) == 3
    relabelled = event_at(18)
    with triggers_dropped():
        AuditSubject.objects.filter(event_id__in=ids).delete()
        AuditEvent.objects.filter(id__in=ids).delete()
        AuditEvent.objects.filter(id=relabelled).update(actor_label="someone")
    out = StringIO()
    call_command("audit_query", "--object", PATIENT, stdout=out, stderr=out)
    assert "0 event(s)" in out.getvalue()  # what the issue saw: the query alone cannot tell
    report = v.verify()
    kinds = {(p.kind, p.seq) for p in report.problems}
    assert report.first == v.Problem(v.DELETED, 4, report.first.detail if report.first else "")
    assert {(v.DELETED, 4), (v.DELETED, 10), (v.DELETED, 15), (v.MODIFIED, 18)} <= kinds
    with pytest.raises(CommandError):
        call_command("audit_verify", "--quiet", stdout=StringIO())


def test_purged_segments_still_verify(log: list[AuditEvent]) -> None:
    report = seal.purge_sealed_segments(before=timezone.now() + timedelta(seconds=1))
    assert report["segments"] == 4
    seal.seal_pending(checkpoint=True)  # the audit.purge event
    result = v.verify()
    assert result.ok, result.problems
    assert result.purged_segments == 4 and result.first_seq == 21


def test_a_purge_permit_for_a_middle_segment_is_found(log: list[AuditEvent]) -> None:
    checkpoint = AuditCheckpoint.objects.get(seq_last=15)
    with connection.cursor() as cursor:  # no trigger dropped: only the permit opens the door
        cursor.execute(
            "INSERT INTO audit_auditpurgedsegment (seq_first, seq_last, checkpoint_hash, purged_at) VALUES (%s, %s, %s, %s)",
            [11, 15, checkpoint.checkpoint_hash, connection.ops.adapt_datetimefield_value(timezone.now())],
        )
        cursor.execute("DELETE FROM audit_auditevent WHERE id IN (SELECT event_id FROM audit_auditseal WHERE seq BETWEEN 11 AND 15)")
        cursor.execute("DELETE FROM audit_auditseal WHERE seq BETWEEN 11 AND 15")
    problem = first()
    assert (problem.kind, problem.seq) == (v.DELETED, 11)


def test_since_starts_at_a_signed_checkpoint(log: list[AuditEvent]) -> None:
    sql("UPDATE audit_auditevent SET action = 'x' WHERE id = %s", [event_at(2)])
    assert not v.verify().ok
    # The run starts after the last checkpoint signed before 'since' (here all four were signed at the same moment).
    signed_at = AuditCheckpoint.objects.get(seq_last=5).created_at
    assert not v.verify(since=signed_at).ok
    report = v.verify(since=signed_at + timedelta(microseconds=1))
    assert report.ok and report.first_seq == 21 and report.events == 0


def test_the_workers_cheap_round_also_finds_a_late_commit(log: list[AuditEvent]) -> None:
    late_id = min(e.pk for e in log) - 1
    AuditEvent.objects.create(id=late_id, occurred_at=timezone.now(), action="patient.view")
    assert seal.seal_pending(full=False, checkpoint=True).sealed == 1  # smaller id than the last sealed one, but recent
    assert AuditSeal.objects.get(event_id=late_id).seq == 21
    old_id = late_id - 1
    AuditEvent.objects.create(id=old_id, occurred_at=timezone.now() - timedelta(days=2), action="patient.view")
    assert seal.seal_pending(full=False).sealed == 0  # beyond the horizon: left to the full scan, and verify says so
    assert first().kind == v.INSERTED
    assert seal.seal_pending().sealed == 1
