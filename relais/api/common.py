"""Helpers every API router shares: the calling client, field errors, the idempotency replay, the screening answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from ninja import Header, Status

from relais.api import idempotency
from relais.api.models import ApiClient
from relais.api.schemas import ErrorOut, FieldError, PatientIn, ScreeningIn, TransferOut
from relais.patients.identity import identity_from
from relais.patients.services import PatientIdentity
from relais.screenings.inputs import ScreeningInput
from relais.screenings.models import Screening
from relais.submissions import services as submissions
from relais.transfer.models import OutboxMessage

ERRORS: dict[int, Any] = {400: ErrorOut, 401: ErrorOut, 413: ErrorOut, 422: ErrorOut}
KeyHeader = Header(
    None,
    alias="Idempotency-Key",
    max_length=200,
    pattern=r"^[!-~]+$",  # printable ASCII without spaces
    description="any unique string (a UUID is best): a retry with the same key returns the first answer and records nothing twice",
)
BUSY = ErrorOut(error="in_progress", message="A request with this Idempotency-Key is still being processed: retry in a few seconds.")
KEY_REUSED = ErrorOut(
    error="idempotency_key_reused", message="This Idempotency-Key was already used with a different request: use a new key."
)


def api_client(request: HttpRequest) -> ApiClient:
    return request.auth  # type: ignore[attr-defined,no-any-return]


def field_errors(exc: ValidationError, prefix: str = "") -> list[FieldError]:
    return [FieldError(field=e.field, message=e.message) for e in submissions.validation_errors(exc, prefix=prefix)]


def loc_name(loc: tuple[Any, ...] | list[Any], *, skip: int = 0) -> str:
    parts = [str(p) for p in list(loc)[skip:]]
    return ".".join(parts) or "body"


def identity_or_errors(patient: PatientIn) -> PatientIdentity | list[FieldError]:
    try:
        return identity_from(patient.model_dump())
    except ValidationError as exc:
        return [FieldError(field=f"patient.{name}", message=m) for name, messages in exc.message_dict.items() for m in messages]


def screening_input(body: ScreeningIn) -> ScreeningInput:
    return ScreeningInput(
        device_id=body.device_id,
        specimen_type=body.specimen_type,
        sampled_at=body.sampled_at,
        results=dict(body.results),
        information_notice_given=body.information_notice_given,
        kit_lot=body.kit_lot,
        kit_expiry=body.kit_expiry,
        symptoms=body.symptoms or "",
        symptom_onset=body.symptom_onset,
    )


def _transfer_out(transfer: OutboxMessage | None) -> TransferOut | None:
    if transfer is None:
        return None
    return TransferOut(
        status=transfer.status,
        message_id=transfer.message_id,
        acknowledged_at=transfer.acknowledged_at,
        rejection_reason=transfer.rejection_reason,
    )


def _answer(screening: Screening, transfer: OutboxMessage | None) -> dict[str, Any]:
    return {
        "screening_id": screening.pk,
        "series_id": screening.series_id,
        "version": screening.version,
        "status": screening.status,
        "patient_id": screening.patient_id,
        "kit_lot": screening.kit_lot,
        "kit_expiry": screening.kit_expiry,
        "symptoms": screening.symptoms,
        "symptom_onset": screening.symptom_onset,
        "transfer": _transfer_out(transfer),
    }


def screening_fields(screening: Screening) -> dict[str, Any]:
    """The answer describing ``screening`` (prefetch its outbox rows when reading it)."""
    return _answer(screening, screening.transfer)


def written_screening_fields(screening: Screening, *, outbox: OutboxMessage | None = None) -> dict[str, Any]:
    """The answer for a version this request just recorded or found (in memory, read in its transaction): its latest
    outbox row is the one just written when given (a new test), else read in one query."""
    if outbox is None:
        outbox = OutboxMessage.objects.filter(screening_id=screening.pk).order_by("-created_at").first()
    return _answer(screening, outbox)


def replayable(request: HttpRequest, response: HttpResponse, key: str | None, handler: Callable[[], tuple[int, dict[str, Any]]]) -> Any:
    """Run ``handler`` once per Idempotency-Key; a retry gets the first answer back, flagged Idempotent-Replayed."""
    try:
        status, body, replayed = idempotency.run_once(
            client=api_client(request), key=key or "", fingerprint=idempotency.request_hash(request), handler=handler
        )
    except idempotency.KeyReused:
        return Status(
            422,
            ErrorOut(
                error="idempotency_key_reused",
                message="This Idempotency-Key was already used with a different request: use a new key for a new request.",
            ),
        )
    if replayed:
        response["Idempotent-Replayed"] = "true"
    return Status(status, body)
