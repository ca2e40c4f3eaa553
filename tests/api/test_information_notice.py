"""The API and CSV carry the pharmacist's information-notice confirmation; the old consent field is accepted and ignored."""

from __future__ import annotations

import json
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from relais.certificates.services import certificate_for_screening
from relais.screenings import csv_import
from relais.screenings.models import Screening
from relais.submissions import services as submissions
from relais.transfer.delivery import build_payload
from relais.transfer.formats import fhir, hl7v2
from tests.factories import _body

JSON = "application/json"


def _post(client: Client, path: str, body: Any, bearer: dict[str, str]) -> Any:
    return client.post(path, json.dumps(body), content_type=JSON, **bearer)


def _without_notice(**overrides: Any) -> dict[str, Any]:
    body = _body(**overrides)
    del body["information_notice_given"]
    return body


def test_a_screening_without_the_confirmation_is_refused_naming_the_field(client: Client, bearer: dict[str, str]) -> None:
    for body in (_without_notice(), _body(information_notice_given=False), _without_notice(consent_share_identity=True)):
        response = _post(client, "/api/v1/screenings", body, bearer)
        assert response.status_code == 422, response.content
        fields = response.json()["fields"]
        assert [f["field"] for f in fields] == ["information_notice_given"], fields
        assert "information notice" in fields[0]["message"]
    assert Screening.objects.count() == 0


def test_the_old_consent_field_is_ignored_identity_and_certificate_follow(client: Client, bearer: dict[str, str]) -> None:
    body = _body(consent_share_identity=False)
    body["patient"] = {**body["patient"], "last_name": "VAUQUELIN-ZORN", "nir": "294037512000591", "date_of_birth": "1994-03-12"}
    response = _post(client, "/api/v1/screenings", body, bearer)
    assert response.status_code == 201, response.content
    screening = Screening.objects.select_related("patient", "pharmacy", "device").get(pk=response.json()["screening_id"])
    assert screening.information_notice_given is True and screening.identity_withheld is False
    payload = build_payload(screening.outbox.get(), screening)
    hl7, bundle = hl7v2.render_oru_r01(payload), fhir.render_bundle(payload)
    assert "VAUQUELIN-ZORN" in hl7 and "294037512000591" in hl7 and "ANONYME" not in hl7
    assert "VAUQUELIN-ZORN" in bundle and "294037512000591" in bundle
    assert certificate_for_screening(screening=screening) is not None


def test_batch_items_without_the_confirmation_are_rejected_by_index(client: Client, bearer: dict[str, str]) -> None:
    person = {"first_names": "Alex", "sex": "U", "date_of_birth": "1980-01-01"}
    items = [
        _body(patient={**person, "last_name": "ALPHA"}),
        _without_notice(patient={**person, "last_name": "BRAVO"}),
        _body(patient={**person, "last_name": "CHARLIE"}, information_notice_given=False),
    ]
    response = _post(client, "/api/v1/screenings/batch", {"items": items}, bearer)
    assert response.status_code == 200, response.content
    by_index = {item["index"]: item for item in response.json()["items"]}
    assert by_index[0]["status"] == "accepted"
    for index in (1, 2):
        assert by_index[index]["status"] == "rejected"
        assert [e["field"] for e in by_index[index]["errors"]] == ["information_notice_given"], by_index[index]


def test_openapi_requires_the_confirmation_and_marks_consent_deprecated(client: Client, db: Any) -> None:
    schema = client.get("/api/v1/openapi.json").json()["components"]["schemas"]["ScreeningIn"]
    assert "information_notice_given" in schema["required"]
    assert schema["properties"]["information_notice_given"]["type"] == "boolean"
    assert "consent_share_identity" not in schema["required"]
    assert schema["properties"]["consent_share_identity"]["deprecated"] is True


def _upload(client: Client, bearer: dict[str, str], text: str) -> Any:
    return client.post("/api/v1/submissions/csv", {"file": SimpleUploadedFile("t.csv", text.encode(), "text/csv")}, **bearer)


def test_csv_rows_need_yes_and_the_old_consent_column_is_ignored(client: Client, bearer: dict[str, str]) -> None:
    lines = csv_import.example_csv().splitlines()
    header = lines[0].split(",")
    notice = header.index("information_notice")
    cells = lines[2].split(",")  # the example's second row has no comma inside a value
    no = ",".join([*cells[:notice], "non", *cells[notice + 1 :]])
    old = [",".join([*header, "consent"]), lines[3] + ",non"]  # a file that still has the consent column, with no
    response = _upload(client, bearer, "\r\n".join([lines[0], lines[1], no]) + "\r\n")
    assert response.status_code == 202, response.content
    submission = submissions.submission_claim_queued(owner="t")
    assert submission is not None
    submissions.csv_process(submission=submission, owner="t")
    status = client.get(f"/api/v1/submissions/{submission.pk}", **bearer).json()
    assert (status["accepted"], status["rejected"]) == (1, 1)
    [rejected] = [i for i in status["items"] if i["status"] == "rejected"]
    assert rejected["index"] == 3 and rejected["errors"][0]["field"] == "information_notice"
    # A file with both columns: consent=no is read and ignored; the identity goes and a certificate is issued.
    both = _upload(client, bearer, "\r\n".join(old) + "\r\n")
    assert both.status_code == 202, both.content
    submission = submissions.submission_claim_queued(owner="t")
    assert submission is not None
    submissions.csv_process(submission=submission, owner="t")
    [item] = client.get(f"/api/v1/submissions/{submission.pk}", **bearer).json()["items"]
    assert item["status"] == "accepted", item
    screening = Screening.objects.get(pk=item["screening_id"])
    assert screening.identity_withheld is False and screening.information_notice_given is True
    assert certificate_for_screening(screening=screening) is not None


def test_an_old_csv_with_only_the_consent_column_is_told_what_changed(client: Client, bearer: dict[str, str]) -> None:
    lines = csv_import.example_csv().splitlines()
    old = [lines[0].replace("information_notice", "consent"), *lines[1:]]
    response = _upload(client, bearer, "\r\n".join(old) + "\r\n")
    assert response.status_code == 422
    message = " ".join(f["message"] for f in response.json()["fields"])
    assert "information_notice" in message and "no longer used" in message
