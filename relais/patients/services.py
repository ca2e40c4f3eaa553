"""Patient registration and updates. Every write is audited in the same transaction."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone

from relais.accounts.models import User
from relais.audit.services import audit_record
from relais.core import blind_index, bulk
from relais.core.tenancy import get_for_actor
from relais.patients import search
from relais.patients.models import Patient


@dataclass(frozen=True)
class PatientIdentity:
    """Already validated and normalised identity (see patients.forms)."""

    last_name: str
    first_names: str
    sex: str
    date_of_birth: date
    nir: str = ""
    address_line: str = ""
    postcode: str = ""
    city: str = ""
    country: str = "FR"
    phone: str = ""
    email: str = ""
    # FR Core identity reliability: True = the pharmacist checked it on an identity document, False = not checked,
    # None = not said (an API client or CSV file that does not send it).
    identity_verified: bool | None = None
    # The Latin spelling from the passport's machine-readable zone, for a name no ICAO table transliterates.
    latin_last_name: str = ""
    latin_first_names: str = ""


class LikelyDuplicate(Exception):
    def __init__(self, matches: list[Patient]) -> None:
        super().__init__("a patient with the same identity already exists")
        self.matches = matches


def _require_patient_access(actor: User) -> None:
    if not actor.sees_patients:
        raise PermissionDenied


def blind_indexes(
    *, pharmacy_id: uuid.UUID, nir: str, last_name: str, first_names: str, date_of_birth: date, phone: str | None = None
) -> dict[str, str]:
    """Every blind index column of a record, by field name: the matching ones and the search ones (relais.patients.search);
    ``phone_index`` only when ``phone`` is given (a caller that leaves the phone alone keeps its index)."""
    return {
        "nir_index": blind_index.nir_index(pharmacy_id=pharmacy_id, nir=nir) if nir else "",
        "name_dob_index": blind_index.name_dob_index(pharmacy_id=pharmacy_id, last_name=last_name, date_of_birth=date_of_birth),
        "identity_index": blind_index.identity_index(
            pharmacy_id=pharmacy_id, last_name=last_name, first_names=first_names, date_of_birth=date_of_birth
        ),
        **search.search_indexes(
            pharmacy_id=pharmacy_id, last_name=last_name, first_names=first_names, date_of_birth=date_of_birth, phone=phone
        ),
    }


def _indexes(pharmacy_id: uuid.UUID, identity: PatientIdentity | Patient) -> dict[str, str]:
    return blind_indexes(
        pharmacy_id=pharmacy_id,
        nir=identity.nir,
        last_name=identity.last_name,
        first_names=identity.first_names,
        date_of_birth=identity.date_of_birth,  # type: ignore[arg-type]  # EncryptedDateField gives a date
        phone=identity.phone,
    )


def likely_duplicates(*, pharmacy_id: uuid.UUID, identity: PatientIdentity, exclude_id: uuid.UUID | None = None) -> list[Patient]:
    """Same NIR, or same last name + first name + date of birth, in the same pharmacy (merged records left out), oldest first."""
    indexes = _indexes(pharmacy_id, identity)
    query = Patient.objects.filter(pharmacy_id=pharmacy_id, identity_index=indexes["identity_index"], merged_into__isnull=True)
    if indexes["nir_index"]:
        query = query | Patient.objects.filter(pharmacy_id=pharmacy_id, nir_index=indexes["nir_index"], merged_into__isnull=True)
    if exclude_id is not None:
        query = query.exclude(pk=exclude_id)
    return list(query.distinct().order_by("created_at")[:5])


def same_person(patient: Patient, identity: PatientIdentity) -> bool:
    """Whether a registered patient and a submitted identity are one person, on identifying fields only.

    Two NIRs: they must be equal (and the birth dates too). Otherwise last name, first names, birth date and sex must all
    agree. Anything less is a look-alike: a homonym, a twin, a typo, which only a person can judge."""
    if patient.date_of_birth != identity.date_of_birth:
        return False
    if patient.nir and identity.nir:
        return bool(patient.nir == identity.nir)
    return (
        patient.sex == identity.sex
        and blind_index.normalise_name(patient.last_name) == blind_index.normalise_name(identity.last_name)
        and blind_index.normalise_name(patient.first_names) == blind_index.normalise_name(identity.first_names)
    )


def _create(*, actor: User, identity: PatientIdentity, look_alike: Patient | None) -> Patient:
    patient = Patient(
        pharmacy_id=actor.tenant_id, created_by=actor, possible_duplicate_of=look_alike, **_indexes(actor.tenant_id, identity)
    )
    for field in fields(PatientIdentity):
        setattr(patient, field.name, getattr(identity, field.name))
    patient.save()
    detail = {"possible_duplicate": True} if look_alike is not None else {}
    audit_record(actor=actor, action="patient.create", object_type="patient", object_ids=[patient.pk], detail=detail)
    return patient


def patient_register(*, actor: User, identity: PatientIdentity, allow_duplicate: bool = False) -> Patient:
    """Register from the web form: look-alikes are shown first; registering anyway flags the new record for review."""
    _require_patient_access(actor)
    duplicate: LikelyDuplicate | None = None
    with transaction.atomic():
        matches = likely_duplicates(pharmacy_id=actor.tenant_id, identity=identity)
        if matches and not allow_duplicate:
            # The check read other patients' indexes: audited, and committed even though we refuse.
            audit_record(actor=actor, action="patient.duplicate_check", object_type="patient", object_ids=[m.pk for m in matches])
            duplicate = LikelyDuplicate(matches)
        else:
            patient = _create(actor=actor, identity=identity, look_alike=matches[0] if matches else None)
    if duplicate is not None:
        raise duplicate
    return patient


@dataclass(frozen=True)
class Resolution:
    patient: Patient
    created: bool
    needs_review: bool = False  # created beside a look-alike record: the pharmacy decides whether to merge


# Filled in on the matched record when it has none; contact details are replaced by the newer ones given with the test.
_FILLED_WHEN_EMPTY = ("nir", "address_line", "postcode", "city", "latin_last_name", "latin_first_names")
_REPLACED_WHEN_GIVEN = ("phone", "email")


def _complete_fields(*, actor: User, patient: Patient, identity: PatientIdentity) -> list[str]:
    """Fill in or replace the fields the submitted identity brings (in memory); the names of those that changed."""
    changed = [name for name in _FILLED_WHEN_EMPTY if getattr(identity, name) and not getattr(patient, name)]
    changed += [name for name in _REPLACED_WHEN_GIVEN if getattr(identity, name) and getattr(identity, name) != getattr(patient, name)]
    # A check on an identity document is kept once made; "not checked" fills in a record that said nothing.
    if (
        identity.identity_verified is not None
        and patient.identity_verified is not True
        and identity.identity_verified != patient.identity_verified
    ):
        changed.append("identity_verified")
    for name in changed:
        setattr(patient, name, getattr(identity, name))
    if "nir" in changed:
        patient.nir_index = _indexes(actor.tenant_id, patient)["nir_index"]
        changed.append("nir_index")
    if "phone" in changed:
        patient.phone_index = search.phone_index(pharmacy_id=actor.tenant_id, phone=patient.phone)
        changed.append("phone_index")
    return changed


def _complete(*, actor: User, patient: Patient, identity: PatientIdentity) -> None:
    changed = _complete_fields(actor=actor, patient=patient, identity=identity)
    if not changed:
        return
    patient.save(update_fields=[*changed, "updated_at"])
    audit_record(actor=actor, action="patient.update", object_type="patient", object_ids=[patient.pk], detail={"fields": sorted(changed)})


def patient_resolve(*, actor: User, identity: PatientIdentity) -> Resolution:
    """The patient a submitted identity belongs to: the registered record of the same person, or a new one.

    Used by every intake that carries an identity (API single and batch, CSV rows). A look-alike that differs on an
    identifying field never receives the test: a new record is created and flagged for the pharmacy to review."""
    _require_patient_access(actor)
    with transaction.atomic():
        candidates = likely_duplicates(pharmacy_id=actor.tenant_id, identity=identity)
        same = [c for c in candidates if same_person(c, identity)]
        if same:
            patient = same[0]
            audit_record(actor=actor, action="patient.match", object_type="patient", object_ids=[c.pk for c in candidates])
            _complete(actor=actor, patient=patient, identity=identity)
            return Resolution(patient=patient, created=False)
        if candidates:
            audit_record(actor=actor, action="patient.duplicate_check", object_type="patient", object_ids=[c.pk for c in candidates])
        patient = _create(actor=actor, identity=identity, look_alike=candidates[0] if candidates else None)
        return Resolution(patient=patient, created=True, needs_review=bool(candidates))


def _live_rows(*, actor: User, keys: tuple[set[str], set[str]], columns: tuple[str, ...]) -> list[tuple[Any, ...]]:
    """``columns`` of the pharmacy's live records (not merged) whose identity or NIR index is among ``keys``, one
    statement per index (each on its own index, tests/core/test_query_plans.py), values as the ORM gives them.

    Plain SQL: on the single POST, compiling these two ORM queries cost more than running them."""
    connection = connections[DEFAULT_DB_ALIAS]
    quote = connection.ops.quote_name
    meta = Patient._meta
    fields: list[Any] = [meta.get_field(c) for c in columns]
    pharmacy = bulk.db_value_converter(meta.get_field("pharmacy"), connection)(actor.tenant_id)
    found: dict[Any, tuple[Any, ...]] = {}
    with connection.cursor() as cursor:
        for index, values in (("identity_index", keys[0]), ("nir_index", keys[1])):
            if not values:
                continue
            # Identifiers from model metadata, quoted; the values are bound parameters.
            cursor.execute(
                "SELECT {} FROM {} WHERE {} = %s AND {} IS NULL AND {} IN ({})".format(  # noqa: S608
                    ", ".join(quote(str(f.column)) for f in fields),
                    quote(meta.db_table),
                    quote("pharmacy_id"),
                    quote("merged_into_id"),
                    quote(index),
                    ", ".join(["%s"] * len(values)),
                ),
                [pharmacy, *sorted(values)],
            )
            for row in cursor.fetchall():
                converted = tuple(_from_db(field, value, connection) for field, value in zip(fields, row, strict=True))
                found.setdefault(converted[0], converted)
    return list(found.values())


def _from_db(field: Any, value: Any, connection: Any) -> Any:
    """A column's raw value as a queryset would give it (the backend's converters, then the field's)."""
    column = field.get_col(Patient._meta.db_table)
    for convert in [*connection.ops.get_db_converters(column), *column.get_db_converters(connection)]:
        value = convert(value, column, connection)
    return value


class PatientMatcher:
    """patient_resolve for every identity of a batch: the candidates of all of them read in one query per index, new
    records built in memory (``created``) for the caller to write in bulk, audit events added to the caller's buffer.

    Identities are resolved in order, so a later item of the batch matches a record an earlier item created, exactly as
    if they had been sent one by one."""

    class UpdateNeeded(Exception):
        """A record saved earlier would be updated, and this matcher may not write (the caller plans outside its
        transaction; it matches again inside)."""

    def __init__(self, *, actor: User, identities: Sequence[PatientIdentity], retention_key: str = "", may_update: bool = True) -> None:
        _require_patient_access(actor)
        self.actor = actor
        self.retention_key = retention_key  # a test-less registration's key (Patient.save's), set before the bulk insert
        self.may_update = may_update
        self.created: list[Patient] = []
        self._by_identity: dict[str, list[Patient]] = {}
        self._by_nir: dict[str, list[Patient]] = {}
        self._order: dict[uuid.UUID, tuple[int, Any]] = {}
        # Only the identity index here (the search ones, computed with the record in resolve(), would double the HMACs).
        identity_keys = {
            blind_index.identity_index(
                pharmacy_id=actor.tenant_id, last_name=i.last_name, first_names=i.first_names, date_of_birth=i.date_of_birth
            )
            for i in identities
        }
        nir_keys = {blind_index.nir_index(pharmacy_id=actor.tenant_id, nir=i.nir) for i in identities if i.nir}
        self.keys = (identity_keys, nir_keys)
        self.stored = self._read(actor=actor, identity_keys=identity_keys, nir_keys=nir_keys)
        for patient in self.stored:
            self._remember(patient, (0, patient.created_at))

    @staticmethod
    def _read(*, actor: User, identity_keys: set[str], nir_keys: set[str]) -> list[Patient]:
        """The live records of the pharmacy under any of these identity or NIR indexes: their ids first, one statement
        per index, then the records themselves only when there are some (a new patient's lookup finds none)."""
        ids = {row[0] for row in _live_rows(actor=actor, keys=(identity_keys, nir_keys), columns=("id",))}
        return list(Patient.objects.filter(pk__in=ids)) if ids else []

    @staticmethod
    def stored_fingerprint(*, actor: User, keys: tuple[set[str], set[str]]) -> list[tuple[Any, ...]]:
        """(pk, updated_at, retention_key) of the records _read finds under these indexes, read again without building
        them (to check that a plan's candidates have not changed)."""
        return _live_rows(actor=actor, keys=keys, columns=("id", "updated_at", "retention_key"))

    def _remember(self, patient: Patient, order: tuple[int, Any]) -> None:
        self._order[patient.pk] = order
        self._by_identity.setdefault(patient.identity_index, []).append(patient)
        if patient.nir_index:
            self._by_nir.setdefault(patient.nir_index, []).append(patient)

    def _candidates(self, indexes: dict[str, str]) -> list[Patient]:
        """likely_duplicates on what is known: same identity or NIR index, oldest first, at most five."""
        found = {p.pk: p for p in self._by_identity.get(indexes["identity_index"], [])}
        if indexes["nir_index"]:
            found.update((p.pk, p) for p in self._by_nir.get(indexes["nir_index"], []) if p.nir_index == indexes["nir_index"])
        return sorted(found.values(), key=lambda p: self._order[p.pk])[:5]

    def resolve(self, identity: PatientIdentity, *, audit: Callable[..., None]) -> Resolution:
        actor = self.actor
        indexes = _indexes(actor.tenant_id, identity)
        candidates = self._candidates(indexes)
        same = [c for c in candidates if same_person(c, identity)]
        if same:
            patient = same[0]
            audit(actor=actor, action="patient.match", object_type="patient", object_ids=[c.pk for c in candidates])
            self._complete(patient=patient, identity=identity, audit=audit)
            return Resolution(patient=patient, created=False)
        if candidates:
            audit(actor=actor, action="patient.duplicate_check", object_type="patient", object_ids=[c.pk for c in candidates])
        look_alike = candidates[0] if candidates else None
        patient = bulk.new(
            Patient,
            pharmacy_id=actor.tenant_id,
            created_by=actor,
            possible_duplicate_of=look_alike,
            retention_key=self.retention_key,
            **indexes,
        )
        for field in fields(PatientIdentity):
            setattr(patient, field.name, getattr(identity, field.name))
        self.created.append(patient)
        self._remember(patient, (1, len(self.created)))
        detail = {"possible_duplicate": True} if look_alike is not None else {}
        audit(actor=actor, action="patient.create", object_type="patient", object_ids=[patient.pk], detail=detail)
        return Resolution(patient=patient, created=True, needs_review=look_alike is not None)

    def _complete(self, *, patient: Patient, identity: PatientIdentity, audit: Callable[..., None]) -> None:
        before = patient.nir_index
        changed = _complete_fields(actor=self.actor, patient=patient, identity=identity)
        if not changed:
            return
        if not patient._state.adding:  # saved before this batch: updated now; one the batch created is written with it
            if not self.may_update:
                raise PatientMatcher.UpdateNeeded
            patient.save(update_fields=[*changed, "updated_at"])
        audit(actor=self.actor, action="patient.update", object_type="patient", object_ids=[patient.pk], detail={"fields": sorted(changed)})
        if patient.nir_index != before:
            self._by_nir.setdefault(patient.nir_index, []).append(patient)


class MergeRefused(Exception):
    pass


def _scoped_for_update(actor: User, patient_id: uuid.UUID | str) -> Patient:
    return get_for_actor(Patient.objects.select_for_update().filter(merged_into__isnull=True), actor, patient_id)


def patient_merge(*, actor: User, duplicate_id: uuid.UUID | str, into_id: uuid.UUID | str, now: datetime | None = None) -> Patient:
    """The two records are one person: everything attached to the duplicate moves to the kept record, in one transaction.

    The kept record's identity wins; what it lacks (NIR, address, contact) is taken from the duplicate. The duplicate stays,
    marked merged, so the history of what was recorded under it can still be read."""
    _require_patient_access(actor)
    if str(duplicate_id) == str(into_id):
        raise MergeRefused("a record cannot be merged into itself")
    with transaction.atomic():
        duplicate = _scoped_for_update(actor, duplicate_id)
        kept = _scoped_for_update(actor, into_id)
        moved: dict[str, int] = {}
        for relation in Patient._meta.related_objects:
            if relation.related_model is Patient or not relation.one_to_many:  # self links are handled below
                continue
            name = relation.field.name
            count = relation.related_model._default_manager.filter(**{name: duplicate}).update(**{name: kept})
            if count:
                moved[relation.related_model._meta.label_lower] = count
        filled = [name for name in (*_FILLED_WHEN_EMPTY, *_REPLACED_WHEN_GIVEN) if getattr(duplicate, name) and not getattr(kept, name)]
        for name in filled:
            setattr(kept, name, getattr(duplicate, name))
        for name, value in _indexes(actor.tenant_id, kept).items():  # the NIR or phone may come from the duplicate
            setattr(kept, name, value)
        if kept.possible_duplicate_of_id == duplicate.pk:
            kept.possible_duplicate_of = None
        kept.save()
        Patient.objects.filter(possible_duplicate_of=duplicate).exclude(pk=kept.pk).update(possible_duplicate_of=kept)
        Patient.objects.filter(merged_into=duplicate).update(merged_into=kept)  # chains stay one step long
        duplicate.merged_into = kept
        duplicate.merged_at = now or timezone.now()
        duplicate.possible_duplicate_of = None
        duplicate.save(update_fields=["merged_into", "merged_at", "possible_duplicate_of", "updated_at"])
        audit_record(
            actor=actor,
            action="patient.merge",
            object_type="patient",
            object_ids=[kept.pk, duplicate.pk],
            detail={"moved": moved, "filled": filled},
        )
    return kept


def patient_keep_separate(*, actor: User, patient_id: uuid.UUID | str) -> Patient:
    """The pharmacy checked the pair: two different people. The flag is cleared."""
    _require_patient_access(actor)
    with transaction.atomic():
        patient = _scoped_for_update(actor, patient_id)
        other = patient.possible_duplicate_of_id
        patient.possible_duplicate_of = None
        patient.save(update_fields=["possible_duplicate_of", "updated_at"])
        audit_record(actor=actor, action="patient.not_duplicate", object_type="patient", object_ids=[patient.pk, other])
    return patient


def patient_update_contact(*, actor: User, patient: Patient, phone: str, email: str) -> Patient:
    _require_patient_access(actor)
    if patient.pharmacy_id != actor.pharmacy_id:
        raise Patient.DoesNotExist
    with transaction.atomic():
        patient.phone = phone
        patient.email = email
        patient.phone_index = search.phone_index(pharmacy_id=patient.pharmacy_id, phone=phone)
        patient.save(update_fields=["phone", "email", "phone_index", "updated_at"])
        audit_record(actor=actor, action="patient.update_contact", object_type="patient", object_ids=[patient.pk])
    return patient
