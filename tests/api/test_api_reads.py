"""Issue 12: every API read of a screening or a patient writes an audit event, like the web pages."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from relais.api.api import api
from relais.audit.models import AuditEvent
from relais.screenings import csv_import
from relais.screenings.models import Screening
from relais.submissions import services as submissions
from relais.submissions.models import Submission
from tests.factories import _body

# Each GET handler: the audit action it writes, or None when its answer holds nothing about a patient or a test.
GET_HANDLERS: dict[str, str | None] = {
    "get_screening": "screening.api_read",
    "get_submission": "submission.api_read",
    "get_submission_errors": "submission.error_report",
    "csv_template": None,
    "csv_example": None,
    "webhook_keys": None,
    "get_webhook": None,
}


def test_every_get_handler_is_classified() -> None:
    """A new GET handler fails here until someone decides whether it reads personal data (and audits it)."""
    found = {
        op.view_func.__name__
        for _prefix, router in api._routers
        for view in router.path_operations.values()
        for op in view.operations
        if "GET" in op.methods
    }
    assert found == set(GET_HANDLERS)


def _events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action))


@pytest.mark.django_db
def test_reading_a_screening_is_audited_and_a_miss_is_not(client: Client, bearer: dict[str, str], screening: Any, stranger: Any) -> None:
    assert client.get(f"/api/v1/screenings/{screening.pk}", **bearer).status_code == 200
    [event] = _events("screening.api_read")
    assert event.object_ids == [str(screening.pk), str(screening.patient_id)] and event.channel == "api"
    assert client.get(f"/api/v1/screenings/{Screening().pk}", **bearer).status_code == 404
    assert len(_events("screening.api_read")) == 1


@pytest.mark.django_db
def test_reading_a_batch_is_audited_naming_its_tests_and_patients(client: Client, bearer: dict[str, str]) -> None:
    items = [_body(), {"surprise": 1}]
    response = client.post("/api/v1/screenings/batch", json.dumps({"items": items}), content_type="application/json", **bearer)
    submission_id = response.json()["submission_id"]
    assert not _events("submission.api_read")  # submitting is audited as the tests' creation, not as a read
    status = client.get(f"/api/v1/submissions/{submission_id}", **bearer)
    assert status.status_code == 200
    [event] = _events("submission.api_read")
    screening = Screening.objects.get()
    assert event.object_ids == [submission_id, str(screening.pk), str(screening.patient_id)]
    assert event.channel == "api" and event.object_type == "submission"
    assert not _events("submission.view")  # one event per read, not two


@pytest.mark.django_db
def test_reading_a_csv_file_and_its_error_report_is_audited(client: Client, bearer: dict[str, str]) -> None:
    lines = csv_import.example_csv().splitlines()
    lines.append(lines[1].replace("1232", "99999"))  # a device outside the catalogue: one rejected row
    upload = SimpleUploadedFile("tests.csv", ("\r\n".join(lines) + "\r\n").encode(), content_type="text/csv")
    response = client.post("/api/v1/submissions/csv", {"file": upload}, **bearer)
    assert response.status_code == 202, response.content
    submission = Submission.objects.get(pk=response.json()["submission_id"])
    submissions.csv_process(submission=submission, owner="test")
    assert client.get(f"/api/v1/submissions/{submission.pk}", **bearer).status_code == 200
    [read] = _events("submission.api_read")
    assert read.object_ids[0] == str(submission.pk) and read.channel == "api"
    assert not _events("submission.view")  # the read's own event covers the quoted values
    assert client.get(f"/api/v1/submissions/{submission.pk}/errors.csv", **bearer).status_code == 200
    [report] = _events("submission.error_report")
    assert report.object_ids == [str(submission.pk)] and report.channel == "api"


@pytest.mark.django_db
def test_another_pharmacys_submission_is_404_and_not_audited(client: Client, bearer: dict[str, str], stranger: Any) -> None:
    theirs, _ = submissions.submission_open(actor=stranger, kind="batch")
    assert client.get(f"/api/v1/submissions/{theirs.pk}", **bearer).status_code == 404
    assert not _events("submission.api_read")
