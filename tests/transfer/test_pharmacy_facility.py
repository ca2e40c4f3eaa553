"""Issue 16 item 2, from the database to the wire: the pharmacy's phone and id reach the payload through the worker's
loader (_load_screenings, no extra query per message) and come out as HL7 MSH-4 / ORC-23 and FHIR
Organization.telecom; a pharmacy without a phone sends none."""

from __future__ import annotations

import json
import uuid
from typing import Any

import hl7

from relais.accounts.services import pharmacy_phone_set
from relais.intake.services import screening_record
from relais.transfer.delivery import _load_screenings, build_payload
from relais.transfer.formats import fhir, hl7v2
from relais.transfer.models import OutboxMessage
from tests.factories import screening_input


def _payload(owner: Any, patient: Any, destination: str = "") -> Any:
    screening = screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    message = OutboxMessage.objects.get(screening=screening)
    loaded, results = _load_screenings([screening.pk])
    pharmacy = loaded[screening.pk].pharmacy
    assert "phone" not in pharmacy.get_deferred_fields()  # loaded with the batch: reading it costs no query
    return build_payload(message, loaded[screening.pk], results=results[screening.pk], destination=destination)


def test_the_pharmacy_phone_and_id_go_from_the_database_to_hl7_and_fhir(owner: Any, operator: Any, patient: Any) -> None:
    pharmacy_phone_set(actor=operator, pharmacy_id=owner.pharmacy_id, phone="01 42 34 56 78")
    payload = _payload(owner, patient)
    assert (payload.pharmacy_phone, payload.pharmacy_id) == ("+33142345678", str(owner.pharmacy_id))
    message = hl7.parse(hl7v2.render_oru_r01(payload))
    assert str(message["MSH.F4.R1.C2"]) == f"2.25.{uuid.UUID(str(owner.pharmacy_id)).int}"
    assert [str(message[f"ORC.F23.R1.C{c}"]) for c in (2, 3, 12)] == ["WPN", "PH", "+33142345678"]
    bundle = json.loads(fhir.render_bundle(payload))
    (organization,) = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Organization"]
    assert organization["telecom"] == [{"system": "phone", "value": "+33142345678", "use": "work"}]


def test_a_pharmacy_without_phone_sends_none(owner: Any, patient: Any) -> None:
    payload = _payload(owner, patient)
    assert payload.pharmacy_phone == "" and payload.pharmacy_id == str(owner.pharmacy_id)
    text = hl7v2.render_oru_r01(payload)
    orc = next(s for s in text.split("\r") if s.startswith("ORC"))
    assert orc.count("|") == 22 and "WPN" not in text
    assert "telecom" not in json.dumps(
        [e["resource"] for e in json.loads(fhir.render_bundle(payload))["entry"] if e["resource"]["resourceType"] == "Organization"]
    )


def test_the_payload_names_its_destination_for_msh5_msh6(settings: Any, owner: Any, patient: Any) -> None:
    destinations = {**settings.RELAIS_TRANSFER["destinations"], "national": {"message_format": "hl7v2", "transport": "mllp", "port": 1}}
    destinations["national"]["receiving_facility"] = "ANS^1.2.250.1.999.7.2^ISO"
    settings.RELAIS_TRANSFER = {**settings.RELAIS_TRANSFER, "destinations": destinations}
    assert _payload(owner, patient).destination == settings.RELAIS_TRANSFER["destination"]  # "" = the destination in force
    payload = _payload(owner, patient, destination="national")
    assert payload.destination == "national"
    assert str(hl7.parse(hl7v2.render_oru_r01(payload))["MSH.F6.R1.C2"]) == "1.2.250.1.999.7.2"
