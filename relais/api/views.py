"""REST API v1 (django-ninja). OpenAPI at /api/v1/openapi.json, browsable docs at /api/v1/docs."""

from __future__ import annotations

import uuid
from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpRequest
from ninja import Form, NinjaAPI, Status
from ninja.security import HttpBearer

from relais.api import services
from relais.api.models import ApiClient
from relais.api.schemas import ErrorOut, FieldError, ScreeningIn, ScreeningOut, TokenErrorOut, TokenOut, TransferOut
from relais.core.context import request_context
from relais.patients.forms import PatientForm
from relais.patients.services import LikelyDuplicate, patient_register
from relais.screenings.models import Screening
from relais.screenings.services import ScreeningInput, screening_record


class ClientBearer(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> ApiClient | None:
        return services.client_for_token(token)


api = NinjaAPI(
    title="Relais API",
    version="1",
    urls_namespace="api-v1",
    description="Submit point-of-care test results for your pharmacy. Authenticate with private_key_jwt (RFC 7523): see docs/.",
)


def _errors(exc: ValidationError, prefix: str = "") -> list[FieldError]:
    return [
        FieldError(field=f"{prefix}{field}" if field != "__all__" else prefix.rstrip(".") or "body", message=m)
        for field, messages in exc.message_dict.items()
        for m in messages
    ]


def _audience(request: HttpRequest) -> str:
    return request.build_absolute_uri("/api/v1/token")


@api.post("/token", response={200: TokenOut, 400: TokenErrorOut, 401: TokenErrorOut}, auth=None, tags=["auth"])
def token(
    request: HttpRequest,
    grant_type: str = Form(...),
    client_id: str = Form(...),
    client_assertion_type: str = Form(...),
    client_assertion: str = Form(...),
) -> Any:
    """Exchange a signed client assertion (JWT, ES256 or RS256, exp <= 5 min, unique jti, aud = this URL) for a bearer token."""
    if grant_type != "client_credentials":
        return Status(400, TokenErrorOut(error="unsupported_grant_type", error_description="use grant_type=client_credentials"))
    if client_assertion_type != services.ASSERTION_TYPE:
        return Status(
            400, TokenErrorOut(error="invalid_request", error_description=f"client_assertion_type must be {services.ASSERTION_TYPE}")
        )
    try:
        with request_context(channel="api"):
            issued = services.token_issue(client_id=client_id, assertion=client_assertion, audience=_audience(request))
    except services.TokenError as exc:
        return Status(401, TokenErrorOut(error=exc.code, error_description=exc.description))
    return Status(200, TokenOut(access_token=issued.access_token, token_type="Bearer", expires_in=issued.expires_in))  # noqa: S106


def _screening_out(screening: Screening) -> ScreeningOut:
    transfer = screening.transfer
    return ScreeningOut(
        screening_id=screening.pk,
        series_id=screening.series_id,
        version=screening.version,
        status=screening.status,
        patient_id=screening.patient_id,
        transfer=None
        if transfer is None
        else TransferOut(
            status=transfer.status,
            message_id=transfer.message_id,
            acknowledged_at=transfer.acknowledged_at,
            rejection_reason=transfer.rejection_reason,
        ),
    )


@api.post("/screenings", response={201: ScreeningOut, 422: ErrorOut}, auth=ClientBearer(), tags=["screenings"])
def submit_screening(request: HttpRequest, body: ScreeningIn) -> Any:
    """Submit one test with its patient. The patient is matched to an existing record of your pharmacy, or registered."""
    client: ApiClient = request.auth  # type: ignore[attr-defined]
    actor = client.service_user
    form = PatientForm({**body.patient.model_dump(), "date_of_birth": body.patient.date_of_birth.isoformat()})
    if not form.is_valid():
        fields = [FieldError(field=f"patient.{name}", message=str(m)) for name, messages in form.errors.items() for m in messages]
        return Status(422, ErrorOut(error="invalid_patient", message="Some patient fields are invalid.", fields=fields))
    with request_context(channel="api"):
        try:
            patient = patient_register(actor=actor, identity=form.identity())
        except LikelyDuplicate as duplicate:
            patient = duplicate.matches[0]  # same identity already registered: the test goes to that record
        data = ScreeningInput(
            device_id=body.device_id,
            specimen_type=body.specimen_type,
            sampled_at=body.sampled_at,
            results=dict(body.results),
            consent_share_identity=body.consent_share_identity,
        )
        try:
            screening = screening_record(actor=actor, patient_id=patient.pk, data=data)
        except ValidationError as exc:
            return Status(422, ErrorOut(error="invalid_screening", message="The test was not recorded.", fields=_errors(exc)))
    screening = Screening.objects.prefetch_related("outbox").get(pk=screening.pk)
    return Status(201, _screening_out(screening))


@api.get("/screenings/{screening_id}", response={200: ScreeningOut, 404: ErrorOut}, auth=ClientBearer(), tags=["screenings"])
def get_screening(request: HttpRequest, screening_id: uuid.UUID) -> Any:
    """A test's status, including the national platform's acknowledgement when it has arrived."""
    client: ApiClient = request.auth  # type: ignore[attr-defined]
    screening = Screening.objects.filter(pk=screening_id, pharmacy_id=client.pharmacy_id).prefetch_related("outbox").first()
    if screening is None:
        return Status(404, ErrorOut(error="not_found", message="No test with this id at your pharmacy."))
    return Status(200, _screening_out(screening))
