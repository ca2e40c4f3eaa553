"""Issue 15 items 3 and 5 through the API: the kit's lot and expiry, symptoms and their onset, on one test and in a
batch; refused values named by field, in the shape of every other field error; the OpenAPI document shows them."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.test import Client
from django.utils import timezone

from relais.screenings.models import Screening
from tests.factories import _body

JSON = "application/json"


def _post(client: Client, path: str, body: Any, bearer: dict[str, str]) -> Any:
    return client.post(path, json.dumps(body), content_type=JSON, **bearer)


def _dates() -> tuple[str, str]:
    today = timezone.localdate()
    return (today - timedelta(days=2)).isoformat(), (today + timedelta(days=200)).isoformat()


def test_one_test_with_kit_and_symptoms_is_recorded_and_shown(client: Client, bearer: dict[str, str]) -> None:
    onset, expiry = _dates()
    body = _body(kit_lot="LOT-24/0042", kit_expiry=expiry, symptoms="yes", symptom_onset=onset)
    response = _post(client, "/api/v1/screenings", body, bearer)
    assert response.status_code == 201, response.content
    data = response.json()
    assert (data["kit_lot"], data["kit_expiry"], data["symptoms"], data["symptom_onset"]) == ("LOT-24/0042", expiry, "yes", onset)
    screening = Screening.objects.get(pk=data["screening_id"])
    assert (screening.kit_lot, screening.kit_expiry.isoformat(), screening.symptoms, screening.symptom_onset.isoformat()) == (
        "LOT-24/0042",
        expiry,
        "yes",
        onset,
    )
    read = client.get(f"/api/v1/screenings/{data['screening_id']}", **bearer).json()
    assert (read["kit_lot"], read["symptoms"], read["symptom_onset"]) == ("LOT-24/0042", "yes", onset)


def test_without_the_new_fields_nothing_changes(client: Client, bearer: dict[str, str]) -> None:
    response = _post(client, "/api/v1/screenings", _body(), bearer)
    assert response.status_code == 201, response.content
    data = response.json()
    assert (data["kit_lot"], data["kit_expiry"], data["symptoms"], data["symptom_onset"]) == ("", None, "", None)


def _refused(client: Client, bearer: dict[str, str], **fields: Any) -> list[dict[str, Any]]:
    response = _post(client, "/api/v1/screenings", _body(**fields), bearer)
    assert response.status_code == 422, response.content
    return list(response.json()["fields"])


def test_bad_values_are_refused_naming_the_field(client: Client, bearer: dict[str, str]) -> None:
    onset, _ = _dates()
    today = timezone.localdate()
    assert [e["field"] for e in _refused(client, bearer, symptoms="maybe")] == ["symptoms"]
    assert [e["field"] for e in _refused(client, bearer, symptom_onset="29/11/2026", symptoms="yes")] == ["symptom_onset"]
    expired = _refused(client, bearer, kit_expiry=(today - timedelta(days=1)).isoformat())
    assert expired[0]["field"] == "kit_expiry" and "expired" in expired[0]["message"]
    assert _refused(client, bearer, kit_lot="LOT 42")[0]["field"] == "kit_lot"  # a space is not in GS1 AI 10
    assert _refused(client, bearer, kit_lot="X" * 21)[0]["field"] == "kit_lot"
    no_symptoms = _refused(client, bearer, symptoms="no", symptom_onset=onset)
    assert no_symptoms[0]["field"] == "symptom_onset" and "only when" in no_symptoms[0]["message"]
    later = _refused(client, bearer, symptoms="yes", symptom_onset=(today + timedelta(days=1)).isoformat())
    assert later[0]["field"] == "symptom_onset"
    assert not Screening.objects.exists()


def test_batch_items_carry_the_fields_and_errors_name_them(client: Client, bearer: dict[str, str]) -> None:
    onset, expiry = _dates()

    def item(name: str, **fields: Any) -> dict[str, Any]:
        person = {"last_name": name, "first_names": "Alex", "sex": "U", "date_of_birth": "1980-01-01"}
        return _body(patient=person, **fields)

    items = [
        item("ALPHA", symptoms="unknown", kit_lot="A1", kit_expiry=expiry),
        item("BRAVO", symptoms="no", symptom_onset=onset),
        item("CHARLIE", symptoms="oui"),
        item("DELTA", symptoms="yes", symptom_onset=onset),
    ]
    response = _post(client, "/api/v1/screenings/batch", {"items": items}, bearer)
    assert response.status_code == 200, response.content
    by_index = {item["index"]: item for item in response.json()["items"]}
    assert [by_index[i]["status"] for i in range(4)] == ["accepted", "rejected", "rejected", "accepted"]
    assert [e["field"] for e in by_index[1]["errors"]] == ["symptom_onset"]
    assert [e["field"] for e in by_index[2]["errors"]] == ["symptoms"]
    first = Screening.objects.get(pk=by_index[0]["screening_id"])
    assert (first.symptoms, first.kit_lot, first.kit_expiry.isoformat()) == ("unknown", "A1", expiry)
    assert Screening.objects.get(pk=by_index[3]["screening_id"]).symptom_onset.isoformat() == onset


def test_openapi_documents_the_fields_with_examples(client: Client, db: Any) -> None:
    schemas = client.get("/api/v1/openapi.json").json()["components"]["schemas"]
    properties = schemas["ScreeningIn"]["properties"]
    for name in ("kit_lot", "kit_expiry", "symptoms", "symptom_onset"):
        assert properties[name].get("examples"), name
        assert name not in schemas["ScreeningIn"].get("required", [])
    assert "95419-8" in properties["symptoms"]["description"] and "65222-2" in properties["symptom_onset"]["description"]
    symptoms = json.dumps(properties["symptoms"])
    assert all(value in symptoms for value in ('"yes"', '"no"', '"unknown"'))
    assert {"kit_lot", "kit_expiry", "symptoms", "symptom_onset"} <= set(schemas["ScreeningOut"]["properties"])
