"""POST /patients: register a patient ahead of the visit, or find the one already registered."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from ninja import Router

from relais.api.common import ERRORS, KeyHeader, api_client, identity_or_errors, replayable
from relais.api.schemas import ErrorOut, PatientIn, PatientOut
from relais.core.context import request_context
from relais.patients.services import patient_resolve

router = Router()


@router.post("/patients", response={200: PatientOut, 201: PatientOut, **ERRORS}, tags=["patients"])
def register_patient(request: HttpRequest, body: PatientIn, response: HttpResponse, idempotency_key: str | None = KeyHeader) -> Any:
    """Register a patient ahead of the visit. The identity of a patient already registered (same NIR and birth date, or the same
    last name, first names, birth date and sex) answers 200 with that patient's id instead of creating a second record; a
    look-alike that differs on one of these is a new record (201) flagged for the pharmacy to review."""
    actor = api_client(request).service_user

    def handler() -> tuple[int, dict[str, Any]]:
        identity = identity_or_errors(body)
        if isinstance(identity, list):
            return 422, ErrorOut(error="invalid_patient", message="Some patient fields are invalid.", fields=identity).model_dump()
        resolution = patient_resolve(actor=actor, identity=identity)
        out = PatientOut(patient_id=resolution.patient.pk, matched_existing=not resolution.created, needs_review=resolution.needs_review)
        return (201 if resolution.created else 200), out.model_dump(mode="json")

    with request_context(channel="api"):
        return replayable(request, response, idempotency_key, handler)
