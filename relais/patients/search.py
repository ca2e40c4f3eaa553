"""Patient search within one pharmacy: by last name, first and last name, date of birth, NIR or phone.

Accent-, case- and hyphen-insensitive and tolerant of a typo, through truncated blind indexes (relais.core.blind_index
search_index): each criterion narrows the pharmacy's records to a few candidates, which are decrypted and filtered here
exactly. Every search writes one audit event naming the records shown, never the searched values.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from relais.accounts.models import User
from relais.audit.services import audit_record
from relais.core import blind_index, crypto
from relais.core.secrets import SecretError
from relais.core.tenancy import for_actor
from relais.core.validators import phone_normalise
from relais.patients.models import Patient
from relais.patients.names import edit_distance_at_most_one, name_parts, name_search_values, normalise, phonetic_key

MAX_CANDIDATES = 1000  # decrypted at most per search: a few per index value, so only a huge pharmacy reaches it
MAX_RESULTS = 50
FUZZY_MIN_LETTERS = 5  # one edit away is accepted only for names this long: shorter ones are too often another name

# The columns filled by search_indexes(), with the model (see Patient.Meta.indexes: each with the pharmacy).
SEARCH_COLUMNS = (
    "surname_index",
    "surname_head_index",
    "surname_tail_index",
    "surname_sound_index",
    "full_name_index",
    "birth_date_index",
    "phone_index",
)


def phone_key(value: str) -> str:
    """The E.164 form of a phone number (as stored), or its digits when it does not parse."""
    value = value.strip()
    if not value:
        return ""
    if value.startswith("+") and value[1:].isdigit():
        return value  # already E.164 (what relais.patients.identity stores): phonenumbers is slow on the intake's path
    try:
        return phone_normalise(value)
    except ValidationError:
        return "".join(ch for ch in value if ch.isdigit())


def search_indexes(
    *, pharmacy_id: object, last_name: str, first_names: str, date_of_birth: date | None, phone: str | None
) -> dict[str, str]:
    """The search columns of one record (phone left out when ``phone`` is None: the caller does not change it)."""
    index = blind_index.search_indexer(pharmacy_id)
    out = {column: index(kind, value) for column, (kind, value) in name_search_values(last_name, first_names, date_of_birth).items()}
    if phone is not None:
        out["phone_index"] = index("phone", phone_key(phone))
    return out


def phone_index(*, pharmacy_id: object, phone: str) -> str:
    return blind_index.search_index(kind="phone", pharmacy_id=pharmacy_id, value=phone_key(phone))


# --- Searching ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchQuery:
    last_name: str = ""
    first_names: str = ""
    date_of_birth: date | None = None
    nir: str = ""  # already normalised (relais.core.validators.nir_normalise)
    phone: str = ""

    @property
    def kinds(self) -> list[str]:
        """What was searched by, for the audit event (never the values)."""
        given = {"last_name": self.last_name, "first_names": self.first_names, "date_of_birth": self.date_of_birth}
        given |= {"nir": self.nir, "phone": self.phone}
        return [name for name, value in given.items() if value]

    @property
    def searchable(self) -> bool:
        return bool(normalise(self.last_name) or self.date_of_birth or self.nir or phone_key(self.phone))


@dataclass(frozen=True)
class Hit:
    patient: Patient
    exact: bool  # False: found through the phonetic key or one typo away


def _surname_match(query: str, patient: Patient) -> tuple[bool, bool]:
    """(matches, exactly) for a searched last name against the record's, on the whole name or one of its words."""
    wanted = normalise(query)
    parts = name_parts(patient.last_name)
    names = {"".join(parts), *parts}
    if wanted in names:
        return True, True
    typed = name_parts(query)
    if typed and parts and phonetic_key(typed[0]) == phonetic_key(parts[0]):  # what the sound index compares
        return True, False
    fuzzy = len(wanted) >= FUZZY_MIN_LETTERS and any(edit_distance_at_most_one(wanted, name) for name in names)
    return fuzzy, False


def _first_name_match(query: str, patient: Patient) -> tuple[bool, bool]:
    wanted = normalise(query)
    names = set(name_parts(patient.first_names)) | {normalise(patient.first_names)}
    if wanted in names:
        return True, True
    fuzzy = len(wanted) >= FUZZY_MIN_LETTERS and any(edit_distance_at_most_one(wanted, name) for name in names)
    return fuzzy, False


def _candidates(actor: User, query: SearchQuery) -> list[Patient]:
    """The pharmacy's live records the indexes point at, by the most selective criterion given: NIR, phone, date of birth
    (a few records a day: the names are then compared after decryption, one typo away included), else the names."""
    pharmacy_id = actor.tenant_id
    rows = for_actor(Patient, actor).filter(merged_into__isnull=True)
    if query.nir:
        return list(rows.filter(nir_index=blind_index.nir_index(pharmacy_id=pharmacy_id, nir=query.nir))[:MAX_CANDIDATES])
    keys = search_indexes(
        pharmacy_id=pharmacy_id,
        last_name=query.last_name,
        first_names=query.first_names,
        date_of_birth=query.date_of_birth,
        phone=query.phone,
    )
    for column in ("phone_index", "birth_date_index"):
        if keys[column]:
            return list(rows.filter(**{column: keys[column]})[:MAX_CANDIDATES])
    surname = keys["surname_index"]
    wanted = {"surname_index": surname, "surname_head_index": surname, "surname_tail_index": surname}
    wanted |= {"surname_sound_index": keys["surname_sound_index"], "full_name_index": keys["full_name_index"]}
    # One statement per column, each on its (pharmacy, column) index: ORed in one, SQLite read the whole pharmacy.
    found: dict[Any, Patient] = {}
    for column, value in wanted.items():
        if value and len(found) < MAX_CANDIDATES:
            found.update((p.pk, p) for p in rows.filter(**{column: value})[:MAX_CANDIDATES])
    return list(found.values())


def _accepted(patient: Patient, query: SearchQuery) -> tuple[bool, bool]:
    """(shown, exactly): every criterion given holds on the decrypted record."""
    exact = True
    if query.nir and patient.nir != query.nir:
        return False, False
    if query.date_of_birth and patient.date_of_birth != query.date_of_birth:
        return False, False
    if query.phone and phone_key(patient.phone) != phone_key(query.phone):
        return False, False
    for given, match in ((query.last_name, _surname_match), (query.first_names, _first_name_match)):
        if given and normalise(given):
            ok, precise = match(given, patient)
            if not ok:
                return False, False
            exact = exact and precise
    return True, exact


def patient_search(*, actor: User, query: SearchQuery) -> list[Hit]:
    """Exact matches first (newest record first), then the near ones; audited with the kinds searched and the ids shown."""
    hits: list[Hit] = []
    with transaction.atomic():  # read and audited together: no audit event, no result
        if query.searchable:
            # Sorted here, not in SQL: ORDER BY created_at made SQLite walk the pharmacy's (pharmacy, created_at) index.
            candidates = sorted(_candidates(actor, query), key=lambda p: p.created_at, reverse=True)
            for patient in candidates:
                try:
                    shown, exact = _accepted(patient, query)
                except crypto.DecryptionError:  # its retention key already destroyed: the purge is about to delete it
                    continue
                if shown:
                    hits.append(Hit(patient, exact))
            hits.sort(key=lambda h: not h.exact)  # stable: newest first within each group
            hits = hits[:MAX_RESULTS]
        audit_record(
            actor=actor,
            action="patient.search",
            object_type="patient",
            object_ids=[h.patient.pk for h in hits],
            detail={"by": "+".join(query.kinds), "count": len(hits)},
        )
    return hits


def search_columns_of(patient: Patient) -> dict[str, str]:
    """The search columns ``patient``'s identity and phone give (for a backfill or a check)."""
    return search_indexes(
        pharmacy_id=patient.pharmacy_id,
        last_name=patient.last_name,
        first_names=patient.first_names,
        date_of_birth=patient.date_of_birth,  # type: ignore[arg-type]  # EncryptedDateField gives a date
        phone=patient.phone,
    )


def stale(patients: Iterable[Any]) -> list[Any]:
    """The records whose stored search columns differ from what their identity gives."""
    return [p for p in patients if any(getattr(p, k) != v for k, v in search_columns_of(p).items())]


# --- Backfill (migration 0004 and manage.py reindex_patients) -----------------------------------------------------------


def search_key_available() -> bool:
    """Whether RELAIS_BLIND_INDEX_KEY is set and valid here (a migration may run where it is not)."""
    try:
        blind_index.search_index(kind="probe", pharmacy_id="probe", value="probe")
    except (SecretError, AttributeError):
        return False
    return bool(getattr(settings, "RELAIS_BLIND_INDEX_KEY", ""))


def reindex(model: Any, *, only_missing: bool = False, chunk: int = 500, progress: Any = None) -> tuple[int, int]:
    """Recompute the search columns of every record of ``model`` (Patient, or its historical state in a migration), in
    chunks; (rewritten, unreadable): a record whose identity no longer decrypts (its key destroyed) is left as it is."""
    rows = model._default_manager.order_by("pk")
    if only_missing:
        rows = rows.filter(surname_index="")
    rewritten = unreadable = 0
    batch: list[Any] = []
    for patient in rows.iterator(chunk_size=chunk):
        try:
            values = search_indexes(
                pharmacy_id=patient.pharmacy_id,
                last_name=patient.last_name,
                first_names=patient.first_names,
                date_of_birth=patient.date_of_birth,
                phone=patient.phone,
            )
        except crypto.DecryptionError:  # its retention key destroyed: the purge deletes it; the others go on
            unreadable += 1
            continue
        for name, value in values.items():
            setattr(patient, name, value)
        batch.append(patient)
        if len(batch) >= chunk:
            model._default_manager.bulk_update(batch, list(SEARCH_COLUMNS))
            rewritten += len(batch)
            if progress is not None:
                progress(len(batch))
            batch = []
    if batch:
        model._default_manager.bulk_update(batch, list(SEARCH_COLUMNS))
        rewritten += len(batch)
        if progress is not None:
            progress(len(batch))
    return rewritten, unreadable
