"""Many screenings at once: a JSON batch, a CSV file, and their progress item by item."""

from __future__ import annotations

import uuid
from typing import Any, Literal, cast

import pydantic
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from ninja import File, Router, Status
from ninja.files import UploadedFile

from relais.api import idempotency
from relais.api.common import (
    BUSY,
    ERRORS,
    KEY_REUSED,
    KeyHeader,
    api_client,
    field_errors,
    identity_or_errors,
    loc_name,
    screening_input,
)
from relais.api.schemas import BatchIn, ErrorOut, FieldError, ItemOut, ScreeningIn, SubmissionOut, error_message
from relais.audit.services import audit_record
from relais.core.context import request_context
from relais.patients.services import PatientIdentity
from relais.screenings import csv_import
from relais.submissions import services as submissions
from relais.submissions.models import Submission, SubmissionKind

MAX_CSV_BYTES = csv_import.MAX_BYTES
ItemStatusName = Literal["accepted", "duplicate", "rejected"]
CSV_200 = {"responses": {200: {"description": "a CSV file (UTF-8 with BOM)", "content": {"text/csv": {"schema": {"type": "string"}}}}}}

router = Router()


def _prepare(index: int, item: Any) -> submissions.Prepared:
    try:
        body = ScreeningIn.model_validate(item)
    except pydantic.ValidationError as exc:
        return submissions.Prepared(
            position=index,
            errors=[
                submissions.ItemError(loc_name(e["loc"]) if e["loc"] else "item", error_message(e)) for e in exc.errors(include_url=False)
            ],
        )
    identity: PatientIdentity | None = None
    if body.patient is not None:
        checked = identity_or_errors(body.patient)
        if isinstance(checked, list):
            return submissions.Prepared(position=index, errors=[submissions.ItemError(e.field, e.message) for e in checked])
        identity = checked
    return submissions.Prepared(position=index, data=screening_input(body), identity=identity, patient_id=body.patient_id)


def _submission_out(submission: Submission, *, actor: Any, audited: bool = False) -> SubmissionOut:
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
    if submission.kind == SubmissionKind.CSV and submission.rejected and not audited:
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


# Mounted before the screenings router so that "batch" is not read as a screening id.
@router.post("/screenings/batch", response={200: SubmissionOut, 409: ErrorOut, **ERRORS}, tags=["screenings"])
def submit_batch(request: HttpRequest, body: BatchIn, response: HttpResponse, idempotency_key: str | None = KeyHeader) -> Any:
    """Submit up to 1,000 tests at once. Each item is accepted, flagged as a duplicate, or rejected with its field errors, on its
    own: one bad item never refuses the others. The answer lists every item by its index."""
    client = api_client(request)
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


@router.post("/submissions/csv", response={202: SubmissionOut, **ERRORS}, tags=["csv"])
def submit_csv(request: HttpRequest, file: UploadedFile = File(...), idempotency_key: str | None = KeyHeader) -> Any:
    """Upload a CSV file (multipart/form-data, field `file`; columns in docs/integrators.md). The file is checked as a whole at
    once (encoding, header); rows are then recorded in the background: follow GET /submissions/{id}."""
    client = api_client(request)
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
            return Status(422, ErrorOut(error="invalid_file", message="The file cannot be read.", fields=field_errors(exc)))
    return Status(202, _submission_out(submission, actor=actor))


@router.get("/submissions/{submission_id}", response={200: SubmissionOut, 404: ErrorOut, **ERRORS}, tags=["csv"])
def get_submission(request: HttpRequest, submission_id: uuid.UUID) -> Any:
    """Progress and outcome of a batch or CSV file, item by item."""
    client = api_client(request)
    submission = Submission.objects.filter(pk=submission_id, pharmacy_id=client.pharmacy_id).first()
    if submission is None:
        return Status(404, ErrorOut(error="not_found", message="No submission with this id at your pharmacy."))
    # The answer names tests (and CSV values may quote identity): one audited read, like GET /screenings/{id}.
    with request_context(channel="api"), transaction.atomic():
        pairs = submission.items.values_list("screening_id", "screening__patient_id", "duplicate_of_id", "duplicate_of__patient_id")
        named = dict.fromkeys(i for pair in pairs for i in pair if i is not None)
        audit_record(actor=client.service_user, action="submission.api_read", object_type="submission", object_ids=[submission.pk, *named])
        out = _submission_out(submission, actor=client.service_user, audited=True)
    return Status(200, out)


def _csv_response(text: str, filename: str) -> HttpResponse:
    response = HttpResponse(("\ufeff" + text).encode("utf-8"), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


@router.get("/submissions/{submission_id}/errors.csv", response={404: ErrorOut, **ERRORS}, tags=["csv"], openapi_extra=CSV_200)
def get_submission_errors(request: HttpRequest, submission_id: uuid.UUID) -> Any:
    """The rejected and duplicate rows as CSV (row, column, value, message), safe to open in a spreadsheet."""
    client = api_client(request)
    submission = Submission.objects.filter(pk=submission_id, pharmacy_id=client.pharmacy_id).first()
    if submission is None:
        return Status(404, ErrorOut(error="not_found", message="No submission with this id at your pharmacy."))
    with request_context(channel="api"), transaction.atomic():
        audit_record(actor=client.service_user, action="submission.error_report", object_type="submission", object_ids=[submission.pk])
        rows = submissions.error_report_rows(submission)
    return _csv_response(csv_import.write_csv([["row", "column", "value", "message"], *rows]), f"errors-{submission.pk}.csv")


@router.get("/csv/template.csv", response={404: ErrorOut}, auth=None, tags=["csv"], openapi_extra=CSV_200)
def csv_template(request: HttpRequest) -> Any:
    """The header row and one example row, ready to fill in."""
    return _csv_response(csv_import.template_csv(), "relais-template.csv")


@router.get("/csv/example.csv", response={404: ErrorOut}, auth=None, tags=["csv"], openapi_extra=CSV_200)
def csv_example(request: HttpRequest) -> Any:
    """Five realistic rows (fictitious people) that pass validation as they are."""
    return _csv_response(csv_import.example_csv(), "relais-example.csv")
