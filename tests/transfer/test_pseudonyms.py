"""Issue 16 item 3: pseudonyms that cannot link. Each destination gets its own pseudonym (HMAC under the blind-index key
of the destination's name and the patient id); an identified message never carries an anonymous destination's."""

from __future__ import annotations

from typing import Any

from relais.core.blind_index import patient_pseudonym
from relais.intake.services import screening_record
from relais.screenings.models import Screening
from relais.transfer.delivery import Deliverer, build_payload
from relais.transfer.destinations import destination
from relais.transfer.models import OutboxMessage
from tests.factories import screening_input

ANONYMOUS = {
    "research-a": {"message_format": "hl7v2", "transport": "mllp", "port": 1, "pseudonymous": True},
    "research-b": {"message_format": "fhir", "transport": "https", "url": "https://127.0.0.1:1/fhir", "pseudonymous": True},
}


def _configure(settings: Any) -> None:
    settings.RELAIS_TRANSFER = {
        **settings.RELAIS_TRANSFER,
        "destinations": {**settings.RELAIS_TRANSFER["destinations"], **ANONYMOUS},
    }


def _loaded(screening: Screening) -> Screening:
    return Screening.objects.select_related("patient", "pharmacy", "device", "recorded_by").get(pk=screening.pk)


def _render(name: str, message: OutboxMessage, screening: Screening) -> str:
    deliverer = Deliverer(destination(name))
    try:
        message.message_format = deliverer.target.message_format
        text = deliverer._render_one(message, _loaded(screening))
    finally:
        deliverer.close()
    assert isinstance(text, str), text
    return text


def test_pseudonym_is_keyed_per_destination() -> None:
    a = patient_pseudonym(pharmacy_id="p", patient_id="x", destination="research-a")
    b = patient_pseudonym(pharmacy_id="p", patient_id="x", destination="research-b")
    assert a != b and len(a) == len(b) == 32
    assert a == patient_pseudonym(pharmacy_id="p", patient_id="x", destination="research-a")  # stable
    assert a != patient_pseudonym(pharmacy_id="p", patient_id="x")  # not the old per-pharmacy one


def test_two_anonymous_destinations_get_two_pseudonyms_and_the_identified_message_neither(settings: Any, owner: Any, patient: Any) -> None:
    _configure(settings)
    screening = screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    message = OutboxMessage.objects.get(screening=screening)
    payloads = {
        name: build_payload(message, _loaded(screening), pseudonymous=destination(name).pseudonymous, destination=name)
        for name in (*ANONYMOUS, destination().name)
    }
    a, b = payloads["research-a"], payloads["research-b"]
    identified = payloads[destination().name]
    assert a.patient is None and b.patient is None and a.patient_id == b.patient_id == ""
    assert a.patient_pseudonym != b.patient_pseudonym
    assert identified.patient is not None and identified.patient_id == str(patient.pk)
    assert identified.patient_pseudonym not in {a.patient_pseudonym, b.patient_pseudonym}
    # What actually goes on the wire, rendered by each destination's own format.
    text_a, text_b = _render("research-a", message, screening), _render("research-b", message, screening)
    assert a.patient_pseudonym in text_a and b.patient_pseudonym in text_b
    assert a.patient_pseudonym not in text_b and b.patient_pseudonym not in text_a
    assert str(patient.pk) not in text_a and str(patient.pk) not in text_b  # nor the Relais id
    identified_text = _render(destination().name, message, screening)
    assert patient.last_name in identified_text or patient.last_name.upper() in identified_text
    for pseudonym in (a.patient_pseudonym, b.patient_pseudonym):
        assert pseudonym not in identified_text
