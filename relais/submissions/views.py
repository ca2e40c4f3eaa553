"""Web bulk upload: pick a CSV file, watch it being recorded, download what needs fixing."""

from __future__ import annotations

import uuid
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import translation
from django.views.decorators.cache import never_cache

from relais.accounts.access import staff_required
from relais.accounts.models import User
from relais.audit.services import audit_record
from relais.core.context import request_context
from relais.core.forms import apply_service_errors
from relais.core.tenancy import for_actor
from relais.screenings import csv_import
from relais.submissions import services
from relais.submissions.forms import UploadForm
from relais.submissions.models import ItemStatus, Submission, SubmissionKind

SHOWN_PROBLEMS = 500  # more are in the downloadable report


def _submission_or_404(user: User, submission_id: uuid.UUID) -> Submission:
    submission = for_actor(Submission, user).filter(pk=submission_id).first()
    if submission is None:
        raise Http404
    return submission


def _csv(text: str, filename: str) -> HttpResponse:
    response = HttpResponse(("\ufeff" + text).encode("utf-8"), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@staff_required(sees_patients=True)
def upload(request: HttpRequest, user: User) -> HttpResponse:
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            with request_context(channel="web"):
                submission, _created = services.csv_submit(actor=user, data=upload.read(), file_name=upload.name or "")
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            return redirect("submissions:detail", submission_id=submission.pk)
    recent = for_actor(Submission, user).filter(kind=SubmissionKind.CSV).order_by("-created_at")[:10]
    return render(request, "submissions/upload.html", {"form": form, "recent": recent, "columns": csv_import.COLUMNS})


@staff_required(sees_patients=True)
def template(request: HttpRequest, user: User) -> HttpResponse:
    french = (translation.get_language() or "").startswith("fr")
    return _csv(csv_import.template_csv(french=french), "modele-relais.csv" if french else "relais-template.csv")


@staff_required(sees_patients=True)
def example(request: HttpRequest, user: User) -> HttpResponse:
    return _csv(csv_import.example_csv(), "relais-example.csv")


@staff_required(sees_patients=True)
def detail(request: HttpRequest, user: User, submission_id: uuid.UUID) -> HttpResponse:
    submission = _submission_or_404(user, submission_id)
    problems: list[tuple[Any, services.ItemError]] = []
    if submission.rejected or submission.duplicates:
        with transaction.atomic():  # the problems quote the file's values, which may be identity
            audit_record(actor=user, action="submission.view", object_type="submission", object_ids=[submission.pk])
            for item in submission.items.exclude(status=ItemStatus.ACCEPTED).order_by("position")[:SHOWN_PROBLEMS]:
                problems.extend((item, error) for error in services.item_errors(item))
    return render(
        request,
        "submissions/detail.html",
        {
            "submission": submission,
            "problems": problems,
            "more_problems": submission.rejected + submission.duplicates > SHOWN_PROBLEMS,
            "running": submission.status in ("queued", "processing"),
        },
    )


@staff_required(sees_patients=True)
@never_cache
def status(request: HttpRequest, user: User, submission_id: uuid.UUID) -> JsonResponse:
    s = _submission_or_404(user, submission_id)
    return JsonResponse(
        {
            "status": s.status,
            "status_label": s.get_status_display(),
            "total": s.total,
            "processed": s.processed,
            "percent": s.percent,
            "accepted": s.accepted,
            "duplicates": s.duplicates,
            "rejected": s.rejected,
        }
    )


@staff_required(sees_patients=True)
def errors_csv(request: HttpRequest, user: User, submission_id: uuid.UUID) -> HttpResponse:
    submission = _submission_or_404(user, submission_id)
    with transaction.atomic():
        audit_record(actor=user, action="submission.error_report", object_type="submission", object_ids=[submission.pk])
        rows = services.error_report_rows(submission)
    return _csv(csv_import.write_csv([["row", "column", "value", "message"], *rows]), f"relais-errors-{submission.pk}.csv")
