"""REST API v1 (django-ninja). OpenAPI at /api/v1/openapi.json, browsable docs at /api/v1/docs."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, Literal, cast

import pydantic
from django.core.exceptions import PermissionDenied, RequestDataTooBig, ValidationError
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from ninja import File, Form, Header, NinjaAPI, Status
from ninja.errors import HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.files import UploadedFile
from ninja.security import HttpBearer

from relais.api import idempotency, services
from relais.api.models import ApiClient
from relais.api.schemas import (
    BatchIn,
    CorrectionIn,
    ErrorOut,
    FieldError,
    ItemOut,
    JwksOut,
    PatientIn,
    PatientOut,
    RemovalIn,
    ScreeningIn,
    ScreeningOut,
    SubmissionOut,
    SubmitOut,
    TokenErrorOut,
    TokenOut,
    TransferOut,
    WebhookIn,
    WebhookOut,
    error_message,
)
from relais.audit.services import audit_record
from relais.core.context import request_context
from relais.intake.services import screening_correct, screening_intake
from relais.patients.identity import identity_from
from relais.patients.services import PatientIdentity, patient_resolve
from relais.screenings import csv_import
from relais.screenings.inputs import ScreeningInput
from relais.screenings.models import Screening
from relais.submissions import services as submissions
from relais.submissions.models import Submission, SubmissionKind
from relais.webhooks.models import Webhook
from relais.webhooks.services import webhook_disable, webhook_register
from relais.webhooks.signing import webhook_jwks

MAX_CSV_BYTES = csv_import.MAX_BYTES
ItemStatusName = Literal["accepted", "duplicate", "rejected"]


class ClientBearer(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> ApiClient | None:
        return services.client_for_token(token)


api = NinjaAPI(
    title="Relais API",
    version="1",
    urls_namespace="api-v1",
    auth=ClientBearer(),
    description=(
        "Submit point-of-care test results for your pharmacy. Authenticate with private_key_jwt (RFC 7523) at /token, "
        "then send `Authorization: Bearer <token>`. Every error answer has the same shape: `error` (a stable code), "
        "`message` (what to fix) and `fields` (which field, what is wrong). See docs/integrators.md."
    ),
)

ERRORS: dict[int, Any] = {400: ErrorOut, 401: ErrorOut, 413: ErrorOut, 422: ErrorOut}
KeyHeader = Header(
    None,
    alias="Idempotency-Key",
    max_length=200,
    pattern=r"^[!-~]+$",  # printable ASCII without spaces
    description="any unique string (a UUID is best): a retry with the same key returns the first answer and records nothing twice",
)


def _error(status: int, error: str, message: str, fields: list[FieldError] | None = None) -> HttpResponse:
    return api.create_response(HttpRequest(), ErrorOut(error=error, message=message, fields=fields or []).model_dump(), status=status)


def _loc(loc: tuple[Any, ...] | list[Any], *, skip: int = 0) -> str:
    parts = [str(p) for p in list(loc)[skip:]]
    return ".".join(parts) or "body"


@api.exception_handler(NinjaValidationError)
def on_invalid(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
    fields = []
    for error in exc.errors:
        loc = list(error.get("loc", []))
        if loc[:1] == ["body"]:
            loc = loc[2:] if len(loc) > 1 and loc[1] in {"body", "file"} else loc[1:]
        fields.append(FieldError(field=_loc(loc), message=error_message(error)))
    return _error(422, "invalid_request", "The request does not match the schema: see fields.", fields)


@api.exception_handler(HttpError)
def on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    if exc.status_code == 401:
        return _error(401, "unauthorized", "Send Authorization: Bearer <access_token> obtained from POST /api/v1/token (valid 10 minutes).")
    if isinstance(exc.__cause__, RequestDataTooBig):
        return _error(413, "body_too_large", "The body is larger than 2.5 MB: send at most 1,000 items per batch.")
    if exc.status_code == 400:
        return _error(400, "malformed_body", "The body is not valid JSON (or is nested too deeply): check the syntax.")
    return _error(exc.status_code, "error", str(exc))


@api.exception_handler(Http404)
def on_not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return _error(404, "not_found", "Nothing with this id at your pharmacy.")


@api.exception_handler(PermissionDenied)
def on_forbidden(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
    return _error(403, "forbidden", "This client may not do this.")


def _client(request: HttpRequest) -> ApiClient:
    return request.auth  # type: ignore[attr-defined,no-any-return]


def _field_errors(exc: ValidationError, prefix: str = "") -> list[FieldError]:
    return [FieldError(field=e.field, message=e.message) for e in submissions.validation_errors(exc, prefix=prefix)]


def _identity(patient: PatientIn) -> PatientIdentity | list[FieldError]:
    try:
        return identity_from(patient.model_dump())
    except ValidationError as exc:
        return [FieldError(field=f"patient.{name}", message=m) for name, messages in exc.message_dict.items() for m in messages]


def _screening_input(body: ScreeningIn) -> ScreeningInput:
    return ScreeningInput(
        device_id=body.device_id,
        specimen_type=body.specimen_type,
        sampled_at=body.sampled_at,
        results=dict(body.results),
        information_notice_given=body.information_notice_given,
    )


def _transfer_out(screening: Screening) -> TransferOut | None:
    transfer = screening.transfer
    if transfer is None:
        return None
    return TransferOut(
        status=transfer.status,
        message_id=transfer.message_id,
        acknowledged_at=transfer.acknowledged_at,
        rejection_reason=transfer.rejection_reason,
    )


def _screening_fields(screening: Screening) -> dict[str, Any]:
    return {
        "screening_id": screening.pk,
        "series_id": screening.series_id,
        "version": screening.version,
        "status": screening.status,
        "patient_id": screening.patient_id,
        "transfer": _transfer_out(screening),
    }


def _with_outbox(screening_id: uuid.UUID) -> Screening:
    return Screening.objects.prefetch_related("outbox").get(pk=screening_id)


def _replayable(request: HttpRequest, response: HttpResponse, key: str | None, handler: Callable[[], tuple[int, dict[str, Any]]]) -> Any:
    try:
        status, body, replayed = idempotency.run_once(
            client=_client(request), key=key or "", fingerprint=idempotency.request_hash(request), handler=handler
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


# --- Authentication ------------------------------------------------------------------------------------------------


def _audience(request: HttpRequest) -> str:
    return request.build_absolute_uri("/api/v1/token")


@api.post("/token", response={200: TokenOut, 400: TokenErrorOut, 401: TokenErrorOut, 422: ErrorOut}, auth=None, tags=["auth"])
def token(
    request: HttpRequest,
    grant_type: str = Form(""),
    client_id: str = Form(""),
    client_assertion_type: str = Form(""),
    client_assertion: str = Form(""),
) -> Any:
    """Exchange a signed client assertion (JWT, ES256 or RS256, exp <= 5 min, unique jti, aud = this URL) for a bearer token."""
    fields = {
        "grant_type": grant_type,
        "client_id": client_id,
        "client_assertion_type": client_assertion_type,
        "client_assertion": client_assertion,
    }
    missing = [name for name, value in fields.items() if not value]
    if missing:  # RFC 6749 section 5.2: a missing parameter is invalid_request (400)
        return Status(400, TokenErrorOut(error="invalid_request", error_description=f"missing form field(s): {', '.join(missing)}"))
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


# --- Patients and screenings ---------------------------------------------------------------------------------------


@api.post("/patients", response={200: PatientOut, 201: PatientOut, **ERRORS}, tags=["patients"])
def register_patient(request: HttpRequest, body: PatientIn, response: HttpResponse, idempotency_key: str | None = KeyHeader) -> Any:
    """Register a patient ahead of the visit. The identity of a patient already registered (same NIR and birth date, or the same
    last name, first names, birth date and sex) answers 200 with that patient's id instead of creating a second record; a
    look-alike that differs on one of these is a new record (201) flagged for the pharmacy to review."""
    actor = _client(request).service_user

    def handler() -> tuple[int, dict[str, Any]]:
        identity = _identity(body)
        if isinstance(identity, list):
            return 422, ErrorOut(error="invalid_patient", message="Some patient fields are invalid.", fields=identity).model_dump()
        resolution = patient_resolve(actor=actor, identity=identity)
        out = PatientOut(patient_id=resolution.patient.pk, matched_existing=not resolution.created, needs_review=resolution.needs_review)
        return (201 if resolution.created else 200), out.model_dump(mode="json")

    with request_context(channel="api"):
        return _replayable(request, response, idempotency_key, handler)


@api.post("/screenings", response={200: SubmitOut, 201: SubmitOut, **ERRORS}, tags=["screenings"])
def submit_screening(request: HttpRequest, body: ScreeningIn, response: HttpResponse, idempotency_key: str | None = KeyHeader) -> Any:
    """Submit one test with its patient (identity, or the id from POST /patients). 201: recorded. 200: the same test (same patient,
    device and sampling time) was already recorded; the answer describes that test, flagged `outcome: duplicate`."""
    actor = _client(request).service_user

    def handler() -> tuple[int, dict[str, Any]]:
        identity: PatientIdentity | None = None
        if body.patient is not None:
            checked = _identity(body.patient)
            if isinstance(checked, list):
                return 422, ErrorOut(error="invalid_patient", message="Some patient fields are invalid.", fields=checked).model_dump()
            identity = checked
        try:
            outcome = screening_intake(actor=actor, data=_screening_input(body), identity=identity, patient_id=body.patient_id)
        except ValidationError as exc:
            return 422, ErrorOut(error="invalid_screening", message="The test was not recorded.", fields=_field_errors(exc)).model_dump()
        out = SubmitOut(
            **_screening_fields(_with_outbox(outcome.screening.pk)),
            outcome="duplicate" if outcome.is_duplicate else "accepted",
            duplicate_of=outcome.screening.pk if outcome.is_duplicate else None,
            note=outcome.note,
        )
        return (200 if outcome.is_duplicate else 201), out.model_dump(mode="json")

    with request_context(channel="api"):
        return _replayable(request, response, idempotency_key, handler)


# Registered before /screenings/{screening_id} so that "batch" is not read as an id.
@api.post("/screenings/batch", response={200: SubmissionOut, 409: ErrorOut, **ERRORS}, tags=["screenings"])
def submit_batch(request: HttpRequest, body: BatchIn, response: HttpResponse, idempotency_key: str | None = KeyHeader) -> Any:
    """Submit up to 1,000 tests at once. Each item is accepted, flagged as a duplicate, or rejected with its field errors, on its
    own: one bad item never refuses the others. The answer lists every item by its index."""
    client = _client(request)
    actor = client.service_user
    if idempotency_key and idempotency.used_for_single_request(client, idempotency_key):
        return Status(422, KEY_REUSED)
    with request_context(channel="api"):
        try:
            submission, created = submissions.submission_open(
                actor=actor,
                kind=SubmissionKind.BATCH,
                idempotency_key=idempotency_key or "",
                request_hash=idempotency.request_hash(request),
                total=len(body.items),
            )
        except submissions.IdempotencyConflict:
            return Status(422, KEY_REUSED)
        if not created:
            response["Idempotent-Replayed"] = "true"
        prepared = [_prepare(index, item) for index, item in enumerate(body.items)]
        try:
            submission = submissions.submission_process(submission=submission, items=prepared, owner=f"api-{uuid.uuid4()}")
        except submissions.SubmissionBusy:
            response["Retry-After"] = "5"
            return Status(409, BUSY)
        return Status(200, _submission_out(submission, actor=actor))


@api.get("/screenings/{screening_id}", response={200: ScreeningOut, 404: ErrorOut, **ERRORS}, tags=["screenings"])
def get_screening(request: HttpRequest, screening_id: uuid.UUID) -> Any:
    """A test's status, including the national platform's acknowledgement when it has arrived."""
    client = _client(request)
    screening = Screening.objects.filter(pk=screening_id, pharmacy_id=client.pharmacy_id).prefetch_related("outbox").first()
    if screening is None:
        return Status(404, ErrorOut(error="not_found", message="No test with this id at your pharmacy."))
    return Status(200, ScreeningOut(**_screening_fields(screening)))


def _correct(
    request: HttpRequest, response: HttpResponse, key: str | None, screening_id: uuid.UUID, *, reason: str, results: dict[str, str] | None
) -> Any:
    client = _client(request)

    def handler() -> tuple[int, dict[str, Any]]:
        if not Screening.objects.filter(pk=screening_id, pharmacy_id=client.pharmacy_id).exists():
            return 404, ErrorOut(error="not_found", message="No test with this id at your pharmacy.").model_dump()
        try:
            version = screening_correct(
                actor=client.service_user, screening_id=screening_id, reason=reason, results=results, remove=results is None
            )
        except ValidationError as exc:
            return 422, ErrorOut(error="invalid_correction", message="Nothing was changed.", fields=_field_errors(exc)).model_dump()
        return 201, ScreeningOut(**_screening_fields(_with_outbox(version.pk))).model_dump(mode="json")

    with request_context(channel="api"):
        return _replayable(request, response, key, handler)


@api.post("/screenings/{screening_id}/correction", response={201: ScreeningOut, 404: ErrorOut, **ERRORS}, tags=["screenings"])
def correct_screening(
    request: HttpRequest, screening_id: uuid.UUID, body: CorrectionIn, response: HttpResponse, idempotency_key: str | None = KeyHeader
) -> Any:
    """Correct a result: adds a version (sent to the national platform as a correction); the original stays as recorded.
    Send the id of the current version; 422 if it was already corrected or removed."""
    return _correct(request, response, idempotency_key, screening_id, reason=body.reason, results=dict(body.results))


@api.post("/screenings/{screening_id}/removal", response={201: ScreeningOut, 404: ErrorOut, **ERRORS}, tags=["screenings"])
def remove_screening(
    request: HttpRequest, screening_id: uuid.UUID, body: RemovalIn, response: HttpResponse, idempotency_key: str | None = KeyHeader
) -> Any:
    """Remove a result entered by mistake: adds a 'removed' version, sent to the national platform as a deletion."""
    return _correct(request, response, idempotency_key, screening_id, reason=body.reason, results=None)


# --- Batches and CSV files -----------------------------------------------------------------------------------------


def _prepare(index: int, item: Any) -> submissions.Prepared:
    try:
        body = ScreeningIn.model_validate(item)
    except pydantic.ValidationError as exc:
        return submissions.Prepared(
            position=index,
            errors=[submissions.ItemError(_loc(e["loc"]) if e["loc"] else "item", error_message(e)) for e in exc.errors(include_url=False)],
        )
    identity: PatientIdentity | None = None
    if body.patient is not None:
        checked = _identity(body.patient)
        if isinstance(checked, list):
            return submissions.Prepared(position=index, errors=[submissions.ItemError(e.field, e.message) for e in checked])
        identity = checked
    return submissions.Prepared(position=index, data=_screening_input(body), identity=identity, patient_id=body.patient_id)


def _submission_out(submission: Submission, *, actor: Any) -> SubmissionOut:
    items = []
    for item in submission.items.all():
        errors = [FieldError(field=e.field, message=e.message, value=e.value or None) for e in submissions.item_errors(item)]
        items.append(
            ItemOut(
                index=item.position,
                status=cast(ItemStatusName, item.status),
                # As for one screening: a duplicate points at the earlier test it repeats.
                screening_id=item.screening_id or (item.duplicate_of_id if item.status == "duplicate" else None),
                duplicate_of=item.duplicate_of_id,
                errors=errors,
            )
        )
    if submission.kind == SubmissionKind.CSV and submission.rejected:
        with transaction.atomic():  # CSV error values may quote identity
            audit_record(actor=actor, action="submission.view", object_type="submission", object_ids=[submission.pk])
    return SubmissionOut(
        submission_id=submission.pk,
        kind=cast(Any, submission.kind),
        status=cast(Any, submission.status),
        total=submission.total,
        processed=submission.processed,
        accepted=submission.accepted,
        duplicates=submission.duplicates,
        rejected=submission.rejected,
        percent=submission.percent,
        created_at=submission.created_at,
        finished_at=submission.finished_at,
        failure_reason=submission.failure_reason,
        items=items,
    )


BUSY = ErrorOut(error="in_progress", message="A request with this Idempotency-Key is still being processed: retry in a few seconds.")
KEY_REUSED = ErrorOut(
    error="idempotency_key_reused", message="This Idempotency-Key was already used with a different request: use a new key."
)


@api.post("/submissions/csv", response={202: SubmissionOut, **ERRORS}, tags=["csv"])
def submit_csv(request: HttpRequest, file: UploadedFile = File(...), idempotency_key: str | None = KeyHeader) -> Any:
    """Upload a CSV file (multipart/form-data, field `file`; columns in docs/integrators.md). The file is checked as a whole at
    once (encoding, header); rows are then recorded in the background: follow GET /submissions/{id}."""
    client = _client(request)
    actor = client.service_user
    if idempotency_key and idempotency.used_for_single_request(client, idempotency_key):
        return Status(422, KEY_REUSED)
    if file.size is None or file.size > MAX_CSV_BYTES:
        return Status(413, ErrorOut(error="file_too_large", message="The file is larger than 20 MB: split it into several files."))
    data = file.read()
    with request_context(channel="api"):
        try:
            submission, _created = submissions.csv_submit(
                actor=actor,
                data=data,
                file_name=file.name or "",
                idempotency_key=idempotency_key or "",
                request_hash=idempotency.request_hash(request, body=data),
            )
        except submissions.IdempotencyConflict:
            return Status(422, KEY_REUSED)
        except ValidationError as exc:
            return Status(422, ErrorOut(error="invalid_file", message="The file cannot be read.", fields=_field_errors(exc)))
    return Status(202, _submission_out(submission, actor=actor))


@api.get("/submissions/{submission_id}", response={200: SubmissionOut, 404: ErrorOut, **ERRORS}, tags=["csv"])
def get_submission(request: HttpRequest, submission_id: uuid.UUID) -> Any:
    """Progress and outcome of a batch or CSV file, item by item."""
    client = _client(request)
    submission = Submission.objects.filter(pk=submission_id, pharmacy_id=client.pharmacy_id).first()
    if submission is None:
        return Status(404, ErrorOut(error="not_found", message="No submission with this id at your pharmacy."))
    return Status(200, _submission_out(submission, actor=client.service_user))


CSV_200 = {"responses": {200: {"description": "a CSV file (UTF-8 with BOM)", "content": {"text/csv": {"schema": {"type": "string"}}}}}}


def _csv_response(text: str, filename: str) -> HttpResponse:
    response = HttpResponse(("\ufeff" + text).encode("utf-8"), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


@api.get("/submissions/{submission_id}/errors.csv", response={404: ErrorOut, **ERRORS}, tags=["csv"], openapi_extra=CSV_200)
def get_submission_errors(request: HttpRequest, submission_id: uuid.UUID) -> Any:
    """The rejected and duplicate rows as CSV (row, column, value, message), safe to open in a spreadsheet."""
    client = _client(request)
    submission = Submission.objects.filter(pk=submission_id, pharmacy_id=client.pharmacy_id).first()
    if submission is None:
        return Status(404, ErrorOut(error="not_found", message="No submission with this id at your pharmacy."))
    with transaction.atomic():
        audit_record(actor=client.service_user, action="submission.error_report", object_type="submission", object_ids=[submission.pk])
        rows = submissions.error_report_rows(submission)
    return _csv_response(csv_import.write_csv([["row", "column", "value", "message"], *rows]), f"errors-{submission.pk}.csv")


@api.get("/csv/template.csv", response={404: ErrorOut}, auth=None, tags=["csv"], openapi_extra=CSV_200)
def csv_template(request: HttpRequest) -> Any:
    """The header row and one example row, ready to fill in."""
    return _csv_response(csv_import.template_csv(), "relais-template.csv")


@api.get("/csv/example.csv", response={404: ErrorOut}, auth=None, tags=["csv"], openapi_extra=CSV_200)
def csv_example(request: HttpRequest) -> Any:
    """Five realistic rows (fictitious people) that pass validation as they are."""
    return _csv_response(csv_import.example_csv(), "relais-example.csv")


# --- Webhooks ------------------------------------------------------------------------------------------------------


@api.get("/webhook-keys", response={200: JwksOut, 404: ErrorOut}, auth=None, tags=["webhooks"])
def webhook_keys(request: HttpRequest) -> Any:
    """The public keys (JWK set) that verify the Relais-Signature header of webhook notifications. Cache; refetch on an unknown kid."""
    return Status(200, JwksOut(**webhook_jwks()))


def _webhook(client: ApiClient) -> Webhook | None:
    return Webhook.objects.filter(client=client, disabled_at__isnull=True).order_by("-created_at").first()


@api.get("/webhook", response={200: WebhookOut, 404: ErrorOut, **ERRORS}, tags=["webhooks"])
def get_webhook(request: HttpRequest) -> Any:
    """Where notifications are sent (404 when none is registered)."""
    webhook = _webhook(_client(request))
    if webhook is None:
        return Status(404, ErrorOut(error="not_found", message="No webhook registered: PUT /webhook to register one."))
    return Status(200, WebhookOut(url=webhook.url, created_at=webhook.created_at))


@api.put("/webhook", response={200: WebhookOut, **ERRORS}, tags=["webhooks"])
def put_webhook(request: HttpRequest, body: WebhookIn) -> Any:
    """Register (or replace) the https address that receives signed notifications when a screening is acknowledged or rejected
    by the national platform. Verify the Relais-Signature header with the keys at GET /webhook-keys."""
    client = _client(request)
    try:
        with request_context(channel="api"):
            webhook = webhook_register(actor=client.service_user, client=client, url=body.url)
    except ValidationError as exc:
        return Status(422, ErrorOut(error="invalid_webhook", message="The address was not registered.", fields=_field_errors(exc)))
    return Status(200, WebhookOut(url=webhook.url, created_at=webhook.created_at))


@api.delete("/webhook", response={204: None, **ERRORS}, tags=["webhooks"])
def delete_webhook(request: HttpRequest) -> Any:
    """Stop notifications."""
    client = _client(request)
    webhook = _webhook(client)
    if webhook is not None:
        with request_context(channel="api"):
            webhook_disable(actor=client.service_user, webhook=webhook)
    return Status(204, None)
