"""Recording a screening, whatever brought it: the web form, the API (one test or a batch) and CSV rows all call
``screenings_intake`` (``screening_intake`` for one). One validation, one patient matching, one duplicate check, one set
of effects, one transaction; a batch does each as a set (one query per lookup, bulk inserts)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from relais.accounts.models import User
from relais.audit.services import AuditBuffer
from relais.core import bulk, crypto
from relais.core.tenancy import for_actor
from relais.intake import effects
from relais.patients.models import Patient
from relais.patients.retention_keys import patient_tested
from relais.patients.services import PatientIdentity, PatientMatcher
from relais.screenings.inputs import ScreeningInput
from relais.screenings.models import Device, Screening, ScreeningResult, ScreeningStatus
from relais.screenings.services import active_devices, screening_build, screening_check, screening_version_add
from relais.transfer.models import OutboxMessage

ACCEPTED = "accepted"  # the values of submissions.models.ItemStatus
DUPLICATE = "duplicate"


@dataclass(frozen=True)
class IntakeOutcome:
    status: str  # ACCEPTED or DUPLICATE
    screening: Screening  # the new screening, or the earlier one this submission duplicates
    patient_id: uuid.UUID
    note: str = ""
    same_result: bool = True  # for a duplicate: whether the earlier test has the submitted result
    outbox: OutboxMessage | None = None  # for an accepted test: its outbox row, written with it (the answer shows it)

    @property
    def is_duplicate(self) -> bool:
        return self.status == DUPLICATE


@dataclass(frozen=True)
class IntakeRequest:
    """One test to record, for a patient given by identity (matched or registered) or by id."""

    data: ScreeningInput
    identity: PatientIdentity | None = None
    patient_id: uuid.UUID | str | None = None


def _patients_by_id(*, actor: User, requests: Sequence[IntakeRequest]) -> dict[str, Patient]:
    """The patients named by id (merged records followed to the kept one), by the id as given; one query, two with merges."""
    wanted: dict[str, uuid.UUID] = {}
    for request in requests:
        if request.patient_id is not None:
            try:
                wanted[str(request.patient_id)] = uuid.UUID(str(request.patient_id))
            except ValueError:
                continue
    if not wanted:
        return {}
    found = {p.pk: p for p in for_actor(Patient, actor).filter(pk__in=set(wanted.values()))}
    merged = {p.merged_into_id for p in found.values() if p.merged_into_id is not None}
    kept = {p.pk: p for p in for_actor(Patient, actor).filter(pk__in=merged)} if merged else {}
    out = {}
    for given, pk in wanted.items():
        patient = found.get(pk)
        if patient is not None and patient.merged_into_id is not None:  # the pharmacy found it to be another's duplicate: follow it
            patient = kept.get(patient.merged_into_id)
        if patient is not None:
            out[given] = patient
    return out


def _checked(
    *, request: IntakeRequest, now: datetime, devices: dict[str, Device], patients: dict[str, Patient]
) -> tuple[Device, Patient | None]:
    """Every problem with the input at once; the patient named by id, if one was."""
    errors: dict[str, list[str]] = {}
    device = None
    try:
        device = screening_check(request.data, now=now, devices=devices)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    patient = None
    if request.patient_id is not None:
        patient = patients.get(str(request.patient_id))
        if patient is None:
            errors["patient_id"] = [_("No patient with this id at your pharmacy: register the patient first.")]
    if errors:
        raise ValidationError(errors)
    assert device is not None
    return device, patient


DuplicateKey = tuple[uuid.UUID, str, datetime]  # patient, device, sampling time: the same test sent twice


def _duplicate_key(patient_id: uuid.UUID, data: ScreeningInput) -> DuplicateKey:
    return (patient_id, str(data.device_id).strip(), data.sampled_at)


def _earlier_rows(*, pharmacy_id: uuid.UUID, keys: set[DuplicateKey]) -> QuerySet[Screening]:
    return Screening.objects.filter(
        pharmacy_id=pharmacy_id,
        patient_id__in={k[0] for k in keys},
        sampled_at__in={k[2] for k in keys},
        is_current=True,
    ).exclude(status=ScreeningStatus.REMOVED)


def _recorded_earlier_fingerprint(*, pharmacy_id: uuid.UUID, keys: set[DuplicateKey]) -> list[tuple[Any, ...]]:
    """_earlier_fingerprint(_recorded_earlier(...)) from four columns, no instances built."""
    if not keys:
        return []
    rows = _earlier_rows(pharmacy_id=pharmacy_id, keys=keys).order_by("pk").values_list("pk", "patient_id", "device_id", "sampled_at")
    first: dict[DuplicateKey, tuple[Any, ...]] = {}
    for row in rows:
        first.setdefault((row[1], row[2], row[3]), row)
    return [row for key, row in first.items() if key in keys]


def _recorded_earlier(*, pharmacy_id: uuid.UUID, keys: set[DuplicateKey]) -> dict[DuplicateKey, Screening]:
    """earlier_duplicate for many keys: the current screenings already stored under any of them, in one query."""
    if not keys:
        return {}
    rows = _earlier_rows(pharmacy_id=pharmacy_id, keys=keys).prefetch_related("results").order_by("pk")
    out: dict[DuplicateKey, Screening] = {}
    for row in rows:
        key = (row.patient_id, row.device_id, row.sampled_at)
        if key in keys:
            out.setdefault(key, row)
    return out


def _new_patient_key() -> str:
    """The retention key of a patient registered today (Patient.save's rule), set before a bulk insert."""
    return crypto.retention_key_id(timezone.localdate() + timedelta(days=settings.RELAIS_RETENTION["identities"]))


class _NeedsLock(Exception):
    """Planning outside the transaction met a write to a record saved earlier: plan again inside it."""


@dataclass
class IntakePlan:
    """Everything a set of tests will write, built before the write transaction (validation, matching, encryption,
    certificates: the CPU work), with what it read, so the transaction checks that nothing changed and only inserts."""

    actor: User
    requests: Sequence[IntakeRequest]
    now: datetime
    locked: bool  # planned inside the transaction that commits it: nothing to check again
    outcomes: list[IntakeOutcome | ValidationError]
    reads: tuple[Any, ...]
    inserts: list[bulk.PreparedInsert]
    audit: AuditBuffer
    matcher_keys: tuple[set[str], set[str]]
    duplicate_keys: set[DuplicateKey]


def _reads(*, by_id: dict[str, Patient], stored: list[tuple[Any, ...]], earlier: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    """What a plan's decisions rest on, in comparable form: a concurrent write that changes any of it changes this.

    Not the devices: one withdrawn from the catalogue while the request is in flight is as if the request came a moment
    earlier (an accepted test is never refused for it afterwards either)."""
    return (
        sorted((given, p.pk, p.updated_at) for given, p in by_id.items()),
        sorted(stored),
        sorted(earlier),
    )


def _stored_fingerprint(patients: Iterable[Patient]) -> list[tuple[Any, ...]]:
    return [(p.pk, p.updated_at, p.retention_key) for p in patients]


def _earlier_fingerprint(earlier: dict[DuplicateKey, Screening]) -> list[tuple[Any, ...]]:
    return [(s.pk, s.patient_id, s.device_id, s.sampled_at) for s in earlier.values()]


def screenings_plan(*, actor: User, requests: Sequence[IntakeRequest], now: datetime | None = None, locked: bool = False) -> IntakePlan:
    """Plan the recording of many tests: every check and every row built, nothing written (see screenings_commit).

    ``locked``: planned inside the write transaction, so records saved earlier may be updated here (a returning
    patient's new contact details, its identity moved to a later retention key); outside it, such a plan raises
    _NeedsLock and is redone inside."""
    if not actor.sees_patients:
        raise PermissionDenied
    now = now or timezone.now()
    outcomes: list[IntakeOutcome | ValidationError | None] = [None] * len(requests)
    devices = active_devices(r.data.device_id for r in requests)
    by_id = _patients_by_id(actor=actor, requests=requests)
    valid: list[tuple[int, Device, Patient | None]] = []
    for index, request in enumerate(requests):
        if (request.identity is None) == (request.patient_id is None):
            raise ValueError("give exactly one of identity and patient_id")
        try:
            device, patient = _checked(request=request, now=now, devices=devices, patients=by_id)
        except ValidationError as exc:
            outcomes[index] = exc
        else:
            valid.append((index, device, patient))

    # Patients: matched or created in item order; each item's audit events kept in its own list, written in order.
    identities = [requests[i].identity for i, _d, p in valid if p is None]
    matcher = PatientMatcher(
        actor=actor, identities=[i for i in identities if i is not None], retention_key=_new_patient_key(), may_update=locked
    )
    events: dict[int, list[dict[str, Any]]] = {}
    resolved: list[tuple[int, Device, Patient]] = []
    try:
        for index, device, patient in valid:
            if patient is None:
                identity = requests[index].identity
                assert identity is not None
                item_events = events.setdefault(index, [])
                patient = matcher.resolve(identity, audit=lambda _e=item_events, **event: _e.append(event)).patient
            resolved.append((index, device, patient))
    except PatientMatcher.UpdateNeeded:
        raise _NeedsLock from None

    if locked:
        _lock_patients({p.pk for _i, _d, p in resolved if not p._state.adding})
    duplicate_keys = {_duplicate_key(p.pk, requests[i].data) for i, _d, p in resolved if not p._state.adding}
    earlier = _recorded_earlier(pharmacy_id=actor.tenant_id, keys=duplicate_keys)
    reads = _reads(by_id=by_id, stored=_stored_fingerprint(matcher.stored), earlier=_earlier_fingerprint(earlier))

    audit = AuditBuffer()
    screenings: list[Screening] = []
    results: list[ScreeningResult] = []
    recorded: list[effects.RecordedEffects] = []
    batch_results: dict[uuid.UUID, dict[str, str]] = {}
    for index, device, patient in resolved:
        data = requests[index].data
        for event in events.get(index, []):
            audit.add(**event)
        key = _duplicate_key(patient.pk, data)
        duplicate = earlier.get(key)
        if duplicate is not None:
            recorded_results = batch_results.get(duplicate.pk) or {r.analyte: r.result for r in duplicate.results.all()}
            same = recorded_results == dict(data.results)
            note = (
                _("Already recorded: same patient, device and sampling time. Nothing was added.")
                if same
                else _("Already recorded with a different result: to change it, send a correction of that test.")
            )
            audit.add(actor=actor, action="screening.duplicate", object_type="screening", object_ids=[duplicate.pk, patient.pk])
            outcomes[index] = IntakeOutcome(DUPLICATE, duplicate, patient.pk, note, same_result=same)
            continue
        screening, rows = screening_build(actor=actor, patient=patient, device=device, data=data)
        earlier[key] = screening  # a later repeat in this batch is its duplicate
        batch_results[screening.pk] = dict(data.results)
        screenings.append(screening)
        results.extend(rows)
        audit.add(actor=actor, action="screening.create", object_type="screening", object_ids=[screening.pk, patient.pk])
        # Before its messages: they take the patient's key.
        if not patient_tested(patient=patient, sampled_at=data.sampled_at, may_update=locked):
            raise _NeedsLock
        effect = effects.screening_recorded(actor=actor, screening=screening, results=dict(data.results), now=now, audit=audit)
        recorded.append(effect)
        outcomes[index] = IntakeOutcome(ACCEPTED, screening, patient.pk, outbox=effect.outbox)

    # Parents before children; values computed now (encryption included), outside the transaction when unlocked.
    audit.prepare()
    inserts = [
        bulk.PreparedInsert(Patient, matcher.created),
        bulk.PreparedInsert(Screening, screenings),
        bulk.PreparedInsert(ScreeningResult, results),
        *effects.recorded_inserts(recorded),
    ]
    return IntakePlan(
        actor=actor,
        requests=requests,
        now=now,
        locked=locked,
        outcomes=[o for o in outcomes if o is not None],
        reads=reads,
        inserts=inserts,
        audit=audit,
        matcher_keys=matcher.keys,
        duplicate_keys=duplicate_keys,
    )


def screenings_plan_ahead(*, actor: User, requests: Sequence[IntakeRequest], now: datetime) -> IntakePlan | None:
    """screenings_plan before the write transaction, or None when the tests can only be planned inside it (a returning
    patient's record to update): the caller then plans with locked=True in its transaction, or calls screenings_intake."""
    try:
        return screenings_plan(actor=actor, requests=requests, now=now)
    except _NeedsLock:
        return None


def _lock_patients(ids: set[uuid.UUID]) -> None:
    """PostgreSQL: serialise submissions for one patient, so the duplicate check sees a concurrent batch's test (SQLite's
    immediate transactions already hold the database's one write lock)."""
    if connection.vendor == "postgresql" and ids:
        list(Patient.objects.select_for_update().filter(pk__in=sorted(ids)).order_by("pk").values_list("pk", flat=True))


def _still_valid(plan: IntakePlan) -> bool:
    """Read again, under the write lock, what the plan read before it (only the columns it compares): equal means its
    decisions still hold."""
    actor, requests = plan.actor, plan.requests
    by_id = _patients_by_id(actor=actor, requests=requests)
    stored = PatientMatcher.stored_fingerprint(actor=actor, keys=plan.matcher_keys)
    earlier = _recorded_earlier_fingerprint(pharmacy_id=actor.tenant_id, keys=plan.duplicate_keys)
    return _reads(by_id=by_id, stored=stored, earlier=earlier) == plan.reads


def screenings_commit(plan: IntakePlan) -> list[IntakeOutcome | ValidationError]:
    """Write a plan inside the caller's transaction. A plan made outside it is checked first; if a concurrent request
    changed what it read (the same patient registered, the same test recorded), it is made again, now under the lock."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("screenings_commit must run in the transaction that records the tests")
    if not plan.locked:
        _lock_patients({pk for pk, _at, _key in plan.reads[1]} | {pk for _g, pk, _at in plan.reads[0]})
        if not _still_valid(plan):
            plan = screenings_plan(actor=plan.actor, requests=plan.requests, now=plan.now, locked=True)
    for insert in plan.inserts:
        insert.execute()
    plan.audit.flush()
    return plan.outcomes


def screenings_intake(
    *, actor: User, requests: Sequence[IntakeRequest], now: datetime | None = None
) -> list[IntakeOutcome | ValidationError]:
    """Record many tests at once, each with its own outcome: accepted, duplicate, or the ValidationError naming its fields.

    The same rules as one by one (one validation, one patient matching, one duplicate check, one set of effects and the
    same audit events, in item order), done as a set: one query per lookup for the whole batch and bulk inserts, in one
    transaction. A refused item writes nothing; an item repeating an earlier one of the same batch is its duplicate.
    Planned before the transaction when the caller is not in one, so the write lock is held only for the inserts."""
    now = now or timezone.now()
    plan = None if transaction.get_connection().in_atomic_block else screenings_plan_ahead(actor=actor, requests=requests, now=now)
    with transaction.atomic():
        if plan is None:
            plan = screenings_plan(actor=actor, requests=requests, now=now, locked=True)
        return screenings_commit(plan)


def screening_intake(
    *,
    actor: User,
    data: ScreeningInput,
    identity: PatientIdentity | None = None,
    patient_id: uuid.UUID | str | None = None,
    now: datetime | None = None,
) -> IntakeOutcome:
    """Record a screening for a patient given by identity (matched or registered) or by id, with its effects.

    A test already recorded (same patient, device and sampling time) is answered with that test, flagged, not recorded
    twice. All or nothing: a refused screening leaves no new patient behind."""
    if (identity is None) == (patient_id is None):
        raise ValueError("give exactly one of identity and patient_id")
    (outcome,) = screenings_intake(actor=actor, requests=[IntakeRequest(data=data, identity=identity, patient_id=patient_id)], now=now)
    if isinstance(outcome, ValidationError):
        raise outcome
    return outcome


def screening_record(*, actor: User, patient_id: uuid.UUID | str, data: ScreeningInput, now: datetime | None = None) -> Screening:
    """screening_intake for a registered patient, when only a new test will do (seeds, load generators, tests)."""
    outcome = screening_intake(actor=actor, data=data, patient_id=patient_id, now=now)
    if outcome.is_duplicate:
        raise ValidationError({"__all__": [outcome.note]})
    return outcome.screening


def screening_correct(
    *,
    actor: User,
    screening_id: uuid.UUID | str,
    reason: str,
    results: dict[str, str] | None = None,
    remove: bool = False,
) -> Screening:
    """Add a corrected (or removed) version with its effects; the original row keeps what was recorded."""
    with transaction.atomic():
        original, correction, new_results = screening_version_add(
            actor=actor, screening_id=screening_id, reason=reason, results=results, remove=remove
        )
        effects.screening_corrected(actor=actor, original=original, correction=correction, results=new_results, removed=remove)
    return correction
