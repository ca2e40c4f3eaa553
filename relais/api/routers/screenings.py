"""One screening: submit, read its status, correct or remove it."""

from __future__ import annotations

import uuid
from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from ninja import Router, Status

from relais.api.common import (
    ERRORS,
    KeyHeader,
    api_client,
    field_errors,
    identity_or_errors,
    replayable,
    screening_fields,
    screening_input,
    written_screening_fields,
)
from relais.api.schemas import CorrectionIn, ErrorOut, RemovalIn, ScreeningIn, ScreeningOut, SubmitOut
from relais.core.context import request_context
from relais.intake.services import screening_correct, screening_intake
from relais.patients.services import PatientIdentity
from relais.screenings.models import Screening
from relais.screenings.selectors import screening_get

router = Router()


@router.post("/screenings", response={200: SubmitOut, 201: SubmitOut, **ERRORS}, tags=["screenings"])
def submit_screening(request: HttpRequest, body: ScreeningIn, response: HttpResponse, idempotency_key: str | None = KeyHeader) -> Any:
    """Submit one test with its patient (identity, or the id from POST /patients). 201: recorded. 200: the same test (same patient,
    device and sampling time) was already recorded; the answer describes that test, flagged `outcome: duplicate`."""
    actor = api_client(request).service_user

    def handler() -> tuple[int, dict[str, Any]]:
        identity: PatientIdentity | None = None
        if body.patient is not None:
            checked = identity_or_errors(body.patient)
            if isinstance(checked, list):
                return 422, ErrorOut(error="invalid_patient", message="Some patient fields are invalid.", fields=checked).model_dump()
            identity = checked
        try:
            outcome = screening_intake(actor=actor, data=screening_input(body), identity=identity, patient_id=body.patient_id)
        except ValidationError as exc:
            return 422, ErrorOut(error="invalid_screening", message="The test was not recorded.", fields=field_errors(exc)).model_dump()
        out = SubmitOut(
            **written_screening_fields(outcome.screening, outbox=outcome.outbox),
            outcome="duplicate" if outcome.is_duplicate else "accepted",
            duplicate_of=outcome.screening.pk if outcome.is_duplicate else None,
            note=outcome.note,
        )
        return (200 if outcome.is_duplicate else 201), out.model_dump(mode="json")

    with request_context(channel="api"):
        return replayable(request, response, idempotency_key, handler)


@router.get("/screenings/{screening_id}", response={200: ScreeningOut, 404: ErrorOut, **ERRORS}, tags=["screenings"])
def get_screening(request: HttpRequest, screening_id: uuid.UUID) -> Any:
    """A test's status, including the national platform's acknowledgement when it has arrived."""
    client = api_client(request)
    actor = client.service_user
    try:
        if actor.pharmacy_id != client.pharmacy_id:  # the client's pharmacy is the tenant; its service user must agree
            raise Screening.DoesNotExist
        with request_context(channel="api"):
            screening = screening_get(actor=actor, screening_id=screening_id, purpose="api_read")  # audited, like every read
    except Screening.DoesNotExist:
        return Status(404, ErrorOut(error="not_found", message="No test with this id at your pharmacy."))
    return Status(200, ScreeningOut(**screening_fields(screening)))


def _correct(
    request: HttpRequest, response: HttpResponse, key: str | None, screening_id: uuid.UUID, *, reason: str, results: dict[str, str] | None
) -> Any:
    client = api_client(request)

    def handler() -> tuple[int, dict[str, Any]]:
        if not Screening.objects.filter(pk=screening_id, pharmacy_id=client.pharmacy_id).exists():
            return 404, ErrorOut(error="not_found", message="No test with this id at your pharmacy.").model_dump()
        try:
            version = screening_correct(
                actor=client.service_user, screening_id=screening_id, reason=reason, results=results, remove=results is None
            )
        except ValidationError as exc:
            return 422, ErrorOut(error="invalid_correction", message="Nothing was changed.", fields=field_errors(exc)).model_dump()
        return 201, ScreeningOut(**written_screening_fields(version)).model_dump(mode="json")

    with request_context(channel="api"):
        return replayable(request, response, key, handler)


@router.post("/screenings/{screening_id}/correction", response={201: ScreeningOut, 404: ErrorOut, **ERRORS}, tags=["screenings"])
def correct_screening(
    request: HttpRequest, screening_id: uuid.UUID, body: CorrectionIn, response: HttpResponse, idempotency_key: str | None = KeyHeader
) -> Any:
    """Correct a result: adds a version (sent to the national platform as a correction); the original stays as recorded.
    Send the id of the current version; 422 if it was already corrected or removed."""
    return _correct(request, response, idempotency_key, screening_id, reason=body.reason, results=dict(body.results))


@router.post("/screenings/{screening_id}/removal", response={201: ScreeningOut, 404: ErrorOut, **ERRORS}, tags=["screenings"])
def remove_screening(
    request: HttpRequest, screening_id: uuid.UUID, body: RemovalIn, response: HttpResponse, idempotency_key: str | None = KeyHeader
) -> Any:
    """Remove a result entered by mistake: adds a 'removed' version, sent to the national platform as a deletion."""
    return _correct(request, response, idempotency_key, screening_id, reason=body.reason, results=None)
