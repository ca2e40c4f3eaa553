"""Issue 10.1: a test is attached to a registered patient only when the identifying fields agree, on every intake.

Before the fix every all-Cyrillic, Greek, CJK or Arabic name normalised to "", so two such people born on the same day were
one patient: her test went to the platform under his name and her result link to his address."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.test import Client
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from relais.audit.models import AuditEvent
from relais.core.blind_index import identity_index, normalise_name
from relais.intake.services import screening_intake, screening_record
from relais.notify.models import Notification
from relais.patients import services
from relais.patients.forms import PatientForm
from relais.patients.models import Patient
from relais.screenings import csv_import
from relais.screenings.models import Screening
from relais.screenings.vocab import RESULT_DETECTED
from relais.submissions import services as submissions
from tests.factories import _body, identity, screening_input

JSON = "application/json"
DOB = "1985-04-02"

# Pairs of different people born on the same day, as an integrator would send them (no NIR unless given).
PAIRS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "cyrillic": (
        {"last_name": "Иванов", "first_names": "Иван", "sex": "M", "email": "ivan@example.org"},
        {"last_name": "Петрова", "first_names": "Мария", "sex": "F", "email": "maria@example.org"},
    ),
    "chinese": (
        {"last_name": "王", "first_names": "小明", "sex": "M", "email": "wang@example.org"},
        {"last_name": "李", "first_names": "华", "sex": "F", "email": "li@example.org"},
    ),
    "greek": (
        {"last_name": "Παπαδόπουλος", "first_names": "Γιώργος", "sex": "M", "email": "g@example.org"},
        {"last_name": "Οικονόμου", "first_names": "Ελένη", "sex": "F", "email": "e@example.org"},
    ),
    "arabic": (
        {"last_name": "محمد", "first_names": "علي", "sex": "M", "email": "ali@example.org"},
        {"last_name": "حسن", "first_names": "فاطمة", "sex": "F", "email": "fatima@example.org"},
    ),
    # Same Latin name and birth date, two different valid NIRs: homonyms, not one person.
    "latin homonyms with NIRs": (
        {"last_name": "MARTIN", "first_names": "Jean", "sex": "M", "nir": "185047512345657", "email": "jean1@example.org"},
        {"last_name": "MARTIN", "first_names": "Jean", "sex": "M", "nir": "185049912345688", "email": "jean2@example.org"},
    ),
    # Same names and birth date, no NIR, different sex: two people (the second is flagged for review).
    "latin homonyms without NIR": (
        {"last_name": "Dominique", "first_names": "Claude", "sex": "M", "email": "claude1@example.org"},
        {"last_name": "Dominique", "first_names": "Claude", "sex": "F", "email": "claude2@example.org"},
    ),
}


def _person(values: dict[str, Any]) -> dict[str, Any]:
    return {"date_of_birth": DOB, **values}


def _identity(values: dict[str, Any]) -> Any:
    return identity(**{"nir": "", "phone": "", "address_line": "", "postcode": "", "city": "", **values, "date_of_birth": date(1985, 4, 2)})


def _post(client: Client, path: str, body: Any, bearer: dict[str, str]) -> Any:
    return client.post(path, json.dumps(body), content_type=JSON, **bearer)


# --- Normalisation -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Durand-Testeur", "DURAND TESTEUR"),
        ("Lefèvre", "LEFEVRE"),
        ("Nguyễn", "nguyen"),
        ("Strauß", "STRAUSS"),
        ("Παπαδόπουλος", "ΠΑΠΑΔΟΠΟΥΛΟΣ"),
        ("Иванов", "ИВАНОВ"),
        ("مُحَمَّد", "محمد"),
        ("ＭＡＲＴＩＮ", "Martin"),
    ],
)
def test_same_name_written_two_ways_normalises_alike(a: str, b: str) -> None:
    assert normalise_name(a) == normalise_name(b) != ""


@pytest.mark.parametrize(
    ("a", "b"), [("Иванов", "Петрова"), ("王", "李"), ("Йошкин", "Иошкин"), ("علي", "فاطمة"), ("Οικονόμου", "Παπαδόπουλος")]
)
def test_different_names_in_any_script_stay_different(a: str, b: str) -> None:
    assert normalise_name(a) != normalise_name(b)
    assert normalise_name(a) and normalise_name(b)


@given(st.text(max_size=40))
def test_normalisation_is_idempotent_and_ignores_case(value: str) -> None:
    once = normalise_name(value)
    assert normalise_name(once) == once
    assert normalise_name(value.upper()) == normalise_name(value.lower()) or "ß" in value or "ﬀ" in value.lower()


@given(st.text(alphabet=st.characters(categories=["Lu", "Ll", "Lo"]), min_size=1, max_size=20))
def test_a_name_with_a_letter_never_normalises_to_nothing(value: str) -> None:
    assert normalise_name(value) != ""


def test_identity_indexes_of_different_scripts_differ(pharmacy: Any) -> None:
    dob = date(1985, 4, 2)
    ivan = identity_index(pharmacy_id=pharmacy.pk, last_name="Иванов", first_names="Иван", date_of_birth=dob)
    maria = identity_index(pharmacy_id=pharmacy.pk, last_name="Петрова", first_names="Мария", date_of_birth=dob)
    assert ivan != maria


@pytest.mark.parametrize("name", ["-", "123", "  ''  ", "?!", "·"])
def test_a_name_without_any_letter_is_refused_on_the_form(name: str) -> None:
    form = PatientForm({"last_name": name, "first_names": name, "sex": "F", "date_of_birth": DOB, "country": "FR"})
    assert not form.is_valid()
    assert "letter" in str(form.errors["last_name"]) and "letter" in str(form.errors["first_names"])


def test_a_name_without_any_letter_is_refused_by_the_api(client: Client, bearer: dict[str, str]) -> None:
    response = _post(client, "/api/v1/screenings", _body(patient=_person({"last_name": "---", "first_names": "Jo", "sex": "F"})), bearer)
    assert response.status_code == 422
    assert [f["field"] for f in response.json()["fields"]] == ["patient.last_name"]
    assert Patient.objects.count() == 0


# --- The rule, through the service -----------------------------------------------------------------------------------


def test_same_person_requires_equal_nirs_when_both_have_one(owner: Any) -> None:
    patient = services.patient_register(actor=owner, identity=identity())
    assert services.same_person(patient, identity(last_name="Durand Testeur", first_names="camille"))
    assert services.same_person(patient, identity(last_name="DURAND", first_names="Camille"))  # same NIR and birth date
    assert not services.same_person(patient, identity(nir="294037512000688"))
    assert not services.same_person(patient, identity(date_of_birth=date(1994, 3, 13)))
    no_nir = identity(nir="")
    assert services.same_person(patient, no_nir)
    assert not services.same_person(patient, identity(nir="", sex="M"))
    assert not services.same_person(patient, identity(nir="", first_names="Camille Marie"))


def test_resolving_the_same_person_reuses_the_record_and_takes_the_newer_contact(owner: Any) -> None:
    first = services.patient_resolve(actor=owner, identity=identity(nir="", email="old@example.org"))
    again = services.patient_resolve(actor=owner, identity=identity(last_name="durand testeur", email="new@example.org"))
    assert again.patient.pk == first.patient.pk and not again.created and not again.needs_review
    stored = Patient.objects.get(pk=first.patient.pk)
    assert stored.email == "new@example.org"
    assert stored.nir == "294037512000591"  # the NIR given later completes the record
    assert [e.object_ids for e in AuditEvent.objects.filter(action="patient.update")] == [[str(stored.pk)]]


@pytest.mark.parametrize("case", list(PAIRS))
def test_two_people_resolve_to_two_records(owner: Any, case: str) -> None:
    him, her = (_identity(p) for p in PAIRS[case])
    his = services.patient_resolve(actor=owner, identity=him)
    hers = services.patient_resolve(actor=owner, identity=her)
    assert his.patient.pk != hers.patient.pk
    assert hers.created


# --- API single: the cases the crash-and-count run found -------------------------------------------------------------


@pytest.mark.parametrize("case", list(PAIRS))
def test_api_records_each_persons_test_under_their_own_record(client: Client, bearer: dict[str, str], case: str) -> None:
    him, her = PAIRS[case]
    first = _post(client, "/api/v1/screenings", _body(patient=_person(him)), bearer)
    second = _post(client, "/api/v1/screenings", _body(patient=_person(her)), bearer)
    assert (first.status_code, second.status_code) == (201, 201), second.content
    assert first.json()["patient_id"] != second.json()["patient_id"]
    hers = Screening.objects.get(pk=second.json()["screening_id"])
    assert hers.patient.last_name == her["last_name"] and hers.patient.sex == her["sex"]
    assert [n.address for n in Notification.objects.filter(screening=hers, channel="email")] == [her["email"]]
    assert Patient.objects.count() == 2


def test_api_two_greek_people_same_device_and_time_different_results_are_both_recorded(client: Client, bearer: dict[str, str]) -> None:
    him, her = PAIRS["greek"]
    sampled_at = (timezone.now() - timedelta(minutes=7)).isoformat()
    first = _post(client, "/api/v1/screenings", _body(patient=_person(him), sampled_at=sampled_at), bearer)
    second = _post(
        client,
        "/api/v1/screenings",
        _body(patient=_person(her), sampled_at=sampled_at, results={"sars-cov-2": RESULT_DETECTED}),
        bearer,
    )
    assert (first.status_code, second.status_code) == (201, 201), second.content
    assert second.json().get("duplicate") is not True
    assert Screening.objects.count() == 2


def test_api_same_person_sent_twice_is_still_a_duplicate_test(client: Client, bearer: dict[str, str]) -> None:
    him, _her = PAIRS["cyrillic"]
    body = _body(patient=_person(him))
    assert _post(client, "/api/v1/screenings", body, bearer).status_code == 201
    again = _post(client, "/api/v1/screenings", {**body, "patient": _person({**him, "last_name": "ИВАНОВ"})}, bearer)
    assert again.status_code == 200
    assert Screening.objects.count() == 1 and Patient.objects.count() == 1


def test_api_register_patient_matches_only_the_same_person(client: Client, bearer: dict[str, str]) -> None:
    him, her = PAIRS["latin homonyms without NIR"]
    created = _post(client, "/api/v1/patients", _person(him), bearer)
    same = _post(client, "/api/v1/patients", _person({**him, "last_name": "DOMINIQUE"}), bearer)
    look_alike = _post(client, "/api/v1/patients", _person(her), bearer)
    assert (created.status_code, same.status_code, look_alike.status_code) == (201, 200, 201)
    assert same.json() == {"patient_id": created.json()["patient_id"], "matched_existing": True, "needs_review": False}
    assert look_alike.json()["needs_review"] is True and look_alike.json()["patient_id"] != created.json()["patient_id"]
    flagged = Patient.objects.get(pk=look_alike.json()["patient_id"])
    assert str(flagged.possible_duplicate_of_id) == created.json()["patient_id"]


# --- API batch and CSV: the same rules ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["cyrillic", "chinese", "latin homonyms with NIRs"])
def test_batch_records_each_persons_test_under_their_own_record(client: Client, bearer: dict[str, str], case: str) -> None:
    him, her = PAIRS[case]
    sampled_at = (timezone.now() - timedelta(minutes=9)).isoformat()
    items = [_body(patient=_person(him), sampled_at=sampled_at), _body(patient=_person(her), sampled_at=sampled_at)]
    response = _post(client, "/api/v1/screenings/batch", {"items": items}, bearer)
    assert response.status_code in (200, 201, 207), response.content
    assert Screening.objects.count() == 2
    assert Patient.objects.count() == 2
    for person in (him, her):
        (screening,) = [s for s in Screening.objects.select_related("patient") if s.patient.email == person["email"]]
        assert screening.patient.last_name == person["last_name"]


def _csv(rows: list[dict[str, str]]) -> bytes:
    names = list(csv_import.COLUMN_NAMES)
    examples = {c.name: c.example for c in csv_import.COLUMNS}
    sampled = (timezone.localtime(timezone.now()) - timedelta(hours=1)).strftime("%d/%m/%Y %H:%M")
    lines = []
    for row in rows:
        values = {**examples, "nir": "", "sampled_at": sampled, "phone": "", "symptoms": "", "symptom_onset": "", **row}
        lines.append([values[name] for name in names])
    return csv_import.write_csv([names, *lines]).encode()


@pytest.mark.parametrize("case", ["cyrillic", "arabic", "latin homonyms without NIR"])
def test_csv_records_each_persons_test_under_their_own_record(owner: Any, case: str) -> None:
    him, her = PAIRS[case]
    rows = [{**p, "date_of_birth": "02/04/1985"} for p in (him, her)]
    submission, _ = submissions.csv_submit(actor=owner, data=_csv(rows), file_name="day.csv")
    done = submissions.csv_process(submission=submission, owner="test")
    assert (done.accepted, done.duplicates, done.rejected) == (2, 0, 0), [i.errors for i in done.items.all()]
    assert Patient.objects.count() == 2
    for person in (him, her):
        (screening,) = [s for s in Screening.objects.select_related("patient") if s.patient.email == person["email"]]
        assert (screening.patient.last_name, screening.patient.sex) == (person["last_name"], person["sex"])


def test_csv_refuses_a_name_without_letters_by_row_and_column(owner: Any) -> None:
    result = csv_import.parse_csv(_csv([{"last_name": "---"}]))
    assert [(e.row_number, e.column) for e in result.errors] == [(2, "last_name")]


# --- Web form: register anyway flags; review, merge or keep apart, audited and scoped --------------------------------


def _register(client: Client, values: dict[str, Any]) -> Any:
    return client.post("/patients/new/", {"country": "FR", **values})


def test_web_registration_of_a_look_alike_is_flagged_then_merged(as_user: Any, owner: Any, colleague: Any, stranger: Any) -> None:
    web = as_user(owner)
    earlier = services.patient_register(actor=owner, identity=identity(nir="", email="", phone=""))
    values = {"last_name": "DURAND-TESTEUR", "first_names": "Camille", "sex": "M", "date_of_birth": "1994-03-12"}
    shown = _register(web, values)
    assert shown.status_code == 200 and 'data-testid="duplicate-warning"' in shown.content.decode()
    registered = _register(web, {**values, "confirm_duplicate": "on"})
    assert registered.status_code == 302
    flagged = Patient.objects.exclude(pk=earlier.pk).get()
    assert flagged.possible_duplicate_of_id == earlier.pk
    test = screening_record(actor=owner, patient_id=flagged.pk, data=screening_input())

    review = f"/patients/{flagged.pk}/review/"
    assert 'data-testid="possible-duplicate"' in web.get(f"/patients/{flagged.pk}/").content.decode()
    assert flagged.display_name in web.get("/patients/review/").content.decode()
    page = web.get(review)
    assert page.status_code == 200 and "≠" in page.content.decode()
    assert as_user(colleague).get(review).status_code == 200
    assert as_user(stranger).get(review).status_code == 404
    assert as_user(stranger).post(review, {"keep": str(flagged.pk)}).status_code == 404
    assert Patient.objects.get(pk=earlier.pk).merged_into_id is None

    merged = web.post(review, {"keep": str(earlier.pk)})
    assert merged.status_code == 302 and merged["Location"] == f"/patients/{earlier.pk}/"
    flagged.refresh_from_db()
    assert flagged.merged_into_id == earlier.pk
    assert Screening.objects.get(pk=test.pk).patient_id == earlier.pk
    assert Notification.objects.filter(patient=flagged).count() == 0
    event = AuditEvent.objects.get(action="patient.merge")
    assert event.object_ids == [str(earlier.pk), str(flagged.pk)] and event.actor_id == owner.pk
    assert event.detail["moved"]["screenings.screening"] == 1
    # A merged record is out of searches and out of matching; its page points to the kept record.
    assert 'data-testid="merged"' in web.get(f"/patients/{flagged.pk}/").content.decode()
    assert services.likely_duplicates(pharmacy_id=owner.tenant_id, identity=identity(sex="M", nir="")) == [earlier]


def test_keeping_two_look_alikes_apart_clears_the_flag(as_user: Any, owner: Any, stranger: Any) -> None:
    earlier = services.patient_register(actor=owner, identity=identity(nir=""))
    twin = services.patient_resolve(actor=owner, identity=identity(nir="", sex="M")).patient
    assert twin.possible_duplicate_of_id == earlier.pk
    assert 'data-testid="to-review"' in as_user(owner).get("/").content.decode()
    assert 'data-testid="to-review"' not in as_user(stranger).get("/").content.decode()
    response = as_user(owner).post(f"/patients/{twin.pk}/review/", {"action": "separate"})
    assert response.status_code == 302
    twin.refresh_from_db()
    assert twin.possible_duplicate_of_id is None and twin.merged_into_id is None
    assert AuditEvent.objects.filter(action="patient.not_duplicate").count() == 1
    assert 'data-testid="to-review"' not in as_user(owner).get("/").content.decode()


def test_a_submission_by_the_id_of_a_merged_record_goes_to_the_kept_record(owner: Any) -> None:
    earlier = services.patient_register(actor=owner, identity=identity(nir=""))
    twin = services.patient_resolve(actor=owner, identity=identity(nir="", sex="M")).patient
    services.patient_merge(actor=owner, duplicate_id=twin.pk, into_id=earlier.pk)
    outcome = screening_intake(actor=owner, data=screening_input(), patient_id=twin.pk)
    assert outcome.patient_id == earlier.pk


def test_merge_is_refused_across_pharmacies(owner: Any, stranger: Any) -> None:
    mine = services.patient_register(actor=owner, identity=identity(nir=""))
    theirs = services.patient_register(actor=stranger, identity=identity(nir=""))
    with pytest.raises(Patient.DoesNotExist):
        services.patient_merge(actor=owner, duplicate_id=theirs.pk, into_id=mine.pk)


# --- Existing records: the migration recomputes every index ---------------------------------------------------------


def test_the_migration_reindexes_patients_registered_with_the_ascii_only_rule(owner: Any) -> None:
    from importlib import import_module

    reindex = import_module("relais.patients.migrations.0002_match_review_merge").reindex
    ivan = services.patient_register(actor=owner, identity=identity(last_name="Иванов", first_names="Иван", nir="", sex="M"))
    Patient.objects.filter(pk=ivan.pk).update(identity_index="stale", name_dob_index="stale")  # as written by the old rule
    reindex(django_apps, None)
    ivan.refresh_from_db()
    assert ivan.identity_index == identity_index(
        pharmacy_id=owner.tenant_id, last_name="Иванов", first_names="Иван", date_of_birth=date(1994, 3, 12)
    )
    maria = services.patient_resolve(actor=owner, identity=identity(last_name="Петрова", first_names="Мария", nir="", sex="F"))
    assert maria.created and not maria.needs_review


def test_results_of_two_people_are_never_swapped_in_the_screening_record(owner: Any) -> None:
    him, her = PAIRS["chinese"]
    sampled_at = timezone.now() - timedelta(minutes=3)
    a = screening_intake(actor=owner, data=screening_input(sampled_at=sampled_at), identity=_identity(him))
    b = screening_intake(
        actor=owner, data=screening_input(sampled_at=sampled_at, results={"sars-cov-2": RESULT_DETECTED}), identity=_identity(her)
    )
    assert not a.is_duplicate and not b.is_duplicate and a.patient_id != b.patient_id
