"""relais.core.bulk's shortcut for get_db_prep_save gives exactly Django's value, for every field of every model."""

from __future__ import annotations

import uuid
import zoneinfo
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from django.apps import apps
from django.db import connection, models
from hypothesis import given, settings
from hypothesis import strategies as st

from relais.core.bulk import db_value_converter
from relais.core.fields import Ciphertext

SAMPLES: list[Any] = [
    None,
    "",
    "abc",
    "Élodie 中文 ‮",
    Ciphertext("v1.k.abc"),
    0,
    7,
    -3,
    True,
    False,
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "12345678-1234-5678-1234-567812345678",
    datetime(2026, 3, 29, 1, 30, tzinfo=UTC),
    datetime(2026, 10, 25, 2, 30, tzinfo=zoneinfo.ZoneInfo("Europe/Paris")),
    datetime(2026, 1, 1, tzinfo=zoneinfo.ZoneInfo("Pacific/Kiritimati")),
    date(2026, 1, 2),
]


def relais_fields() -> list[models.Field[Any, Any]]:
    out = []
    for model in apps.get_models():
        if model.__module__.startswith("relais."):
            out.extend(f for f in model._meta.local_concrete_fields if not isinstance(f, models.AutoField | models.BigAutoField))
    return out


def django_value(field: models.Field[Any, Any], value: Any) -> tuple[str, Any]:
    try:
        result = field.get_db_prep_save(value, connection)
    except Exception as exc:  # the shortcut must fail the same way
        return ("error", type(exc).__name__)
    return (type(result).__name__, repr(result))  # repr: some adapters (Jsonb) have no equality


def bulk_value(field: models.Field[Any, Any], value: Any) -> tuple[str, Any]:
    try:
        result = db_value_converter(field, connection)(value)
    except Exception as exc:
        return ("error", type(exc).__name__)
    return (type(result).__name__, repr(result))  # repr: some adapters (Jsonb) have no equality


@pytest.mark.django_db
def test_every_field_of_every_model_converts_as_django_does() -> None:
    fields = relais_fields()
    assert len(fields) > 100
    checked = 0
    for field in fields:
        for value in SAMPLES:
            if isinstance(value, datetime | date) and not isinstance(field, models.DateField | models.ForeignKey):
                continue  # Django's text and number fields call str()/int() on anything: nothing the shortcut takes
            if isinstance(field, models.DateTimeField) and type(value) is date:
                continue  # Django warns about a naive value; never written by the app
            assert bulk_value(field, value) == django_value(field, value), (field, value)
            checked += 1
    assert checked > 1000


@pytest.mark.django_db
@settings(max_examples=200, deadline=None)
@given(
    moment=st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.timezones()),
    shift=st.integers(min_value=0, max_value=10**6),
)
def test_aware_datetimes_convert_as_django_does(moment: datetime, shift: int) -> None:
    from relais.screenings.models import Screening

    field = Screening._meta.get_field("sampled_at")
    value = moment + timedelta(microseconds=shift)
    assert bulk_value(field, value) == django_value(field, value)


def comparable(instance: Any, random: set[str]) -> dict[str, Any]:
    """An instance's state, random defaults (UUIDs, tokens: ``random``) replaced by their type."""
    out: dict[str, Any] = {}
    for key, value in instance.__dict__.items():
        if key == "_state":
            out[key] = (value.adding, value.db, {k: id(v) for k, v in value.fields_cache.items()})
        else:
            out[key] = type(value).__name__ if key in random else value
    return out


def random_defaults(model: type[Any], kwargs: dict[str, Any]) -> set[str]:
    one, two = model(**kwargs).__dict__, model(**kwargs).__dict__
    return {key for key in one if key != "_state" and one[key] != two[key]}


@pytest.mark.django_db
def test_new_builds_the_instance_the_model_builds(owner: Any, patient: Any, screening: Any) -> None:
    from relais.certificates.models import Certificate, CertificateRefusal
    from relais.core.bulk import new
    from relais.notify.models import Notification, ResultLink
    from relais.patients.models import Patient
    from relais.screenings.models import Screening, ScreeningResult
    from relais.transfer.models import OutboxMessage

    now = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    link = ResultLink(token_hash="h", pharmacy_id=owner.tenant_id, patient_id=patient.pk, series_id=screening.series_id)
    cases: list[tuple[type[Any], dict[str, Any]]] = [
        (
            Patient,
            {
                "pharmacy_id": owner.tenant_id,
                "created_by": owner,
                "possible_duplicate_of": patient,
                "retention_key": "k",
                "identity_index": "i",
            },
        ),
        (Patient, {"pharmacy_id": owner.tenant_id, "created_by": None, "possible_duplicate_of": None}),
        (
            Screening,
            {"pharmacy_id": owner.tenant_id, "patient": patient, "device": screening.device, "sampled_at": now, "recorded_by": owner},
        ),
        (ScreeningResult, {"screening": screening, "analyte": "sars-cov-2", "loinc_code": "94558-4", "result": "260415000"}),
        (
            OutboxMessage,
            {
                "screening": screening,
                "series_id": screening.series_id,
                "version": 1,
                "pharmacy_id": owner.tenant_id,
                "next_attempt_at": now,
            },
        ),
        (
            Certificate,
            {
                "id": uuid.uuid4(),
                "screening": screening,
                "series_id": screening.series_id,
                "uvci": "U",
                "hc1": "HC1:x",
                "issued_at": now,
                "expires_at": now,
            },
        ),
        (CertificateRefusal, {"screening": screening, "reason": "signer", "detail": "", "created_at": now}),
        (ResultLink, {"token_hash": "h", "pharmacy_id": owner.tenant_id, "patient_id": patient.pk, "created_by": owner, "expires_at": now}),
        (
            Notification,
            {
                "pharmacy_id": owner.tenant_id,
                "patient": patient,
                "screening": screening,
                "link": link,
                "channel": "email",
                "address": "a@example.org",
                "created_by": None,
            },
        ),
    ]
    for model, kwargs in cases:
        random = random_defaults(model, kwargs)
        assert comparable(new(model, **kwargs), random) == comparable(model(**kwargs), random), model
    with pytest.raises(TypeError):
        new(ScreeningResult, no_such_field=1)
    with pytest.raises(ValueError):  # a related object of the wrong type is refused, as by the model
        new(ScreeningResult, screening=patient)


@settings(max_examples=300, deadline=None)
@given(ms=st.integers(min_value=0, max_value=(1 << 48) - 2))
def test_uuid7_layout_and_order(ms: int) -> None:
    from relais.core.ids import uuid7

    first, later = uuid7(ms), uuid7(ms + 1)
    assert first.version == 7 and first.variant == uuid.RFC_4122
    assert first.int >> 80 == ms
    assert first.hex < later.hex and first.bytes < later.bytes  # index order (SQLite stores hex, PostgreSQL bytes)


def test_uuid7_is_random_within_a_millisecond() -> None:
    from relais.core.ids import uuid7

    ids = {uuid7(1_700_000_000_000) for _ in range(1000)}
    assert len(ids) == 1000


@pytest.mark.django_db
def test_rows_built_by_new_get_time_ordered_keys(owner: Any, patient: Any, screening: Any) -> None:
    from relais.core.bulk import new
    from relais.screenings.models import Screening

    built = new(Screening, pharmacy_id=owner.tenant_id, patient=patient, device=screening.device, recorded_by=owner)
    assert built.pk.version == 7 and built.series_id.version == 7
