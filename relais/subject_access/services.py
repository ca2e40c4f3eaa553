"""Subject access (GDPR Art. 15): everything Relais holds about one patient, for the pharmacist or for the patient.

One export reads the patient's record (and records merged into it), tests with their results, messages, result links,
certificates, transmissions to the national platform and the accesses recorded in the audit log. The export itself is
audited (``patient.export``) in the same transaction, before the accesses are listed, so the list includes it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any, cast

from django.db import transaction
from django.utils import timezone
from django.utils.translation import pgettext

from relais.accounts.models import Pharmacy, Role, User
from relais.audit.labels import action_label
from relais.audit.models import AuditEvent, AuditSubject
from relais.audit.services import audit_record
from relais.certificates.models import Certificate, CertificateRefusal
from relais.core.tenancy import get_for_actor
from relais.notify.models import Notification, ResultLink
from relais.patients.models import Patient, Sex
from relais.results.services import LinkUnusable, link_get
from relais.screenings.models import Screening
from relais.screenings.vocab import RESULTS, SPECIMENS
from relais.testqueue.models import PendingTest
from relais.transfer.models import OutboxMessage

FORMATS = ("json", "pdf")
FORMAT_VERSION = 1
CHUNK = 500  # ids per IN (...) list: well under SQLite's and PostgreSQL's parameter limits

ROLE_LABELS: dict[str, Any] = {str(value): label for value, label in Role.choices}


def _s(text: str) -> str:
    # A context of its own: short words such as "Identity" may get other translations elsewhere in the .po.
    return pgettext("subject access", text)


class ExportRefused(Exception):
    """The patient's result link cannot be used for an export (unknown, expired, replaced or locked)."""


def export_for_staff(*, actor: User, patient_id: uuid.UUID | str, fmt: str) -> dict[str, Any]:
    """The pharmacist's export. Another pharmacy's patient raises Patient.DoesNotExist (views answer 404)."""
    _check(fmt)
    with transaction.atomic():
        patient = get_for_actor(Patient, actor, patient_id)
        audit_record(
            actor=actor,
            action="patient.export",
            object_type="patient",
            object_ids=[patient.pk],
            detail={"format": fmt, "channel": "pharmacy"},
        )
        return collect(patient=patient)


def export_for_link(*, link_id: uuid.UUID | str, fmt: str, now: datetime | None = None) -> dict[str, Any]:
    """The patient's own export, through a result link whose date of birth was checked (the view checks the session)."""
    _check(fmt)
    with transaction.atomic():
        try:
            link = link_get(link_id=link_id, now=now)
        except LinkUnusable as exc:
            raise ExportRefused(exc.reason) from exc
        patient = Patient.objects.get(pk=link.patient_id)
        while patient.merged_into_id is not None:  # the tests moved to the record kept: export that one
            patient = Patient.objects.get(pk=patient.merged_into_id)
        audit_record(
            actor=None,
            action="patient.export",
            object_type="patient",
            object_ids=[patient.pk, link.pk],
            pharmacy_id=link.pharmacy_id,
            detail={"format": fmt, "channel": "result_link"},
        )
        return collect(patient=patient)


def _check(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}")


def _iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _records(patient: Patient) -> list[Patient]:
    """The patient's record and every record merged into it (at any depth)."""
    records, frontier = [patient], [patient.pk]
    while frontier:
        merged = list(Patient.objects.filter(merged_into_id__in=frontier).order_by("created_at"))
        records += merged
        frontier = [p.pk for p in merged]
    return records


def _identity(patient: Patient) -> dict[str, Any]:
    sex = str(patient.sex)
    return {
        "record_id": str(patient.pk),
        "last_name": patient.last_name,
        "first_names": patient.first_names,
        "sex": sex,
        "sex_label": str(Sex(sex).label) if sex in Sex.values else sex,
        "date_of_birth": _iso(cast(date | None, patient.date_of_birth)),
        "nir": patient.nir,
        "address_line": patient.address_line,
        "postcode": patient.postcode,
        "city": patient.city,
        "country": patient.country,
        "phone": patient.phone,
        "email": patient.email,
        "registered_at": _iso(patient.created_at),
        "updated_at": _iso(patient.updated_at),
        "merged_into": str(patient.merged_into_id) if patient.merged_into_id else None,
        "merged_at": _iso(patient.merged_at),
    }


def _tests(screenings: list[Screening]) -> list[dict[str, Any]]:
    return [
        {
            "test_id": str(s.pk),
            "series_id": str(s.series_id),
            "version": s.version,
            "current": s.is_current,
            "status": s.status,
            "status_label": str(s.get_status_display()),
            "sampled_at": _iso(s.sampled_at),
            "recorded_at": _iso(s.recorded_at),
            "pharmacy": s.pharmacy.name,
            "device": {"id": s.device.device_id, "manufacturer": s.device.manufacturer, "name": s.device.name},
            "specimen": s.specimen_type,
            "specimen_label": str(SPECIMENS.get(s.specimen_type, s.specimen_type)),
            "results": [
                {"analyte": r.analyte_label, "result": r.result, "result_label": str(RESULTS.get(r.result, r.result))}
                for r in s.results.all()
            ],
            "correction_reason": s.correction_reason,
            "information_notice_given": s.information_notice_given,
            "identity_withheld": s.identity_withheld,
        }
        for s in screenings
    ]


def _messages(notifications: list[Notification]) -> list[dict[str, Any]]:
    # The full address: it is the patient's own data, and a typo in it is what they may want to see.
    return [
        {
            "message_id": str(n.pk),
            "test_id": str(n.screening_id),
            "kind": n.kind,
            "kind_label": str(n.get_kind_display()),
            "channel": n.channel,
            "channel_label": str(n.get_channel_display()),
            "address": n.address,
            "status": n.status,
            "status_label": str(n.get_status_display()),
            "attempts": n.attempts,
            "created_at": _iso(n.created_at),
            "sent_at": _iso(n.sent_at),
            "failed_at": _iso(n.failed_at),
        }
        for n in notifications
    ]


def _links(links: list[ResultLink]) -> list[dict[str, Any]]:
    return [
        {
            "link_id": str(link.pk),
            "series_id": str(link.series_id),
            "created_at": _iso(link.created_at),
            "expires_at": _iso(link.expires_at),
            "last_opened_at": _iso(link.last_opened_at),
            "failed_birth_date_attempts": link.failed_attempts,
            "locked_at": _iso(link.locked_at),
            "replaced_at": _iso(link.replaced_at),
        }
        for link in links
    ]


def _certificates(certificates: list[Certificate], refusals: list[CertificateRefusal]) -> dict[str, Any]:
    return {
        "issued": [
            {
                "uvci": c.uvci,
                "test_id": str(c.screening_id),
                "issued_at": _iso(c.issued_at),
                "valid_until": _iso(c.expires_at),
                "revoked_at": _iso(c.revoked_at),
                "revocation_reason": c.revocation_reason,
            }
            for c in certificates
        ],
        "not_issued": [
            {"test_id": str(r.screening_id), "reason": r.reason, "reason_label": str(r.get_reason_display()), "at": _iso(r.created_at)}
            for r in refusals
        ],
    }


def _transmissions(messages: list[OutboxMessage]) -> list[dict[str, Any]]:
    return [
        {
            "message_id": m.message_id,
            "test_id": str(m.screening_id),
            "version": m.version,
            "destination": m.destination,
            "format": m.message_format,
            "status": m.status,
            "status_label": str(m.get_status_display()),
            "attempts": m.attempts,
            "queued_at": _iso(m.created_at),
            "sent_at": _iso(m.sent_at),
            "acknowledged_at": _iso(m.acknowledged_at),
            "rejected_at": _iso(m.rejected_at),
            "acknowledgement_code": m.ack_code,
            "acknowledgement_text": m.ack_text,
            "rejection_reason": m.rejection_reason,
        }
        for m in messages
    ]


def _queue(rows: list[PendingTest]) -> list[dict[str, Any]]:
    """Swabs kept in the pharmacy's test queue (relais.testqueue): waiting for their result, done (the test above) or
    cancelled, with what was recorded of them."""
    return [
        {
            "queue_id": str(q.pk),
            "status": "done" if q.done_at else "cancelled" if q.cancelled_at else "waiting",
            "sampled_at": _iso(q.sampled_at),
            "started_at": _iso(q.started_at),
            "device": {"id": q.device.device_id, "manufacturer": q.device.manufacturer, "name": q.device.name},
            "specimen": q.specimen_type,
            "specimen_label": str(SPECIMENS.get(q.specimen_type, q.specimen_type)),
            "kit_lot": q.kit_lot,
            "kit_expiry": _iso(q.kit_expiry),
            "symptoms": q.symptoms,
            "symptom_onset": _iso(q.symptom_onset),
            "test_id": str(q.screening_id) if q.screening_id else None,
            "cancelled_at": _iso(q.cancelled_at),
            "cancel_reason": q.cancel_reason,
        }
        for q in rows
    ]


def _chunks(ids: list[Any]) -> Iterable[list[Any]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


def _who(event: AuditEvent) -> str:
    """The role that acted, never the staff member's name: what a data-protection officer answers the patient with."""
    if event.channel == "api" and event.actor_id is not None:
        return _s("Pharmacy software (API)")
    if event.actor_role:
        return str(ROLE_LABELS.get(event.actor_role, event.actor_role))
    if event.action.startswith(("result.", "result_link.")) or (event.detail or {}).get("channel") == "result_link":
        return _s("You (result link)")
    return _s("Relais (automatic processing)")


def _accesses(object_ids: list[uuid.UUID]) -> list[dict[str, Any]]:
    event_ids: set[int] = set()
    for chunk in _chunks(object_ids):
        event_ids.update(AuditSubject.objects.filter(object_id__in=chunk).values_list("event_id", flat=True))
    events: list[AuditEvent] = []
    for chunk in _chunks(sorted(event_ids)):
        events += AuditEvent.objects.filter(pk__in=chunk)
    events.sort(key=lambda e: (e.occurred_at, e.pk))
    pharmacies = Pharmacy.objects.in_bulk({e.pharmacy_id for e in events if e.pharmacy_id})
    accesses = []
    for event in events:
        pharmacy = pharmacies.get(event.pharmacy_id) if event.pharmacy_id else None
        accesses.append(
            {
                "at": _iso(event.occurred_at),
                "pharmacy": pharmacy.name if pharmacy is not None else "",
                "role": _who(event),
                "action": event.action,
                "action_label": action_label(event.action),
                "channel": event.channel,
            }
        )
    return accesses


def collect(*, patient: Patient, now: datetime | None = None) -> dict[str, Any]:
    """Every section of the export, JSON-able. The caller has checked who asks and audited the export."""
    records = _records(patient)
    ids = [r.pk for r in records]
    screenings = list(
        Screening.objects.filter(patient_id__in=ids)
        .select_related("device", "pharmacy")
        .prefetch_related("results")
        .order_by("sampled_at", "series_id", "version")
    )
    queue = list(PendingTest.objects.filter(patient_id__in=ids).select_related("device").order_by("started_at"))
    notifications = list(Notification.objects.filter(patient_id__in=ids).order_by("created_at"))
    links = list(ResultLink.objects.filter(patient_id__in=ids).order_by("created_at"))
    certificates = list(Certificate.objects.filter(screening__patient_id__in=ids).order_by("issued_at"))
    refusals = list(CertificateRefusal.objects.filter(screening__patient_id__in=ids).order_by("created_at"))
    outbox = list(OutboxMessage.objects.filter(screening__patient_id__in=ids).order_by("created_at"))
    related = [*ids, *(s.pk for s in screenings), *(n.pk for n in notifications), *(link.pk for link in links)]
    related += [*(c.pk for c in certificates), *(m.pk for m in outbox)]
    pharmacy = patient.pharmacy
    return {
        "format_version": FORMAT_VERSION,
        "generated_at": _iso(now or timezone.now()),
        "controller": {
            "pharmacy": pharmacy.name,
            "finess": pharmacy.finess,
            "address": f"{pharmacy.address_line}, {pharmacy.postcode} {pharmacy.city}",
        },
        "about": about(),
        "identity": _identity(patient),
        "other_records": [_identity(r) for r in records[1:]],
        "tests": _tests(screenings),
        "test_queue": _queue(queue),
        "messages": _messages(notifications),
        "result_links": _links(links),
        "certificates": _certificates(certificates, refusals),
        "transmissions": _transmissions(outbox),
        "accesses": _accesses(related),
    }


def about() -> dict[str, str]:
    """What Art. 15(1) asks besides the data: purposes, recipients, retention, rights, source."""
    return {
        "purposes": _s(
            "Recording your test at the pharmacy, reporting it to the national screening platform (SI-DEP) as the law "
            "requires, and giving you your result and certificate."
        ),
        "recipients": _s("The pharmacy, the national screening platform SI-DEP (Ministry of Health), and you."),
        "retention": _s("Identity and results are deleted 3 months after the test (6 months for a positive result)."),
        "rights": _s(
            "You may ask the pharmacy to correct your data, and complain to the CNIL (www.cnil.fr) if you think your "
            "rights are not respected."
        ),
        "source": _s("You, at the pharmacy, or the pharmacy's software."),
    }
