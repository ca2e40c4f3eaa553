"""The queries that must stay fast as the database grows use the index meant for them, on SQLite and on PostgreSQL.

Each test runs the real selector or service, captures the exact SQL it sends (``connection.execute_wrapper``), asks the
database for its plan and asserts the intended index by name. SQLite: EXPLAIN QUERY PLAN without ANALYZE, as a
production file has (its planner then goes by the shape of the query and the indexes alone). PostgreSQL: a history of
a thousand patients and tests, settled queue rows and audit events of hundreds of pharmacies, ANALYZE, then EXPLAIN
(FORMAT JSON) with sequential scans disabled, so the planner chooses among indexes on realistic costs. Dropping one of
these indexes makes its test fail on both (checked by dropping each inside a test's transaction).
"""

from __future__ import annotations

import json
import random
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, models
from django.utils import timezone

from relais.accounts.models import User
from relais.audit.models import AuditEvent, AuditSubject
from relais.audit.selectors import EventFilters, filtered, page_of, who_touched
from relais.frontdesk.selectors import day_figures, today_list_version
from relais.intake.services import screening_intake
from relais.notify.models import Notification, NotificationStatus
from relais.notify.services import notify_claim
from relais.patients.models import Patient
from relais.screenings.models import Screening
from relais.screenings.selectors import screenings_today
from relais.submissions.models import Submission, SubmissionKind, SubmissionStatus
from relais.submissions.services import submission_claim_queued
from relais.transfer.models import OutboxMessage, TransferStatus, new_message_id
from relais.transfer.services import outbox_claim
from relais.webhooks.delivery import webhook_claim
from relais.webhooks.models import WebhookDelivery
from tests.factories import identity, screening_input

pytestmark = pytest.mark.django_db
PATIENTS = 1000
AUDIT_EVENTS = 3000


@dataclass(frozen=True)
class Statement:
    sql: str
    params: Any

    @property
    def where(self) -> str:
        return self.sql.split(" WHERE ", 1)[1] if " WHERE " in self.sql else ""


def captured(run: Callable[[], Any]) -> list[Statement]:
    """Every statement ``run`` sends, exactly as sent (SQL with placeholders, parameters)."""
    statements: list[Statement] = []

    def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        statements.append(Statement(sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        run()
    return statements


def selects(statements: list[Statement], model: type[models.Model], *in_where: str) -> list[Statement]:
    """The SELECTs reading ``model``'s table whose WHERE clause names every column in ``in_where``."""
    table = connection.ops.quote_name(model._meta.db_table)
    return [
        s
        for s in statements
        if s.sql.lstrip().upper().startswith("SELECT") and f"FROM {table}" in s.sql and all(c in s.where for c in in_where)
    ]


@contextmanager
def _no_seqscan() -> Iterator[None]:
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        try:
            yield
        finally:
            cursor.execute("RESET enable_seqscan")


def _walk(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _walk(child)


def plan(statement: Statement) -> tuple[set[str], str]:
    """(names of the indexes the plan reads, the plan as text for the failure message)."""
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN QUERY PLAN " + statement.sql, statement.params)
            details = [row[3] for row in cursor.fetchall()]
        names = {m.group(1) for d in details for m in re.finditer(r"USING (?:COVERING )?INDEX (\S+)", d)}
        names |= {"<primary key>" for d in details if "USING INTEGER PRIMARY KEY" in d or "USING PRIMARY KEY" in d}
        return names, "\n".join(details)
    with _no_seqscan(), connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + statement.sql, statement.params)
        document = cursor.fetchone()[0]
    document = json.loads(document) if isinstance(document, str) else document
    nodes = list(_walk(document[0]["Plan"]))
    return {n["Index Name"] for n in nodes if "Index Name" in n}, json.dumps(document, indent=1)


def index_name(model: type[models.Model], fields: list[str]) -> str:
    """The name of ``model``'s Meta index on exactly ``fields`` (KeyError when it was removed)."""
    for index in model._meta.indexes:
        if list(index.fields) == fields:
            return str(index.name)
    raise KeyError(f"{model.__name__} has no index on {fields}")


def indexes_leading_with(model: type[models.Model], *columns: str) -> set[str]:
    """The database's indexes on ``model`` whose first columns are ``columns``, read back from the schema."""
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, model._meta.db_table)
    return {name for name, info in constraints.items() if info["index"] and info["columns"][: len(columns)] == list(columns)}


def assert_uses(statement: Statement, expected: str | set[str]) -> None:
    """The plan reads ``expected`` (or one of them)."""
    wanted = {expected} if isinstance(expected, str) else expected
    names, text = plan(statement)
    assert names & wanted, f"expected {sorted(wanted)}, the plan reads {sorted(names) or 'no index'}:\n{statement.sql}\n{text}"


# --- A database with some history, so the planner's choice means something -------------------------------------------


def _copies(obj: models.Model, count: int, vary: Callable[[int], dict[str, Any]]) -> list[Any]:
    """``count`` unsaved copies of ``obj`` with new primary keys and the fields ``vary(i)`` gives."""
    model = type(obj)
    base = {f.attname: getattr(obj, f.attname) for f in model._meta.concrete_fields if not f.primary_key}
    return [model(**{**base, **vary(i)}) for i in range(count)]


def _set_in_chunks(model: type[models.Model], rows: list[Any], field: str, value: Callable[[int], Any]) -> None:
    """Spread ``field`` over the rows (auto_now_add fields are set to now by bulk_create), 20 updates in all."""
    for chunk in range(20):
        ids = [r.pk for r in rows[chunk::20]]
        model._default_manager.filter(pk__in=ids).update(**{field: value(chunk)})


@pytest.fixture
def history(owner: User, stranger: User, screening: Screening) -> None:
    """Two pharmacies' patients, tests over 90 days, settled outbox rows and messages, audit events of many accounts.

    PostgreSQL only: SQLite plans without statistics (no ANALYZE, as in production), so the number of rows changes nothing."""
    if connection.vendor != "postgresql":
        return
    rng = random.Random(13)
    now = timezone.now()
    pharmacies = [owner.pharmacy_id, stranger.pharmacy_id]
    patients = Patient.objects.bulk_create(
        _copies(
            screening.patient,
            PATIENTS,
            lambda i: {
                "pharmacy_id": pharmacies[i % 2],
                "identity_index": f"{rng.getrandbits(256):064x}",
                "nir_index": f"{rng.getrandbits(256):064x}",
            },
        )
    )
    tests = Screening.objects.bulk_create(
        _copies(
            screening,
            PATIENTS,
            lambda i: {
                "patient_id": patients[i].pk,
                "pharmacy_id": patients[i].pharmacy_id,
                "series_id": uuid.uuid4(),
                "sampled_at": now - timedelta(days=i % 90, minutes=i),
            },
        )
    )
    _set_in_chunks(Screening, tests, "recorded_at", lambda chunk: now - timedelta(days=1 + chunk * 4))
    outbox = screening.outbox.get()
    OutboxMessage.objects.bulk_create(
        _copies(
            outbox,
            PATIENTS,
            lambda i: {
                "screening_id": tests[i].pk,
                "series_id": tests[i].series_id,
                "pharmacy_id": tests[i].pharmacy_id,
                "message_id": new_message_id(),
                "status": TransferStatus.ACKNOWLEDGED,
                "next_attempt_at": now - timedelta(days=i % 90),
                "acknowledged_at": now - timedelta(days=i % 90),
            },
        )
    )
    notification = Notification.objects.filter(screening=screening).first()
    assert notification is not None, "the screening fixture's patient has a contact"
    Notification.objects.bulk_create(
        _copies(
            notification,
            PATIENTS,
            lambda i: {
                "screening_id": tests[i].pk,
                "patient_id": tests[i].patient_id,
                "pharmacy_id": tests[i].pharmacy_id,
                "series_id": tests[i].series_id,
                "status": NotificationStatus.SENT,
                "next_attempt_at": now - timedelta(days=i % 90),
            },
        )
    )
    Submission.objects.bulk_create(
        Submission(pharmacy_id=pharmacies[i % 2], submitted_by=owner, kind=SubmissionKind.CSV, status=SubmissionStatus.DONE)
        for i in range(PATIENTS)
    )
    # Many pharmacies and accounts, so one of them is a small part of the log: the case the indexes are for.
    accounts = [uuid.uuid4() for _ in range(200)]
    other_pharmacies = [uuid.uuid4() for _ in range(200)]
    events = AuditEvent.objects.bulk_create(
        AuditEvent(
            occurred_at=now - timedelta(minutes=i),
            actor_id=accounts[i % 200],
            pharmacy_id=(pharmacies + other_pharmacies)[i % 202],
            action="screening.view",
            object_type="screening",
            object_ids=[],
        )
        for i in range(AUDIT_EVENTS)
    )
    if events[0].pk is None:  # SQLite before 3.35 gives no ids back
        events = list(AuditEvent.objects.order_by("-id")[:AUDIT_EVENTS])
    AuditSubject.objects.bulk_create(AuditSubject(event_id=e.pk, object_id=uuid.uuid4()) for e in events)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


# --- The duplicate lookups of intake ---------------------------------------------------------------------------------


def test_patient_duplicate_lookup_uses_the_blind_index_indexes(owner: User, history: None) -> None:
    screening_intake(actor=owner, data=screening_input(), identity=identity())  # a registered patient to look up
    statements = captured(lambda: screening_intake(actor=owner, data=screening_input(), identity=identity(first_names="Léa")))
    by_identity = selects(statements, Patient, "identity_index")
    by_nir = selects(statements, Patient, "nir_index")
    assert by_identity and by_nir, "intake of an identity with a NIR looks up both blind indexes"
    # Blind index values are salted per pharmacy, so an index led by the blind index is as selective as the pair; the
    # wrong plan is one led by pharmacy_id, which reads every patient of the pharmacy (what SQLite did before 0002).
    for statement in by_identity:
        assert_uses(statement, {"patient_pharmacy_identity", *indexes_leading_with(Patient, "identity_index")})
    for statement in by_nir:
        assert_uses(statement, {"patient_pharmacy_nir", *indexes_leading_with(Patient, "nir_index")})


def test_earlier_duplicate_lookup_uses_the_patient_sampled_index(owner: User, history: None) -> None:
    first = screening_intake(actor=owner, data=screening_input(), identity=identity())
    statements = captured(lambda: screening_intake(actor=owner, data=screening_input(), patient_id=first.screening.patient_id))
    lookups = selects(statements, Screening, "sampled_at")
    assert lookups, "intake looks for the same test recorded earlier"
    for statement in lookups:
        assert_uses(statement, "screening_patient_sampled")


# --- The pharmacy's list of today's tests ----------------------------------------------------------------------------


def test_today_list_uses_the_pharmacy_recorded_index(owner: User, history: None) -> None:
    statements = selects(captured(lambda: screenings_today(actor=owner)), Screening, "recorded_at")
    assert len(statements) == 1
    assert_uses(statements[0], "screening_pharmacy_recorded")


def test_day_figures_use_the_recorded_and_status_indexes(owner: User, history: None) -> None:
    statements = captured(lambda: day_figures(actor=owner))
    (tests,) = selects(statements, Screening, "recorded_at")
    # A range over the last days, never a walk of the pharmacy's history. PostgreSQL, knowing this history holds only two
    # pharmacies, may range over recorded_at alone; SQLite (no statistics) must take the pharmacy's range.
    by_range = {"screening_pharmacy_recorded"}
    if connection.vendor == "postgresql":
        by_range |= indexes_leading_with(Screening, "recorded_at")
    assert_uses(tests, by_range)
    (rejections,) = selects(statements, OutboxMessage, "rejected_at")
    assert_uses(rejections, index_name(OutboxMessage, ["status", "next_attempt_at"]))  # the few rejected, not the history
    (failures,) = selects(statements, Notification, "failed_at")
    assert_uses(failures, index_name(Notification, ["status", "next_attempt_at"]))


def test_today_list_fingerprint_reads_the_day_not_the_history(owner: User, history: None) -> None:
    """Asked every 30 s by every open home page: today's tests by range, their messages through the screening index."""
    statements = captured(lambda: today_list_version(actor=owner))
    (tests, outbox, messages, outage) = statements
    assert "transfer_destinationhealth" in outage.sql  # a table of one row per destination: no history to range over
    assert_uses(tests, "screening_pharmacy_recorded")
    for statement in (outbox, messages):
        names, text = plan(statement)
        assert "screening_pharmacy_recorded" in names, text
        assert any("screening_id" in n for n in names), text  # the queue rows of those tests, by their screening


# --- The queues' claims ----------------------------------------------------------------------------------------------


def test_outbox_claim_uses_the_status_due_index(history: None) -> None:
    statements = selects(captured(lambda: outbox_claim(owner="plan-test", limit=10)), OutboxMessage, "lease_until")
    assert statements
    assert_uses(statements[0], index_name(OutboxMessage, ["status", "next_attempt_at"]))


def test_notification_claim_uses_the_status_due_index(history: None) -> None:
    statements = selects(captured(lambda: notify_claim(owner="plan-test", limit=10)), Notification, "lease_until")
    assert statements
    assert_uses(statements[0], index_name(Notification, ["status", "next_attempt_at"]))


def test_webhook_claim_uses_the_status_due_index(db: Any) -> None:
    statements = selects(captured(lambda: webhook_claim(owner="plan-test", limit=10)), WebhookDelivery, "lease_until")
    assert statements
    assert_uses(statements[0], index_name(WebhookDelivery, ["status", "next_attempt_at"]))


def test_csv_submission_claim_uses_the_status_created_index(db: Any) -> None:
    statements = selects(captured(lambda: submission_claim_queued(owner="plan-test")), Submission, "lease_until")
    assert statements
    assert_uses(statements[0], index_name(Submission, ["status", "created_at"]))


# --- The audit log ---------------------------------------------------------------------------------------------------


def test_audit_list_of_one_pharmacy_uses_the_pharmacy_index(owner: User, history: None) -> None:
    statements = captured(lambda: page_of(filtered(scope=owner.pharmacy_id, filters=EventFilters()), after=None, size=50))
    (statement,) = selects(statements, AuditEvent, "pharmacy_id")
    assert_uses(statement, "audit_event_pharmacy")


def test_audit_list_of_one_account_uses_the_actor_index(owner: User, history: None) -> None:
    statements = captured(lambda: page_of(filtered(scope=None, filters=EventFilters(actor_id=owner.pk)), after=None, size=50))
    (statement,) = selects(statements, AuditEvent, "actor_id")
    assert_uses(statement, "audit_event_actor")


def test_who_accessed_a_patient_uses_the_subject_index(screening: Screening, history: None) -> None:
    statements = captured(lambda: who_touched([screening.patient_id]))
    (subjects,) = selects(statements, AuditSubject, "object_id")
    assert_uses(subjects, "audit_subject_object")


# --- Patient search (issue 15) ---------------------------------------------------------------------------------------

_SEARCH_COLUMNS = (
    "surname_index",
    "surname_head_index",
    "surname_tail_index",
    "surname_sound_index",
    "full_name_index",
    "birth_date_index",
    "phone_index",
)


@pytest.fixture
def search_history(history: None) -> None:
    """The history's patients with search indexes of their own (copies share the fixture patient's), then ANALYZE."""
    if connection.vendor != "postgresql":
        return
    table = connection.ops.quote_name(Patient._meta.db_table)
    sets = ", ".join(f"{connection.ops.quote_name(c)} = substr(md5(id::text || '{c}'), 1, 4)" for c in _SEARCH_COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET {sets} WHERE created_by_id IS NOT NULL")  # noqa: S608
        cursor.execute("ANALYZE")


def _search_statements(actor: User, **query: Any) -> list[Statement]:
    from relais.patients.search import SearchQuery, patient_search

    return selects(captured(lambda: patient_search(actor=actor, query=SearchQuery(**query))), Patient, "pharmacy_id")


def test_patient_search_by_name_uses_the_search_indexes(owner: User, search_history: None) -> None:
    screening_intake(actor=owner, data=screening_input(), identity=identity())
    columns = {
        "surname_index": "patient_search_surname",
        "surname_head_index": "patient_search_head",
        "surname_tail_index": "patient_search_tail",
        "surname_sound_index": "patient_search_sound",
        "full_name_index": "patient_search_full_name",
    }
    for query, expected in (({"last_name": "Durand"}, 4), ({"last_name": "Durand", "first_names": "Camille"}, 5)):
        statements = _search_statements(owner, **query)
        assert len(statements) == expected, "one lookup per name index"
        for statement in statements:
            (column,) = [c for c in columns if f'"{c}"' in statement.where]
            assert_uses(statement, columns[column])


@pytest.mark.parametrize(
    ("query", "index"),
    [
        ({"date_of_birth": identity().date_of_birth}, "patient_search_birth_date"),
        ({"last_name": "Durand", "date_of_birth": identity().date_of_birth}, "patient_search_birth_date"),
        ({"phone": "+33612345678"}, "patient_search_phone"),
        ({"nir": "294037512000591"}, "patient_pharmacy_nir"),
    ],
)
def test_patient_search_by_birth_date_phone_or_nir_uses_its_index(owner: User, search_history: None, query: Any, index: str) -> None:
    screening_intake(actor=owner, data=screening_input(), identity=identity())
    (statement,) = _search_statements(owner, **query)
    assert_uses(statement, {index, *(indexes_leading_with(Patient, "nir_index") if index == "patient_pharmacy_nir" else ())})


@pytest.fixture
def busy_week(history: None, screening: Screening) -> None:
    """PostgreSQL: 80 days of tests of a hundred other pharmacies, so one pharmacy's week is a small part of the table."""
    if connection.vendor != "postgresql":
        return
    from relais.accounts.models import Pharmacy

    pharmacy = screening.pharmacy
    others = Pharmacy.objects.bulk_create(_copies(pharmacy, 100, lambda i: {"id": uuid.uuid4(), "finess": f"99{i:07d}"}))
    now = timezone.now()
    Screening.objects.bulk_create(_copies(screening, 3000, lambda i: {"pharmacy_id": others[i % 100].pk, "series_id": uuid.uuid4()}))
    rows = list(Screening.objects.filter(pharmacy_id__in=[p.pk for p in others]))
    _set_in_chunks(Screening, rows, "recorded_at", lambda chunk: now - timedelta(days=chunk * 4, minutes=5))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


@pytest.mark.parametrize("period", ["day", "week"])
def test_patients_tested_today_or_this_week_use_the_pharmacy_recorded_index(owner: User, busy_week: None, period: str) -> None:
    from relais.patients.selectors import patients_tested

    statements = selects(captured(lambda: patients_tested(actor=owner, period=period)), Screening, "recorded_at")
    assert len(statements) == 1
    assert_uses(statements[0], "screening_pharmacy_recorded")
