"""What a breach could have exposed: which patients (as letter rows, never as identities), which data categories, how
many tests, results and records. Read from the audit log (events of an account, an API client, a pharmacy) and from
the data itself (everything held, or every row encrypted under one data key).

The patients concerned are materialised once, as the case's letter rows; every figure is then a join on them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.apps import apps
from django.db import connection, models
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from relais.accounts.models import Pharmacy, User
from relais.api.models import ApiClient
from relais.audit.models import AuditEvent, AuditSubject
from relais.breach.models import BreachCase, BreachLetter, LetterStatus, Selector
from relais.certificates.models import Certificate
from relais.core import crypto
from relais.core.fields import encrypted_field_names
from relais.core.models import DataKey
from relais.notify.models import Notification, ResultLink
from relais.patients.models import Patient
from relais.screenings.models import Screening, ScreeningResult
from relais.screenings.vocab import RESULT_DETECTED
from relais.submissions.models import SubmissionItem
from relais.transfer.models import OutboxMessage

CHUNK = 5000  # ids per IN (...) list: well under SQLite's variable limit

# Data categories, in the order the drafts list them.
CATEGORIES = ("identity", "nir", "contact", "tests", "certificates", "messages", "uploads", "other")

# What an audited action shows of a patient (its prefix decides when the whole name is not listed).
_ACTION_CATEGORIES: dict[str, tuple[str, ...]] = {
    "patient.search": ("identity",),
    "patient.match": ("identity",),
    "patient.duplicate_check": ("identity",),
    "patient.review_list": ("identity",),
    "patient.update_contact": ("contact",),
    "patient.view_contact": ("identity", "contact"),
    "patient.": ("identity", "nir", "contact"),
    "screening.list": ("identity", "tests"),
    "screening.": ("identity", "tests", "certificates"),
    "result.": ("identity", "tests", "certificates"),
    "notification.": ("contact", "messages"),
    "submission.": ("identity", "tests", "uploads"),
    "crypto.reencrypt": ("identity", "nir", "contact"),
}

# Which category each encrypted column holds (table, column); a column not listed counts as "other".
_COLUMN_CATEGORIES: dict[tuple[str, str], str] = {
    **{("patients_patient", c): "identity" for c in ("last_name", "first_names", "sex", "date_of_birth")},
    ("patients_patient", "nir"): "nir",
    **{("patients_patient", c): "contact" for c in ("address_line", "postcode", "city", "country", "phone", "email")},
    ("screenings_screening", "correction_reason"): "tests",
    ("notify_notification", "address"): "contact",
    ("notify_notification", "link_url"): "messages",
    ("certificates_certificate", "hc1"): "certificates",
    ("submissions_submission", "file_name"): "uploads",
    ("submissions_submission", "content"): "uploads",
    ("submissions_submissionitem", "errors"): "uploads",
}


class ScopeError(ValueError):
    """The selector names nothing Relais knows (no such account, client, pharmacy or key)."""


@dataclass(frozen=True)
class Target:
    """What was compromised: kind, the stored reference (a UUID, FINESS or key id) and the rows it resolves to."""

    kind: str
    ref: str = ""
    actor_id: uuid.UUID | None = None
    pharmacy: Pharmacy | None = None
    key_known: bool = True

    @property
    def from_events(self) -> bool:
        return self.kind in (Selector.ACCOUNT, Selector.API_CLIENT)


def resolve_target(*, kind: str, value: str = "") -> Target:
    """Turn the command's selector into a Target, or ScopeError."""
    if kind == Selector.ACCOUNT:
        user = User.objects.filter(email=value.strip().lower()).first()
        if user is None:
            raise ScopeError("no staff account with that email")
        return Target(kind=kind, ref=str(user.pk), actor_id=user.pk)
    if kind == Selector.API_CLIENT:
        try:
            client = ApiClient.objects.get(pk=uuid.UUID(value.strip()))
        except (ValueError, ApiClient.DoesNotExist) as exc:
            raise ScopeError("no API client with that id") from exc
        return Target(kind=kind, ref=str(client.pk), actor_id=client.service_user_id, pharmacy=client.pharmacy)
    if kind == Selector.PHARMACY:
        pharmacy = Pharmacy.objects.filter(finess=value.strip()).first()
        if pharmacy is None:
            raise ScopeError("no pharmacy with that FINESS number")
        return Target(kind=kind, ref=pharmacy.finess, pharmacy=pharmacy)
    if kind == Selector.KEY_ID:
        key_id = value.strip()
        if not key_id or "." in key_id or len(key_id) > 64:
            raise ScopeError("not a data key id")
        # A destroyed key can still have been copied before: its rows are looked for all the same.
        return Target(kind=kind, ref=key_id, key_known=DataKey.objects.filter(key_id=key_id).exists())
    if kind == Selector.ALL:
        return Target(kind=kind)
    raise ScopeError(f"unknown selector {kind}")


def window_events(*, since: datetime, until: datetime) -> QuerySet[AuditEvent]:
    """Events in [since, until): the start is included, the end is not."""
    return AuditEvent.objects.filter(occurred_at__gte=since, occurred_at__lt=until)


def target_events(target: Target, *, since: datetime, until: datetime) -> QuerySet[AuditEvent]:
    events = window_events(since=since, until=until)
    if target.from_events:
        return events.filter(actor_id=target.actor_id)
    if target.kind == Selector.PHARMACY:
        assert target.pharmacy is not None
        return events.filter(pharmacy_id=target.pharmacy.pk)
    if target.kind == Selector.ALL:
        return events
    return events.none()  # a key is not an actor: its exposure is read from the data


def _chunks(values: Iterable[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for value in values:
        batch.append(value)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _patients_named(object_ids: set[uuid.UUID]) -> set[uuid.UUID]:
    """The patients an event's objects lead to: the patient itself, or the one a test, message, link, transmission,
    certificate or uploaded file's rows belong to."""
    found: set[uuid.UUID] = set()
    lookups: list[tuple[QuerySet[Any], str, str]] = [
        (Patient.objects.all(), "id", "id"),
        (Screening.objects.all(), "id", "patient_id"),
        (Notification.objects.all(), "id", "patient_id"),
        (ResultLink.objects.all(), "id", "patient_id"),
        (OutboxMessage.objects.all(), "id", "screening__patient_id"),
        (Certificate.objects.all(), "id", "screening__patient_id"),
        (SubmissionItem.objects.filter(screening__isnull=False), "submission_id", "screening__patient_id"),
    ]
    for chunk in _chunks(object_ids):
        for queryset, key, patient in lookups:
            found.update(queryset.filter(**{f"{key}__in": chunk}).values_list(patient, flat=True))
    return found


def _kept_records(patient_ids: set[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
    """patient id -> pharmacy id, a merged duplicate replaced by the record it was merged into (one letter per person)."""
    rows: dict[uuid.UUID, uuid.UUID] = {}
    for chunk in _chunks(patient_ids):
        for pk, merged_into, pharmacy in Patient.objects.filter(id__in=chunk).values_list("id", "merged_into_id", "pharmacy_id"):
            rows[merged_into or pk] = pharmacy
    return rows


def _key_condition(model: type[models.Model], prefix: str) -> Q | None:
    names = encrypted_field_names(model)
    if not names:
        return None
    condition = Q()
    for name in names:
        condition |= Q(**{f"{name}__startswith": prefix})
    return condition


def key_prefix(key_id: str) -> str:
    return f"{crypto.PREFIX}.{key_id}."


def _patients_under_key(prefix: str) -> QuerySet[Patient]:
    """Patients with any value encrypted under the key, directly or in a row that belongs to them."""
    direct = _key_condition(Patient, prefix) or Q(pk__in=[])
    via = (
        Q(id__in=Screening.objects.filter(correction_reason__startswith=prefix).values("patient_id"))
        | Q(id__in=Notification.objects.filter(Q(address__startswith=prefix) | Q(link_url__startswith=prefix)).values("patient_id"))
        | Q(id__in=Certificate.objects.filter(hc1__startswith=prefix).values("screening__patient_id"))
        | Q(id__in=SubmissionItem.objects.filter(errors__startswith=prefix, screening__isnull=False).values("screening__patient_id"))
    )
    return Patient.objects.filter(direct | via)


# SQLite page cache for one report, in KiB: holds the letter indexes and the patient key index a million rows touch
# (the default 2 MB rereads them from disk at every row). Only used as pages are read; restored afterwards.
SQLITE_CACHE_KIB = 512 * 1024


@contextmanager
def large_cache() -> Iterator[None]:
    """On SQLite, a large page cache on this connection while the report runs; nothing elsewhere."""
    if connection.vendor != "sqlite":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA cache_size")
        before = int(cursor.fetchone()[0])
        cursor.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA cache_size = {before}")


def _ordered_uuid_sql() -> str:
    """A UUIDv7 per row: this millisecond, a 24-bit row counter (RFC 9562 method 1), then 48 random bits. Rows written in
    id order append to the primary key index instead of landing at random pages of it (a million letters at once)."""
    if connection.vendor == "postgresql":
        return (
            "CAST(lpad(to_hex(%s::bigint), 12, '0') || '7' || lpad(to_hex(((q.n >> 12) & 4095)::int), 3, '0') || '8' "
            "|| lpad(to_hex((q.n & 4095)::int), 3, '0') || substr(md5(gen_random_uuid()::text), 1, 12) AS uuid)"
        )
    # SQLite stores a UUIDField as 32 hex digits.
    return "printf('%%012x7%%03x8%%03x', %s, (q.n >> 12) & 4095, q.n & 4095) || lower(hex(randomblob(6)))"


def _insert_letters_from(case: BreachCase, patients: QuerySet[Any]) -> int:
    """One draft letter per row of ``patients`` (values: kept, pharmacy_id), in one INSERT ... SELECT: a million in seconds.
    Rows come out of the window in patient order with ids rising alike, so both indexes mostly grow at their end (an
    order the database does not promise: only the speed depends on it)."""
    select_sql, params = patients.query.sql_with_params()
    table = BreachLetter._meta.db_table
    now = timezone.now()
    case_id = case.pk if connection.features.has_native_uuid_field else case.pk.hex
    sql = (
        f"INSERT INTO {table} (id, case_id, patient_id, pharmacy_id, status, created_at, channel, attempts, lease_owner, "  # noqa: S608 - fixed names
        f"error_count, last_error, provider_id) SELECT {_ordered_uuid_sql()}, %s, q.kept, q.pharmacy_id, %s, %s, '', 0, '', 0, '', '' "
        f"FROM (SELECT p.kept, p.pharmacy_id, row_number() OVER (ORDER BY p.kept) - 1 AS n FROM ({select_sql}) p) q"
    )
    millis = int(now.timestamp() * 1000)
    with connection.cursor() as cursor:
        cursor.execute(sql, [millis, case_id, LetterStatus.DRAFT, connection.ops.adapt_datetimefield_value(now), *params])
        return int(cursor.rowcount)


def _insert_letters(case: BreachCase, kept: dict[uuid.UUID, uuid.UUID]) -> int:
    now = timezone.now()
    letters = (BreachLetter(case=case, patient_id=p, pharmacy_id=ph, created_at=now) for p, ph in kept.items())
    count = 0
    for batch in _chunks(letters, 2000):
        BreachLetter.objects.bulk_create(batch)
        count += len(batch)
    return count


@dataclass
class Exposure:
    """What ``collect`` found: letters written (one per patient), categories seen, counts of the events and encrypted rows."""

    letters: int = 0
    categories: set[str] = field(default_factory=set)
    events: int = 0
    events_by_action: dict[str, int] = field(default_factory=dict)
    encrypted_rows: dict[str, int] = field(default_factory=dict)


def categories_of_actions(actions: Iterable[str]) -> set[str]:
    found: set[str] = set()
    for action in actions:
        match = _ACTION_CATEGORIES.get(action)
        if match is None:
            prefix = next((p for p in _ACTION_CATEGORIES if p.endswith(".") and action.startswith(p)), None)
            match = _ACTION_CATEGORIES[prefix] if prefix else ()
        found.update(match)
    return found


def _held(until: datetime, pharmacy: Pharmacy | None) -> QuerySet[Patient]:
    """Every patient record held during the window (registered before its end), merged duplicates left out."""
    held = Patient.objects.filter(created_at__lt=until, merged_into__isnull=True)
    return held.filter(pharmacy=pharmacy) if pharmacy is not None else held


def _encrypted_rows(prefix: str) -> tuple[dict[str, int], set[str]]:
    """Rows and categories under one data key, for every model with encrypted fields (new ones included)."""
    rows: dict[str, int] = {}
    categories: set[str] = set()
    for model in apps.get_models():
        names = encrypted_field_names(model)
        if not names:
            continue
        table = model._meta.db_table
        counts = model._default_manager.aggregate(
            **{f"n_{name}": Count("pk", filter=Q(**{f"{name}__startswith": prefix})) for name in names},
            n_any=Count("pk", filter=_key_condition(model, prefix)),
        )
        if counts["n_any"]:
            rows[model._meta.label_lower] = counts["n_any"]
            for name in names:
                if counts[f"n_{name}"]:
                    column = str(model._meta.get_field(name).column)  # type: ignore[union-attr]
                    categories.add(_COLUMN_CATEGORIES.get((table, column), "other"))
    return rows, categories


def collect(case: BreachCase, target: Target) -> Exposure:
    """Write the case's draft letters (one per patient concerned) and gather what the figures need. Runs in the case's
    transaction."""
    exposure = Exposure()
    events = target_events(target, since=case.since, until=case.until)
    by_action = dict(events.values_list("action").annotate(n=Count("id")).values_list("action", "n"))
    exposure.events_by_action = {k: by_action[k] for k in sorted(by_action)}
    exposure.events = sum(by_action.values())
    if target.from_events:
        subjects = AuditSubject.objects.filter(event_id__in=events.values("id")).values_list("object_id", flat=True)
        named = _patients_named(set(subjects.iterator(chunk_size=CHUNK)))
        exposure.letters = _insert_letters(case, _kept_records(named))
        exposure.categories = categories_of_actions(by_action)
    elif target.kind in (Selector.PHARMACY, Selector.ALL):
        held = _held(case.until, target.pharmacy).annotate(kept=models.F("id")).values("kept", "pharmacy_id")
        exposure.letters = _insert_letters_from(case, held)
        if exposure.letters:
            exposure.categories = {"identity", "nir", "contact"}
        exposure.categories |= categories_of_actions(by_action)
    else:
        prefix = key_prefix(target.ref)
        patients = _patients_under_key(prefix).annotate(kept=Coalesce("merged_into_id", "id")).values("kept", "pharmacy_id").distinct()
        exposure.letters = _insert_letters_from(case, patients)
        exposure.encrypted_rows, exposure.categories = _encrypted_rows(prefix)
    return exposure


def letter_patients(case: BreachCase) -> QuerySet[BreachLetter]:
    return BreachLetter.objects.filter(case=case)


def figures(case: BreachCase, target: Target, exposure: Exposure) -> dict[str, Any]:
    """Counts by pharmacy, tests, results and records of the patients concerned (joins on the case's letters)."""
    # COUNT(*) is answered from the (case, pharmacy) index alone.
    by_pharmacy = list(letter_patients(case).values("pharmacy_id").annotate(n=Count("*")).order_by("-n", "pharmacy_id"))
    names = {p.pk: p for p in Pharmacy.objects.filter(pk__in=[row["pharmacy_id"] for row in by_pharmacy])}
    # The tests concerned, as lookups on a screening; results and certificates join to it rather than build an IN list.
    where: dict[str, Any] = {"recorded_at__lt": case.until}
    if target.kind in (Selector.PHARMACY, Selector.ALL):
        # Everything held: filter the tables directly rather than through a million-row IN list.
        if target.pharmacy is not None:
            where["pharmacy"] = target.pharmacy
    else:
        where["patient_id__in"] = letter_patients(case).values("patient_id")
    joined = {f"screening__{lookup}": value for lookup, value in where.items()}
    # Grouping by series walks its index; COUNT(DISTINCT) would build a temporary tree of every series id.
    series = Screening.objects.filter(**where).values("series_id").annotate(versions=Count("*")).order_by()
    tests = series.aggregate(tests=Count("*"), records=Coalesce(Sum("versions"), 0))
    results = (
        ScreeningResult.objects.filter(screening__is_current=True, **joined)
        .values("analyte", "result")
        .annotate(n=Count("*"))
        .order_by("analyte", "result")
    )
    certificates = Certificate.objects.filter(**joined).count()
    result_rows = [{"analyte": r["analyte"], "result": r["result"], "count": r["n"]} for r in results]
    categories = set(exposure.categories)
    if tests["records"] and target.kind != Selector.KEY_ID and not target.from_events:
        categories.add("tests")
    if certificates and target.kind in (Selector.PHARMACY, Selector.ALL):
        categories.add("certificates")
    if target.kind == Selector.KEY_ID and exposure.letters and tests["records"]:
        categories.add("tests")  # results are stored in clear, linked to identities the key opens
    return {
        "case": str(case.pk),
        "selector": {"kind": target.kind, "ref": target.ref, **({"key_known": target.key_known} if target.kind == Selector.KEY_ID else {})},
        "window": {"since": case.since.isoformat(), "until": case.until.isoformat(), "end_excluded": True},
        "discovered_at": case.discovered_at.isoformat(),
        "patients": {
            "total": exposure.letters,
            "by_pharmacy": [
                {
                    "pharmacy": str(row["pharmacy_id"]),
                    "finess": names[row["pharmacy_id"]].finess if row["pharmacy_id"] in names else "",
                    "name": names[row["pharmacy_id"]].name if row["pharmacy_id"] in names else "",
                    "patients": row["n"],
                }
                for row in by_pharmacy
            ],
        },
        "categories": [c for c in CATEGORIES if c in categories],
        "tests": {
            "tests": tests["tests"],
            "records": tests["records"],
            "positive": sum(r["count"] for r in result_rows if r["result"] == RESULT_DETECTED),
            "results": result_rows,
        },
        "records": {"patients": exposure.letters, "test_versions": tests["records"], "certificates": certificates},
        "events": {"total": exposure.events, "by_action": exposure.events_by_action},
        "encrypted_rows": exposure.encrypted_rows,
        "letters": {"draft": exposure.letters},
    }
