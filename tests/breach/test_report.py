"""breach_report: each selector counts the right patients on a crafted history, the window's ends, the JSON shape, the
drafts, and no identity anywhere in what it prints or writes."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from relais.audit.models import AuditEvent
from relais.breach.models import BreachLetter, LetterStatus
from relais.core import crypto
from tests.breach.helpers import build, case_of, first_event, iso, report
from tests.factories import identity

pytestmark = pytest.mark.django_db

IDENTITY_VALUES = ("ZEBRA", "Camille", "example.org", "+336", "1994-03-12", "12 rue de la Paix")


def _patients(data: dict[str, Any]) -> int:
    return int(data["patients"]["total"])


def _letters(data: dict[str, Any]) -> set[Any]:
    return set(BreachLetter.objects.filter(case_id=data["case"]).values_list("patient_id", flat=True))


def test_account_counts_the_patients_it_read_in_the_window(
    tmp_path: Path, owner: Any, colleague: Any, stranger: Any, pharmacy: Any
) -> None:
    h = build(owner, colleague, stranger)
    data = report(tmp_path, "--since", iso(h.t0), "--until", iso(h.t1), "--account", colleague.email)
    assert _patients(data) == 2
    assert _letters(data) == {h.a1.pk, h.a2.pk}  # the patient read, and the patient of the test read
    assert data["patients"]["by_pharmacy"] == [
        {"pharmacy": str(pharmacy.pk), "finess": pharmacy.finess, "name": pharmacy.name, "patients": 2}
    ]
    assert {"identity", "tests"} <= set(data["categories"])
    assert data["events"]["total"] == 2
    assert data["tests"]["tests"] == 2 and data["tests"]["positive"] == 1  # a1's positive test, a2's negative one
    wider = report(tmp_path, "--since", iso(h.t0), "--until", iso(h.t2), "--account", colleague.email.upper())
    assert _letters(wider) == {h.a1.pk, h.a2.pk, h.a3.pk}
    # The owner registered everyone before the window: nothing in it.
    assert _patients(report(tmp_path, "--since", iso(h.t0), "--until", iso(h.t2), "--account", owner.email)) == 0


def test_api_client_counts_what_its_software_read(tmp_path: Path, owner: Any, colleague: Any, stranger: Any, registered: Any) -> None:
    client, _private = registered
    h = build(owner, colleague, stranger, client_user=client.service_user)
    data = report(tmp_path, "--since", iso(h.t0), "--until", iso(h.t1), "--api-client", str(client.pk))
    assert _letters(data) == {h.a3.pk}
    assert data["selector"] == {"kind": "api_client", "ref": str(client.pk)}


def test_pharmacy_counts_everything_it_held_in_the_window(
    tmp_path: Path, owner: Any, colleague: Any, stranger: Any, pharmacy: Any, other_pharmacy: Any
) -> None:
    h = build(owner, colleague, stranger)
    data = report(tmp_path, "--since", iso(h.t0), "--until", iso(h.t2), "--pharmacy", pharmacy.finess)
    assert _letters(data) == {h.a1.pk, h.a2.pk, h.a3.pk}
    assert {"identity", "nir", "contact", "tests"} <= set(data["categories"])
    assert data["tests"]["tests"] == 3
    other = report(tmp_path, "--since", iso(h.t0), "--until", iso(h.t2), "--pharmacy", other_pharmacy.finess)
    assert _letters(other) == {h.b1.pk}


def test_all_counts_every_patient_held(
    tmp_path: Path, owner: Any, colleague: Any, stranger: Any, pharmacy: Any, other_pharmacy: Any
) -> None:
    h = build(owner, colleague, stranger)
    data = report(tmp_path, "--since", iso(h.t0), "--until", iso(h.t2), "--all")
    assert _patients(data) == 4
    assert {row["finess"]: row["patients"] for row in data["patients"]["by_pharmacy"]} == {pharmacy.finess: 3, other_pharmacy.finess: 1}
    assert data["tests"]["tests"] == 4


def _under(prefix: str) -> set[Any]:
    """Patients with any column encrypted under the key, read straight from the columns."""
    from relais.core.fields import encrypted_field_names
    from relais.patients.models import Patient

    names = encrypted_field_names(Patient)
    return {row[0] for row in Patient.objects.values_list("id", *names) if any(str(v).startswith(prefix) for v in row[1:])}


def test_key_id_counts_the_rows_encrypted_under_that_key(tmp_path: Path, owner: Any, colleague: Any, stranger: Any) -> None:
    from relais.notify.models import Notification
    from relais.patients.models import Patient
    from relais.patients.services import patient_register

    h = build(owner, colleague, stranger)
    late = patient_register(actor=owner, identity=identity(last_name="YAK", nir="", email=""), allow_duplicate=True)
    # One value of one patient re-encrypted under a key of its own: that patient alone is exposed by that key.
    new_key = crypto.create_data_key()
    token = crypto.encrypt("YAK", aad=crypto.aad_for("patients_patient", "last_name", late.pk), key_id=new_key)
    Patient.objects.filter(pk=late.pk).update(last_name=token)
    data = report(tmp_path, "--since", iso(h.t0), "--until", iso(h.t2 + timedelta(hours=1)), "--key-id", new_key)
    assert _letters(data) == {late.pk}
    assert data["encrypted_rows"] == {"patients.patient": 1}
    assert data["categories"] == ["identity"]  # the last name only; the late patient has no test
    assert data["selector"]["key_known"] is True
    old_key = crypto.key_id_of(Patient.objects.values_list("first_names", flat=True).get(pk=h.a1.pk))
    prefix = f"v1.{old_key}."
    expected = _under(prefix)
    assert h.a1.pk in expected
    older = report(tmp_path, "--since", iso(h.t0), "--until", iso(h.t2), "--key-id", old_key)
    assert _letters(older) == expected
    assert older["encrypted_rows"]["patients.patient"] == len(expected)
    messages = [n for n in Notification.objects.values_list("address", flat=True) if str(n).startswith(prefix)]
    assert older["encrypted_rows"].get("notify.notification", 0) >= len(messages)
    assert {"identity", "contact"} <= set(older["categories"])
    assert _patients(report(tmp_path, "--since", iso(h.t0), "--until", iso(h.t2), "--key-id", "dk0000000000000000")) == 0


def test_window_includes_its_start_and_excludes_its_end(tmp_path: Path, owner: Any, colleague: Any, stranger: Any, pharmacy: Any) -> None:
    h = build(owner, colleague, stranger)
    read_a1 = first_event(colleague, h.t0)  # the read of a1, the colleague's first event
    at = read_a1.occurred_at
    starts_there = report(tmp_path, "--since", iso(at), "--until", iso(h.t1), "--account", colleague.email)
    assert h.a1.pk in _letters(starts_there)
    ends_there = report(tmp_path, "--since", iso(at - timedelta(hours=1)), "--until", iso(at), "--account", colleague.email)
    assert _letters(ends_there) == set()
    after_it = report(tmp_path, "--since", iso(at + timedelta(microseconds=1)), "--until", iso(h.t1), "--account", colleague.email)
    assert _letters(after_it) == {h.a2.pk}
    # Held data: a record registered at the window's end was not held during it.
    held = report(tmp_path, "--since", iso(h.t0 - timedelta(days=1)), "--until", iso(h.a3.created_at), "--pharmacy", pharmacy.finess)
    assert _letters(held) == {h.a1.pk, h.a2.pk}


def test_json_shape_and_no_identity_anywhere(tmp_path: Path, owner: Any, colleague: Any, stranger: Any) -> None:
    h = build(owner, colleague, stranger)
    data = report(tmp_path, "--since", iso(h.t0), "--until", iso(h.t2), "--all")
    assert set(data) >= {"case", "selector", "window", "discovered_at", "patients", "categories", "tests", "records", "events", "letters"}
    assert set(data["patients"]) == {"total", "by_pharmacy"}
    assert set(data["patients"]["by_pharmacy"][0]) == {"pharmacy", "finess", "name", "patients"}
    assert set(data["tests"]) == {"tests", "records", "positive", "results"}
    assert set(data["tests"]["results"][0]) == {"analyte", "result", "count"}
    assert data["window"] == {"since": iso(h.t0), "until": iso(h.t2), "end_excluded": True}
    assert data["letters"] == {"draft": 4}
    assert isinstance(data["seconds"], float)
    text = StringIO()
    call_command("breach_report", "--since", iso(h.t0), "--until", iso(h.t2), "--all", "--out", str(tmp_path), stdout=text)
    written = [p.read_text() for p in tmp_path.rglob("*") if p.is_file()]
    for blob in [text.getvalue(), str(data), *written]:
        for value in IDENTITY_VALUES:
            assert value not in blob
    assert "patients: 4 in 2 pharmacies" in text.getvalue()


def test_drafts_mention_the_counts_in_french_and_english(tmp_path: Path, owner: Any, colleague: Any, stranger: Any, pharmacy: Any) -> None:
    h = build(owner, colleague, stranger)
    data = report(tmp_path, "--since", iso(h.t0), "--until", iso(h.t1), "--account", colleague.email, "--measures", "Compte bloqué à 10 h")
    french = Path(data["drafts"]["fr"]).read_text()
    english = Path(data["drafts"]["en"]).read_text()
    assert Path(data["drafts"]["fr"]).stat().st_mode & 0o077 == 0
    assert "RGPD, art. 33" in french and "**2** personne(s)" in french and f"| {pharmacy.finess} | {pharmacy.name} | 2 |" in french
    assert "Tests de dépistage : 2" in french and "positif : 1" in french
    assert "Compte bloqué à 10 h" in french and "dpo@relais.localhost" in french
    assert "GDPR Art. 33" in english and "**2** people" in english and "Likely consequences" in english
    assert "2 letter(s) to the people concerned" in english
    assert "Notify before" in english


def test_report_is_audited_and_refuses_bad_selectors(tmp_path: Path, owner: Any, colleague: Any, stranger: Any) -> None:
    h = build(owner, colleague, stranger)
    data = report(tmp_path, "--since", iso(h.t0), "--until", iso(h.t1), "--account", colleague.email)
    event = AuditEvent.objects.get(action="breach.report")
    assert event.object_ids[:2] == [data["case"], str(colleague.pk)]
    assert event.detail == {"selector": "account", "patients": 2, "events": 2}
    assert case_of(data).letters.filter(status=LetterStatus.DRAFT).count() == 2
    for args in (
        ("--account", "nobody@test.example"),
        ("--api-client", "not-a-uuid"),
        ("--pharmacy", "000000000"),
        ("--key-id", "v1.bad.key"),
    ):
        with pytest.raises(CommandError):
            report(tmp_path, "--since", iso(h.t0), "--until", iso(h.t1), *args)
    with pytest.raises(CommandError, match="before"):
        report(tmp_path, "--since", iso(h.t1), "--until", iso(h.t0), "--all")


def test_a_corrected_test_counts_once_with_its_versions_and_its_current_result(
    tmp_path: Path, owner: Any, colleague: Any, stranger: Any, pharmacy: Any
) -> None:
    from relais.certificates.models import Certificate
    from relais.intake.services import screening_correct
    from relais.screenings.models import Screening

    h = build(owner, colleague, stranger)
    first = Screening.objects.get(patient=h.a1, is_current=True)
    screening_correct(actor=owner, screening_id=first.pk, reason="wrong box ticked", results={"sars-cov-2": "260415000"})
    until = iso(timezone.now() + timedelta(seconds=1))
    data = report(tmp_path, "--since", iso(h.t0), "--until", until, "--all")
    assert (data["tests"]["tests"], data["tests"]["records"], data["tests"]["positive"]) == (4, 5, 0)
    assert sum(row["count"] for row in data["tests"]["results"]) == 4  # current versions only
    assert data["records"]["certificates"] == Certificate.objects.count()
    mine = report(tmp_path, "--since", iso(h.t0), "--until", until, "--pharmacy", pharmacy.finess)
    assert (mine["tests"]["tests"], mine["tests"]["records"]) == (3, 4)
    assert mine["records"]["certificates"] == Certificate.objects.filter(pharmacy=pharmacy).count()
    read = report(tmp_path, "--since", iso(h.t0), "--until", until, "--account", colleague.email)
    assert (read["tests"]["tests"], read["tests"]["records"], read["tests"]["positive"]) == (3, 4, 0)  # a1, a2, a3


def test_letter_ids_are_unique_time_ordered_uuids_and_the_cache_is_restored(
    tmp_path: Path, owner: Any, colleague: Any, stranger: Any
) -> None:
    from django.db import connection

    h = build(owner, colleague, stranger)
    setting = "PRAGMA cache_size" if connection.vendor == "sqlite" else "SELECT 1"
    with connection.cursor() as cursor:
        cursor.execute(setting)
        before = cursor.fetchone()
    cases = [report(tmp_path, "--since", iso(h.t0), "--until", iso(h.t2), "--all")["case"] for _ in range(2)]
    letters = list(BreachLetter.objects.filter(case_id__in=cases).values_list("id", "patient_id", "case_id"))
    assert len(letters) == 8 and len({pk for pk, _p, _c in letters}) == 8
    assert {pk.version for pk, _p, _c in letters} == {7}
    for case in cases:
        # Within a case, the ids' counter follows patient order: rows written in that order append to both indexes.
        rows = sorted((p, pk) for pk, p, c in letters if str(c) == case)
        assert [pk for _p, pk in rows] == sorted(pk for _p, pk in rows)
    with connection.cursor() as cursor:
        cursor.execute(setting)
        assert cursor.fetchone() == before  # the report's large page cache does not outlive it
