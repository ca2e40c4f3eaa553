"""Issue 16 item 4: the invalid result is SNOMED CT International 125154007; the former US-extension code
455371000124106 is converted in stored rows (migration 0007) and still accepted on input (API, CSV) as an alias."""

from __future__ import annotations

import importlib
import json
from typing import Any

from django.apps import apps
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from relais.intake.services import screening_record
from relais.screenings import csv_import
from relais.screenings.models import Screening, ScreeningResult
from relais.screenings.vocab import RESULT_INVALID, RESULTS, canonical_result
from relais.submissions import services as submissions
from relais.transfer.delivery import build_payload
from relais.transfer.formats import fhir, hl7v2
from tests.factories import _body, screening_input

OLD = "455371000124106"
migration = importlib.import_module("relais.screenings.migrations.0007_invalid_result_international_snomed")


def test_invalid_is_the_international_concept() -> None:
    assert RESULT_INVALID == "125154007" and OLD not in RESULTS
    assert canonical_result(OLD) == RESULT_INVALID and canonical_result("260373001") == "260373001"


def test_the_data_migration_converts_rows_holding_the_old_code_and_back(owner: Any, patient: Any) -> None:
    screening = screening_record(actor=owner, patient_id=patient.pk, data=screening_input(results={"sars-cov-2": RESULT_INVALID}))
    ScreeningResult.objects.filter(screening=screening).update(result=OLD)  # a row written before the change
    migration.forwards(apps, None)
    assert list(ScreeningResult.objects.filter(screening=screening).values_list("result", flat=True)) == [RESULT_INVALID]
    migration.backwards(apps, None)
    assert list(ScreeningResult.objects.filter(screening=screening).values_list("result", flat=True)) == [OLD]


def test_the_messages_carry_the_new_code(owner: Any, patient: Any) -> None:
    screening = screening_record(actor=owner, patient_id=patient.pk, data=screening_input(results={"sars-cov-2": RESULT_INVALID}))
    loaded = Screening.objects.select_related("patient", "pharmacy", "device").get(pk=screening.pk)
    payload = build_payload(screening.outbox.get(), loaded)
    hl7, bundle = hl7v2.render_oru_r01(payload), fhir.render_bundle(payload)
    for text in (hl7, bundle):
        assert RESULT_INVALID in text and OLD not in text


def test_the_api_accepts_the_old_code_and_stores_the_new(client: Client, bearer: dict[str, str]) -> None:
    response = client.post("/api/v1/screenings", json.dumps(_body(results={"sars-cov-2": OLD})), content_type="application/json", **bearer)
    assert response.status_code == 201, response.content
    screening = Screening.objects.get(pk=response.json()["screening_id"])
    assert [r.result for r in screening.results.all()] == [RESULT_INVALID]
    response = client.post(
        "/api/v1/screenings", json.dumps(_body(results={"sars-cov-2": "999"})), content_type="application/json", **bearer
    )
    assert response.status_code == 422


def test_the_csv_accepts_the_old_code_and_stores_the_new(client: Client, bearer: dict[str, str]) -> None:
    lines = csv_import.example_csv().splitlines()
    header = lines[0].split(",")
    column = header.index("result")
    cells = lines[2].split(",")  # the example's second row has no comma inside a value
    row = ",".join([*cells[:column], OLD, *cells[column + 1 :]])
    upload = SimpleUploadedFile("t.csv", ("\r\n".join([lines[0], row]) + "\r\n").encode(), "text/csv")
    response = client.post("/api/v1/submissions/csv", {"file": upload}, **bearer)
    assert response.status_code == 202, response.content
    submission = submissions.submission_claim_queued(owner="t")
    assert submission is not None
    submissions.csv_process(submission=submission, owner="t")
    [item] = client.get(f"/api/v1/submissions/{submission.pk}", **bearer).json()["items"]
    assert item["status"] == "accepted", item
    assert [r.result for r in Screening.objects.get(pk=item["screening_id"]).results.all()] == [RESULT_INVALID]
