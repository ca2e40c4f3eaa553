"""Identity goes to the national platform for every test; the pharmacist confirms the information notice (issue 10, defect 5).

Before: an unticked "the patient agrees to share their identity" box sent a pseudonym and issued no certificate.
Now: the record form, API and CSV require the notice confirmation; HL7 and FHIR carry the identity; a certificate is issued;
only a destination configured as pseudonymous, or a test recorded under the old "no consent", gets the pseudonym alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from relais.certificates.services import certificate_for_screening
from relais.core.blind_index import patient_pseudonym
from relais.intake.services import screening_correct, screening_record
from relais.notify.channels import email_text
from relais.notify.models import Notification
from relais.screenings.models import Screening
from relais.screenings.vocab import RESULT_DETECTED, RESULT_NOT_DETECTED
from relais.transfer.delivery import Deliverer, build_payload
from relais.transfer.destinations import Destination, destination
from relais.transfer.formats import fhir, hl7v2
from relais.transfer.models import OutboxMessage
from tests.factories import screening_input

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
IDENTITY_VALUES = ["DURAND-TESTEUR", "Camille", "294037512000591", "19940312", "12 rue de la Paix", "+33612345678"]


def _post_record(client: Client, patient: Any, **extra: str) -> Any:
    data = {
        "device": "1232",
        "specimen_type": "258500001",
        "sampled_at": timezone.localtime().strftime("%Y-%m-%dT%H:%M"),
        "result_sars-cov-2": RESULT_NOT_DETECTED,
        **extra,
    }
    return client.post(f"/patients/{patient.pk}/record/", data, HTTP_ACCEPT_LANGUAGE="en")


def _loaded(screening: Screening) -> Screening:
    return Screening.objects.select_related("patient", "pharmacy", "device").prefetch_related("results").get(pk=screening.pk)


def _rendered(screening: Screening, *, pseudonymous: bool = False) -> tuple[str, str]:
    message = OutboxMessage.objects.filter(screening=screening).latest("created_at")
    payload = build_payload(message, _loaded(screening), pseudonymous=pseudonymous)
    return hl7v2.render_oru_r01(payload), fhir.render_bundle(payload)


# --- the record form -----------------------------------------------------------------------------------------------


def test_form_without_the_notice_box_is_refused_next_to_the_box(as_user: Any, owner: Any, patient: Any) -> None:
    client = as_user(owner)
    response = _post_record(client, patient, consent_share_identity="")  # what an untouched form sent before
    assert response.status_code == 200
    assert Screening.objects.count() == 0 and OutboxMessage.objects.count() == 0
    form = response.context["form"]
    assert form.errors["information_notice_given"] == ["Give the patient the information notice, then tick this box."]
    html = response.content.decode()
    assert 'id="id_information_notice_given_error"' in html


def test_the_record_form_links_the_notice_next_to_the_box(as_user: Any, owner: Any, patient: Any, pharmacy: Any) -> None:
    html = as_user(owner).get(f"/patients/{patient.pk}/record/").content.decode()
    box = html.index('id="id_information_notice_given"')
    link = html.index(f'href="/notice/?pharmacy={pharmacy.finess}"')
    assert 0 < link - box < 600  # in the same field block, right after the label
    assert "consent" not in html.lower()


def test_a_test_recorded_on_the_form_sends_identity_and_gets_a_certificate(as_user: Any, owner: Any, patient: Any) -> None:
    response = _post_record(as_user(owner), patient, information_notice_given="on")
    assert response.status_code == 302, response.content
    screening = Screening.objects.get(patient=patient)
    assert screening.information_notice_given is True and screening.identity_withheld is False
    hl7, bundle = _rendered(screening)
    for value in IDENTITY_VALUES:
        assert value in hl7, value
    assert "ANONYME" not in hl7
    patient_resource = next(e["resource"] for e in json.loads(bundle)["entry"] if e["resource"]["resourceType"] == "Patient")
    assert patient_resource["name"][0]["family"] == "DURAND-TESTEUR" and patient_resource["birthDate"] == "1994-03-12"
    assert certificate_for_screening(screening=screening) is not None
    detail = as_user(owner).get(f"/screenings/{screening.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Information notice given" in detail and "Identity sent to SI-DEP" in detail


# --- transmission ----------------------------------------------------------------------------------------------------


def test_a_pseudonymous_destination_gets_only_the_pseudonym(settings: Any, owner: Any, patient: Any) -> None:
    settings.RELAIS_TRANSFER = {
        **settings.RELAIS_TRANSFER,
        "destinations": {
            **settings.RELAIS_TRANSFER["destinations"],
            "research-hl7": {"message_format": "hl7v2", "transport": "mllp", "port": 1, "pseudonymous": True},
            "research-fhir": {"message_format": "fhir", "transport": "https", "url": "https://127.0.0.1:1/fhir", "pseudonymous": True},
        },
    }
    screening = screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    message = OutboxMessage.objects.get(screening=screening)
    for name in ("research-hl7", "research-fhir"):
        pseudonym = patient_pseudonym(pharmacy_id=screening.pharmacy_id, patient_id=patient.pk, destination=name)
        target = destination(name)
        assert target.pseudonymous is True
        deliverer = Deliverer(target)
        try:
            message.message_format = target.message_format
            text = deliverer._render_one(message, _loaded(screening))
        finally:
            deliverer.close()
        assert isinstance(text, str) and pseudonym in text
        for value in IDENTITY_VALUES:
            assert value not in text, (name, value)
    # The default destinations are not pseudonymous: the same test goes with its identity.
    assert destination().pseudonymous is False
    assert Destination(name="x", message_format="hl7v2", transport="mllp").pseudonymous is False
    assert "DURAND-TESTEUR" in _rendered(screening)[0]


def test_a_legacy_test_recorded_without_consent_stays_pseudonymous_and_without_certificate(owner: Any, patient: Any) -> None:
    screening = screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    Screening.objects.filter(pk=screening.pk).update(identity_withheld=True, information_notice_given=None)  # as migrated
    correction = screening_correct(actor=owner, screening_id=screening.pk, reason="misread", results={"sars-cov-2": RESULT_DETECTED})
    assert correction.identity_withheld is True and correction.information_notice_given is None
    hl7, bundle = _rendered(correction)
    for value in IDENTITY_VALUES:
        assert value not in hl7 and value not in bundle, value
    assert certificate_for_screening(screening=correction) is None


# --- the notice itself -----------------------------------------------------------------------------------------------


def test_the_notice_is_public_bilingual_printable_and_names_the_pharmacy(client: Client, pharmacy: Any) -> None:
    response = client.get(f"/notice/?pharmacy={pharmacy.finess}", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-testid="notice-fr"' in html and 'data-testid="notice-en"' in html
    assert "loi n° 2020-546" in html and "2020-551" in html
    assert "Information notice: your test and the national screening platform (SI-DEP)" in html
    assert pharmacy.name in html and pharmacy.finess in html
    assert "notice.css" in html
    css = (ROOT / "relais" / "static" / "notice.css").read_text()
    assert "@media print" in css
    # Anything else in the query names no one and changes nothing.
    generic = client.get("/notice/?pharmacy=<script>").content.decode()
    assert "<script>" not in generic and pharmacy.name not in generic


def test_the_patient_message_and_result_page_link_the_notice(owner: Any, patient: Any, pharmacy: Any) -> None:
    screening = screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    notification = Notification.objects.filter(series_id=screening.series_id, channel="email").first()
    assert notification is not None
    text = email_text(notification)
    assert f"/notice/?pharmacy={pharmacy.finess}" in text
    assert "notice d'information" in text.lower() and "information notice" in text.lower()
    assert not mail.outbox  # nothing sent here: the worker sends
    template = (ROOT / "relais" / "templates" / "results" / "result.html").read_text()
    assert "screenings:notice" in template


# --- migration ---------------------------------------------------------------------------------------------------------

MIGRATION_SCRIPT = textwrap.dedent(
    """
    import json
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone
    from relais.accounts.models import Pharmacy, Role, User
    from relais.core.context import request_context
    from relais.patients.services import PatientIdentity, patient_register
    from relais.intake.services import screening_record
    from relais.screenings.inputs import ScreeningInput
    from relais.transfer.models import OutboxMessage
    from datetime import date, timedelta

    call_command("migrate", verbosity=0)
    pharmacy = Pharmacy.objects.create(name="P", finess="750000999", address_line="1 rue", postcode="75001", city="Paris")
    user = User.objects.create_user("m@example.org", None, role=Role.PHARMACIST, pharmacy=pharmacy)
    with request_context(channel="test"):
        ids = []
        for n in range(3):
            patient = patient_register(actor=user, allow_duplicate=True, identity=PatientIdentity(last_name=f"NOM{'ABC'[n]}",
                first_names="Léa", sex="F", date_of_birth=date(1990, 1, 1 + n)))
            ids.append(str(screening_record(actor=user, patient_id=patient.pk, data=ScreeningInput(device_id="1232",
                specimen_type="258500001", sampled_at=timezone.now() - timedelta(minutes=5), results={"sars-cov-2": "260415000"},
                information_notice_given=True)).pk))
    OutboxMessage.objects.filter(screening_id=ids[0]).update(status="acknowledged", acknowledged_at=timezone.now())
    OutboxMessage.objects.filter(screening_id=ids[1]).update(status="rejected", rejection_reason="x")
    call_command("migrate", "screenings", "0002", verbosity=0)

    def hexid(value):
        return value.replace("-", "") if connection.vendor == "sqlite" else value

    with connection.cursor() as cursor:  # the old world: one test recorded without consent
        cursor.execute("UPDATE screenings_screening SET consent_share_identity = %s WHERE id = %s", [False, hexid(ids[1])])

    def outbox():
        return sorted(OutboxMessage.objects.values_list("id", "status", "attempts", "next_attempt_at", "lease_owner"))

    before = outbox()
    call_command("migrate", verbosity=0)
    after = outbox()
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, identity_withheld, information_notice_given FROM screenings_screening")
        rows = {str(r[0]).replace("-", ""): [bool(r[1]), r[2]] for r in cursor.fetchall()}
    print("RESULT=" + json.dumps({"ids": [i.replace("-", "") for i in ids], "rows": rows, "same_outbox": before == after,
        "outbox_rows": len(after)}))
    """
)


@pytest.fixture
def scratch_database(tmp_path: Path) -> Any:
    """A database of its own (the test database stays as it is): SQLite in tmp_path, or a fresh PostgreSQL database."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        yield ""
        return
    import psycopg

    name = f"notice_migration_{uuid.uuid4().hex[:8]}"
    admin = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_the_migration_maps_old_consent_and_resends_nothing(tmp_path: Path, scratch_database: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAIS_", "DJANGO_", "DATABASE_URL"))}
    env.update({"RELAIS_ENV": "development", "RELAIS_VAR_DIR": str(tmp_path / "var"), "PYTHONDONTWRITEBYTECODE": "1"})
    if scratch_database:
        env["DATABASE_URL"] = scratch_database
    subprocess.run([sys.executable, "-m", "relais.core.devsecrets", str(tmp_path / "var" / "secrets")], cwd=ROOT, env=env, check=True)
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", MIGRATION_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.split("RESULT=", 1)[1])
    acknowledged, unconsented, pending = result["ids"]
    rows = result["rows"]
    assert rows[unconsented] == [True, None]  # recorded without consent: stays pseudonymous, no certificate
    assert rows[acknowledged] == [False, None] and rows[pending] == [False, None]  # the notice was not recorded then
    assert result["same_outbox"] is True and result["outbox_rows"] == 3  # no new message, no status or schedule changed
