"""Batches, idempotency, duplicates, corrections, patients and CSV files through the API."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from relais.api.models import ApiClient, IdempotentResponse
from relais.audit.models import AuditEvent
from relais.patients.models import Patient
from relais.screenings import csv_import
from relais.screenings.models import Screening
from relais.submissions import services as submissions
from relais.submissions.models import Submission, SubmissionItem, SubmissionStatus
from tests.factories import _body

JSON = "application/json"


def _post(client: Client, path: str, body: Any, bearer: dict[str, str], **headers: str) -> Any:
    return client.post(path, json.dumps(body), content_type=JSON, **bearer, **headers)


NAMES = ["ALPHA", "BRAVO", "CHARLIE", "DELTA", "ECHO", "FOXTROT", "GOLF", "HOTEL"]


def _person(n: int) -> dict[str, Any]:
    return {"last_name": NAMES[n], "first_names": "Alex", "sex": "U", "date_of_birth": "1980-01-01"}


def _item(n: int, minutes: int = 5, **overrides: Any) -> dict[str, Any]:
    return _body(patient=_person(n), sampled_at=(timezone.now() - timedelta(minutes=minutes)).isoformat(), **overrides)


def test_batch_accepts_good_items_and_reports_bad_ones_by_index(client: Client, bearer: dict[str, str]) -> None:
    items = [_item(0), _item(1, device_id="999999"), {"patient": _person(2), "surprise": 1}, _item(3), "not an object", _item(5)]
    items[5]["patient"]["nir"] = "123"
    response = _post(client, "/api/v1/screenings/batch", {"items": items}, bearer)
    assert response.status_code == 200, response.content
    data = response.json()
    assert (data["status"], data["total"], data["accepted"], data["rejected"]) == ("done", 6, 2, 4)
    by_index = {item["index"]: item for item in data["items"]}
    assert by_index[0]["status"] == "accepted" and by_index[0]["screening_id"]
    assert by_index[1]["errors"][0]["field"] == "device" and "EU catalogue" in by_index[1]["errors"][0]["message"]
    fields = {e["field"] for e in by_index[2]["errors"]}
    assert "surprise" in fields and "device_id" in fields  # unknown field refused, missing fields named
    assert by_index[4]["status"] == "rejected"
    assert by_index[5]["errors"][0]["field"] == "patient.nir"
    assert Screening.objects.count() == 2
    assert Patient.objects.count() == 2  # a refused item leaves no patient behind
    status = client.get(f"/api/v1/submissions/{data['submission_id']}", **bearer)
    assert status.status_code == 200 and status.json()["accepted"] == 2


def test_batch_limits(client: Client, bearer: dict[str, str]) -> None:
    assert _post(client, "/api/v1/screenings/batch", {"items": []}, bearer).status_code == 422
    too_many = _post(client, "/api/v1/screenings/batch", {"items": [{}] * 1001}, bearer)
    assert too_many.status_code == 422 and too_many.json()["fields"][0]["field"] == "items"


def test_idempotency_key_replays_the_first_answer(client: Client, bearer: dict[str, str]) -> None:
    body = _body()
    key = {"HTTP_IDEMPOTENCY_KEY": str(uuid.uuid4())}
    first = _post(client, "/api/v1/screenings", body, bearer, **key)
    second = _post(client, "/api/v1/screenings", body, bearer, **key)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json() and second["Idempotent-Replayed"] == "true"
    assert Screening.objects.count() == 1
    other = _post(client, "/api/v1/screenings", {**body, "device_id": "1833"}, bearer, **key)
    assert other.status_code == 422 and other.json()["error"] == "idempotency_key_reused"
    assert IdempotentResponse.objects.count() == 1


def test_refused_requests_are_not_remembered(client: Client, bearer: dict[str, str]) -> None:
    key = {"HTTP_IDEMPOTENCY_KEY": "retry-me"}
    assert _post(client, "/api/v1/screenings", _body(device_id="999999"), bearer, **key).status_code == 422
    assert _post(client, "/api/v1/screenings", _body(), bearer, **key).status_code == 201


def test_batch_idempotency(client: Client, bearer: dict[str, str]) -> None:
    body = {"items": [_item(0), _item(1)]}
    key = {"HTTP_IDEMPOTENCY_KEY": "batch-1"}
    first = _post(client, "/api/v1/screenings/batch", body, bearer, **key)
    again = _post(client, "/api/v1/screenings/batch", body, bearer, **key)
    assert first.json()["items"] == again.json()["items"] and again["Idempotent-Replayed"] == "true"
    assert Screening.objects.count() == 2 and Submission.objects.count() == 1
    assert _post(client, "/api/v1/screenings/batch", {"items": [_item(0)]}, bearer, **key).status_code == 422


def test_interrupted_batch_resumes_without_doubling(client: Client, bearer: dict[str, str]) -> None:
    # A worker died holding a lease: another one takes over after it runs out and skips what was recorded.
    body = {"items": [_item(0), _item(1), _item(2)]}
    key = {"HTTP_IDEMPOTENCY_KEY": "resume"}
    first = _post(client, "/api/v1/screenings/batch", body, bearer, **key)
    submission = Submission.objects.get(pk=first.json()["submission_id"])
    SubmissionItem.objects.filter(submission=submission, position=2).delete()
    Screening.objects.filter(pk=first.json()["items"][2]["screening_id"]).update(sampled_at=timezone.now() - timedelta(days=1))
    Submission.objects.filter(pk=submission.pk).update(status=SubmissionStatus.PROCESSING, lease_owner="dead", lease_until=timezone.now())
    resumed = _post(client, "/api/v1/screenings/batch", body, bearer, **key)
    assert resumed.status_code == 200
    assert [i["status"] for i in resumed.json()["items"]] == ["accepted", "accepted", "accepted"]
    assert Screening.objects.count() == 4  # only item 2 recorded again (its first copy was moved aside above)


def test_busy_submission_answers_409(client: Client, bearer: dict[str, str]) -> None:
    body = {"items": [_item(0)]}
    key = {"HTTP_IDEMPOTENCY_KEY": "busy"}
    first = _post(client, "/api/v1/screenings/batch", body, bearer, **key)
    Submission.objects.filter(pk=first.json()["submission_id"]).update(
        status=SubmissionStatus.PROCESSING, lease_owner="other", lease_until=timezone.now() + timedelta(minutes=1)
    )
    busy = _post(client, "/api/v1/screenings/batch", body, bearer, **key)
    assert busy.status_code == 409 and busy["Retry-After"] == "5" and busy.json()["error"] == "in_progress"


def test_same_test_sent_twice_is_flagged_not_doubled(client: Client, bearer: dict[str, str]) -> None:
    body = _body()
    first = _post(client, "/api/v1/screenings", body, bearer)
    again = _post(client, "/api/v1/screenings", body, bearer)
    assert first.status_code == 201 and first.json()["outcome"] == "accepted"
    assert again.status_code == 200 and again.json()["outcome"] == "duplicate"
    assert again.json()["duplicate_of"] == first.json()["screening_id"] and "Nothing was added" in again.json()["note"]
    changed = _post(client, "/api/v1/screenings", {**body, "results": {"sars-cov-2": "260373001"}}, bearer)
    assert changed.json()["outcome"] == "duplicate" and "correction" in changed.json()["note"]
    assert Screening.objects.count() == 1
    batch = _post(client, "/api/v1/screenings/batch", {"items": [body]}, bearer).json()
    assert batch["duplicates"] == 1 and batch["items"][0]["duplicate_of"] == first.json()["screening_id"]


def test_register_patient_then_submit_by_id(client: Client, bearer: dict[str, str]) -> None:
    person = {**_person(7), "nir": "1 80 01 75 056 123 75"}
    created = _post(client, "/api/v1/patients", person, bearer)
    assert created.status_code == 201 and created.json()["matched_existing"] is False, created.content
    again = _post(client, "/api/v1/patients", person, bearer)
    assert again.status_code == 200 and again.json() == {**created.json(), "matched_existing": True}
    body = _body(patient_id=created.json()["patient_id"])
    del body["patient"]
    submitted = _post(client, "/api/v1/screenings", body, bearer)
    assert submitted.status_code == 201 and submitted.json()["patient_id"] == created.json()["patient_id"]
    both = _post(client, "/api/v1/screenings", {**body, "patient": _person(1)}, bearer)
    assert both.status_code == 422
    unknown = _post(client, "/api/v1/screenings", {**body, "patient_id": str(uuid.uuid4())}, bearer)
    assert unknown.status_code == 422 and unknown.json()["fields"][0]["field"] == "patient_id"


def test_patient_of_another_pharmacy_cannot_be_used(client: Client, bearer: dict[str, str], stranger: Any) -> None:
    from relais.patients.services import patient_register
    from tests.factories import identity

    theirs = patient_register(actor=stranger, identity=identity())
    body = _body(patient_id=str(theirs.pk))
    del body["patient"]
    response = _post(client, "/api/v1/screenings", body, bearer)
    assert response.status_code == 422 and response.json()["fields"][0]["field"] == "patient_id"


def test_correction_and_removal(client: Client, bearer: dict[str, str], screening: Any) -> None:
    first = _post(client, "/api/v1/screenings", _body(), bearer).json()
    sid = first["screening_id"]
    corrected = _post(client, f"/api/v1/screenings/{sid}/correction", {"reason": "misread", "results": {"sars-cov-2": "260373001"}}, bearer)
    assert corrected.status_code == 201 and corrected.json()["version"] == 2 and corrected.json()["status"] == "corrected"
    stale = _post(client, f"/api/v1/screenings/{sid}/removal", {"reason": "wrong patient"}, bearer)
    assert stale.status_code == 422 and "latest version" in stale.json()["fields"][0]["message"]
    removed = _post(client, f"/api/v1/screenings/{corrected.json()['screening_id']}/removal", {"reason": "wrong patient"}, bearer)
    assert removed.status_code == 201 and removed.json()["status"] == "removed" and removed.json()["version"] == 3
    # The web fixture's screening belongs to the same pharmacy; another pharmacy's id is 404.
    assert _post(client, f"/api/v1/screenings/{uuid.uuid4()}/removal", {"reason": "x"}, bearer).status_code == 404
    same = _post(client, f"/api/v1/screenings/{screening.pk}/correction", {"reason": "x", "results": {"sars-cov-2": "bogus"}}, bearer)
    assert same.status_code == 422 and same.json()["fields"][0]["field"].startswith("results")


def test_correcting_another_pharmacys_screening_is_404(client: Client, bearer: dict[str, str], stranger: Any) -> None:
    from relais.intake.services import screening_record
    from relais.patients.services import patient_register
    from tests.factories import identity, screening_input

    theirs = screening_record(actor=stranger, patient_id=patient_register(actor=stranger, identity=identity()).pk, data=screening_input())
    response = _post(client, f"/api/v1/screenings/{theirs.pk}/removal", {"reason": "x"}, bearer)
    assert response.status_code == 404
    assert Screening.objects.filter(series_id=theirs.series_id).count() == 1


def _upload(client: Client, bearer: dict[str, str], content: bytes, name: str = "tests.csv", **headers: str) -> Any:
    return client.post("/api/v1/submissions/csv", {"file": SimpleUploadedFile(name, content, "text/csv")}, **bearer, **headers)


def test_csv_through_the_api(client: Client, bearer: dict[str, str], registered: tuple[ApiClient, Any]) -> None:
    text = csv_import.example_csv()
    lines = text.splitlines()
    lines.append(lines[1].replace("1232", "99999"))  # device outside the catalogue: caught when recording
    lines.append(lines[2].replace("positif", "peut-être"))  # bad result: caught when parsing
    response = _upload(client, bearer, ("\r\n".join(lines) + "\r\n").encode("utf-8"))
    assert response.status_code == 202, response.content
    data = response.json()
    assert data["status"] == "queued" and data["total"] == 7
    submission = Submission.objects.get(pk=data["submission_id"])
    assert "Lefèvre" not in Submission.objects.filter(pk=submission.pk).values_list("content", flat=True)[0]  # stored encrypted
    claimed = submissions.submission_claim_queued(owner="test-worker")
    assert claimed is not None and claimed.pk == submission.pk
    submissions.csv_process(submission=claimed, owner="test-worker")
    status = client.get(f"/api/v1/submissions/{submission.pk}", **bearer).json()
    assert (status["status"], status["accepted"], status["rejected"], status["percent"]) == ("done", 5, 2, 100)
    rejected = {i["index"]: i for i in status["items"] if i["status"] == "rejected"}
    assert set(rejected) == {7, 8}  # spreadsheet row numbers
    assert rejected[7]["errors"][0]["field"] == "device"
    assert rejected[8]["errors"][0]["field"] == "result" and rejected[8]["errors"][0]["value"] == "peut-être"
    report = client.get(f"/api/v1/submissions/{submission.pk}/errors.csv", **bearer)
    assert report.status_code == 200 and report["Content-Type"].startswith("text/csv")
    body = report.content.decode("utf-8-sig")
    assert body.splitlines()[0] == "row,column,value,message" and "peut-être" in body
    assert AuditEvent.objects.filter(action="submission.error_report").exists()
    assert Submission.objects.get(pk=submission.pk).content == ""  # the file is not kept once processed
    # Sending the same file again: every row is flagged as already recorded.
    again = _upload(client, bearer, ("\r\n".join(lines) + "\r\n").encode("utf-8"))
    resubmitted = Submission.objects.get(pk=again.json()["submission_id"])
    submissions.csv_process(submission=resubmitted, owner="w2")
    resubmitted.refresh_from_db()
    assert (resubmitted.accepted, resubmitted.duplicates, resubmitted.rejected) == (0, 5, 2)


def test_csv_file_level_errors_store_nothing(client: Client, bearer: dict[str, str]) -> None:
    response = _upload(client, bearer, b"name;age\nx;1\n")
    assert response.status_code == 422 and response.json()["fields"][0]["field"] == "file"
    assert Submission.objects.count() == 0
    assert _upload(client, bearer, b"\x00\x01binary").status_code == 422


def test_csv_templates_download(client: Client, db: Any) -> None:
    for name in ("template", "example"):
        response = client.get(f"/api/v1/csv/{name}.csv")
        assert response.status_code == 200
        assert csv_import.parse_csv(response.content).ok


@pytest.mark.parametrize("path", ["/api/v1/submissions/{id}", "/api/v1/submissions/{id}/errors.csv"])
def test_another_pharmacys_submission_is_404(client: Client, bearer: dict[str, str], stranger: Any, path: str) -> None:
    theirs, _ = submissions.submission_open(actor=stranger, kind="batch")
    assert client.get(path.format(id=theirs.pk), **bearer).status_code == 404


def test_webhook_registration_through_the_api(client: Client, bearer: dict[str, str]) -> None:
    assert client.get("/api/v1/webhook", **bearer).status_code == 404
    bad = client.put("/api/v1/webhook", json.dumps({"url": "http://example.org/hook"}), content_type=JSON, **bearer)
    assert bad.status_code == 422 and bad.json()["fields"][0]["field"] == "url"
    good = client.put("/api/v1/webhook", json.dumps({"url": "http://127.0.0.1:9/hook"}), content_type=JSON, **bearer)
    assert good.status_code == 200 and client.get("/api/v1/webhook", **bearer).json()["url"] == "http://127.0.0.1:9/hook"
    assert client.delete("/api/v1/webhook", **bearer).status_code == 204
    assert client.get("/api/v1/webhook", **bearer).status_code == 404


def test_one_key_names_one_request_across_endpoints(client: Client, bearer: dict[str, str]) -> None:
    single = {"HTTP_IDEMPOTENCY_KEY": "shared-key-1"}
    assert _post(client, "/api/v1/screenings", _item(0), bearer, **single).status_code == 201
    reused = _post(client, "/api/v1/screenings/batch", {"items": [_item(1)]}, bearer, **single)
    assert reused.status_code == 422 and reused.json()["error"] == "idempotency_key_reused"
    csv_file = SimpleUploadedFile("t.csv", csv_import.example_csv().encode(), "text/csv")
    reused = client.post("/api/v1/submissions/csv", {"file": csv_file}, **bearer, **single)
    assert reused.status_code == 422 and reused.json()["error"] == "idempotency_key_reused"
    batch = {"HTTP_IDEMPOTENCY_KEY": "shared-key-2"}
    assert _post(client, "/api/v1/screenings/batch", {"items": [_item(2)]}, bearer, **batch).status_code == 200
    reused = _post(client, "/api/v1/screenings", _item(3), bearer, **batch)
    assert reused.status_code == 422 and reused.json()["error"] == "idempotency_key_reused"
    assert Screening.objects.count() == 2  # nothing recorded by the refused requests
