"""Issue 15 item 3, the test kit: reading the box's GS1 barcode (biip), each pharmacy's GTIN -> device answers, the
shortlist ("Your kits": most used in 90 days, pinned), the device search, the kits page, lot and expiry printed."""

from __future__ import annotations

import calendar
import re
from datetime import date, timedelta
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relais.audit.models import AuditEvent
from relais.frontdesk.csvfile import csv_lines
from relais.frontdesk.exports import _row
from relais.intake.services import screening_intake
from relais.patients.services import patient_register
from relais.screenings import kits
from relais.screenings.inputs import _GS1_CSET82
from relais.screenings.kits import KitScan, parse_kit_barcode, search_devices
from relais.screenings.models import Device, KitBarcode, PinnedKit, Screening
from tests.factories import identity, screening_input

GTIN = "07031234567895"  # valid check digit
EAN13 = "4006381333931"
FUTURE = timezone.localdate().replace(day=1) + timedelta(days=400)


def _yymmdd(day: date) -> str:
    return day.strftime("%y%m%d")


def _check_digit(payload: str) -> str:
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(payload)))
    return str((10 - total % 10) % 10)


# --- reading the barcode ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        f"01{GTIN}17{_yymmdd(FUTURE)}10AB-12/3",  # no separator: the lot (variable length) last
        f"01{GTIN}10AB-12/3\x1d17{_yymmdd(FUTURE)}",  # FNC1 / GS after the lot
        f"]d201{GTIN}10AB-12/3\x1d17{_yymmdd(FUTURE)}",  # with the DataMatrix symbology identifier
        f"01{GTIN}10AB-12/3<GS>17{_yymmdd(FUTURE)}",  # a wedge set to type <GS>
        f"01{GTIN}10AB-12/3|17{_yymmdd(FUTURE)}",
        f"(01){GTIN}(17){_yymmdd(FUTURE)}(10)AB-12/3",  # the human-readable line under the code
        f"  (01){GTIN}(10)AB-12/3(17){_yymmdd(FUTURE)}\n",
    ],
)
def test_a_gs1_element_string_gives_gtin_lot_and_expiry(raw: str) -> None:
    assert parse_kit_barcode(raw) == KitScan(gtin=GTIN, lot="AB-12/3", expiry=FUTURE)


def test_a_bare_ean_or_gtin_gives_the_gtin_only() -> None:
    assert parse_kit_barcode(EAN13) == KitScan(gtin="0" + EAN13)
    assert parse_kit_barcode(GTIN) == KitScan(gtin=GTIN)


@pytest.mark.parametrize(("yymm00", "last"), [("270200", date(2027, 2, 28)), ("280200", date(2028, 2, 29)), ("271200", date(2027, 12, 31))])
def test_expiry_day_00_is_the_end_of_the_month(yymm00: str, last: date) -> None:
    assert parse_kit_barcode(f"01{GTIN}17{yymm00}10L1").expiry == last


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        (f"01{GTIN[:-1]}4172701311012345", "GTIN (01)"),  # wrong check digit in a GS1 string
        ("4006381333932", "GTIN (01)"),  # wrong check digit in an EAN-13
        (f"01{GTIN}17271331", "expiry date (17)"),  # month 13
        (f"01{GTIN}172701", "expiry date (17)"),  # too short
        ("(01)0703", "GTIN (01)"),
        ("10ABC", "no GTIN (01)"),
        (f"01{GTIN}10A\x1d10B", "lot (10) twice"),
        (f"01{GTIN}10{'L' * 21}", "not a kit box's"),  # a lot longer than 20: not GS1
        ("hello", "not a kit box's"),
        ("", "Nothing was scanned"),
        ("9" * 300, "too long"),
    ],
)
def test_a_bad_barcode_is_a_clear_error_naming_the_field(raw: str, named: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_kit_barcode(raw)
    assert list(caught.value.message_dict) == ["scan"]
    assert named in caught.value.message_dict["scan"][0]


_GTIN14 = st.from_regex(r"\A[0-9]{13}\Z").map(lambda p: p + _check_digit(p))
_LOT = st.text(alphabet=sorted(_GS1_CSET82), min_size=1, max_size=20)
# GS1 reads YY within 49 years back and 50 ahead of today; a kit's expiry is well inside.
_EXPIRY = st.dates(min_value=date.today() - timedelta(days=365 * 40), max_value=date.today() + timedelta(days=365 * 40))


@settings(max_examples=300, deadline=None)
@given(gtin=_GTIN14, lot=_LOT, expiry=_EXPIRY, form=st.sampled_from(["gs", "lot-last", "hri", "hri-lot-first"]))
def test_any_valid_gtin_lot_and_expiry_round_trip(gtin: str, lot: str, expiry: date, form: str) -> None:
    yymmdd = _yymmdd(expiry)
    raw = {
        "gs": f"]d210{lot}\x1d01{gtin}17{yymmdd}",
        "lot-last": f"01{gtin}17{yymmdd}10{lot}",
        "hri": f"(01){gtin}(17){yymmdd}(10){lot}",
        "hri-lot-first": f"(10){lot}(01){gtin}(17){yymmdd}",
    }[form]
    if form.startswith("hri") and "(" in lot:
        return  # a "(" in the lot is ambiguous in the printed form; the code itself carries it
    assert parse_kit_barcode(raw) == KitScan(gtin=gtin, lot=lot, expiry=expiry)


@settings(max_examples=150, deadline=None)
@given(gtin=_GTIN14, year=st.integers(2001, 2060), month=st.integers(1, 12))
def test_day_00_round_trips_to_the_last_day(gtin: str, year: int, month: int) -> None:
    last = date(year, month, calendar.monthrange(year, month)[1])
    if abs((last - date.today()).days) > 365 * 40:
        return
    assert parse_kit_barcode(f"01{gtin}17{year % 100:02d}{month:02d}0010X").expiry == last


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    raw=st.one_of(
        st.text(max_size=80),
        st.text(alphabet="0123456789()\x1d|]dCQ", max_size=60),
        st.builds(lambda a, b: f"01{a}{b}", st.from_regex(r"\A[0-9]{0,16}\Z"), st.text(alphabet="0123456789()AB\x1d", max_size=30)),
    )
)
def test_garbage_never_raises_anything_but_a_validation_error(raw: str) -> None:
    try:
        scan = parse_kit_barcode(raw)
    except ValidationError as exc:
        assert list(exc.message_dict) == ["scan"] and exc.message_dict["scan"][0]
    else:
        assert re.fullmatch(r"[0-9]{14}", scan.gtin) and len(scan.lot) <= 20


# --- the pharmacy's answers: GTIN -> device -------------------------------------------------------------------------


def _form(**fields: Any) -> dict[str, Any]:
    return {
        "specimen_type": "258500001",
        "sampled_at": timezone.localtime().strftime("%Y-%m-%dT%H:%M"),
        "result_sars-cov-2": "260415000",
        "information_notice_given": "on",
        **fields,
    }


def _post(client: Any, patient: Any, **fields: Any) -> Any:
    return client.post(f"/patients/{patient.pk}/record/", _form(**fields), HTTP_ACCEPT_LANGUAGE="en")


SCAN = f"01{GTIN}17{_yymmdd(FUTURE)}10LOT42"


def test_a_new_box_is_asked_once_then_remembered_for_the_pharmacy(as_user: Any, owner: Any, colleague: Any, patient: Any) -> None:
    client = as_user(owner)
    asked = _post(client, patient, scan=SCAN, device="1232")  # the list's default is not an answer
    page = asked.content.decode()
    assert asked.status_code == 200 and "which catalogue device is this box?" in page and GTIN in page
    assert f'name="scan_gtin" value="{GTIN}"' in page and not Screening.objects.exists() and not KitBarcode.objects.exists()
    assert 'value="LOT42"' in page  # the page shown again says what the scan read

    answered = _post(client, patient, scan=SCAN, scan_gtin=GTIN, device="1468")
    assert answered.status_code == 302
    recorded = Screening.objects.get()
    assert (recorded.device_id, recorded.kit_lot, recorded.kit_expiry) == ("1468", "LOT42", FUTURE)
    mapping = KitBarcode.objects.get()
    assert (mapping.pharmacy_id, mapping.gtin, mapping.device_id) == (owner.pharmacy_id, GTIN, "1468")
    event = AuditEvent.objects.get(action="kit.gtin_map")
    assert event.detail == {"gtin": GTIN, "device": "1468", "before": None} and event.pharmacy_id == owner.pharmacy_id

    # A colleague's scan of the same box: the device comes from the answer, whatever the list said.
    later = _post(as_user(colleague), patient, scan=SCAN.replace("LOT42", "LOT43"), device="", sampled_at=_minutes_ago(5))
    assert later.status_code == 302
    assert Screening.objects.order_by("recorded_at").last().device_id == "1468"  # type: ignore[union-attr]
    assert KitBarcode.objects.count() == 1 and AuditEvent.objects.filter(action="kit.gtin_map").count() == 1
    assert kits.gtin_device(actor=colleague, gtin=GTIN) == Device.objects.get(pk="1468")


def _minutes_ago(n: int) -> str:
    return (timezone.localtime() - timedelta(minutes=n)).strftime("%Y-%m-%dT%H:%M")


def test_a_strangers_answer_is_never_seen(as_user: Any, owner: Any, stranger: Any, colleague: Any) -> None:
    kits.gtin_remember(actor=stranger, gtin=GTIN, device_id="1468")
    assert kits.gtin_device(actor=stranger, gtin=GTIN).device_id == "1468"  # type: ignore[union-attr]
    assert kits.gtin_device(actor=owner, gtin=GTIN) is None
    answer = as_user(owner).post("/kits/scan/", {"scan": SCAN}, HTTP_ACCEPT_LANGUAGE="en").json()
    assert answer["ok"] and answer["device"] == "" and answer["gtin"] == GTIN and "which catalogue device" in answer["message"]
    kits.gtin_remember(actor=owner, gtin=GTIN, device_id="1232")
    assert kits.gtin_device(actor=stranger, gtin=GTIN).device_id == "1468"  # type: ignore[union-attr]
    assert as_user(colleague).post("/kits/scan/", {"scan": SCAN}).json()["device"] == "1232"
    assert [m.device_id for m in kits.gtin_list(actor=owner)] == ["1232"]
    # The stranger cannot forget the owner's answer: another pharmacy's row is as if it did not exist.
    mapping = KitBarcode.objects.get(pharmacy=owner.pharmacy)
    with pytest.raises(PermissionDenied):
        kits.gtin_forget(actor=stranger, mapping_id=mapping.pk)  # not an administrator
    # Changing an answer is audited with what it was before.
    kits.gtin_remember(actor=owner, gtin=GTIN, device_id="1468")
    changed = AuditEvent.objects.filter(action="kit.gtin_map", pharmacy_id=owner.pharmacy_id).order_by("-id").first()
    assert changed is not None and changed.detail["before"] == "1232" and changed.detail["device"] == "1468"


def test_the_scan_endpoint_says_expired_and_bad_check_digits(as_user: Any, owner: Any) -> None:
    client = as_user(owner)
    expired = client.post("/kits/scan/", {"scan": f"01{GTIN}1724010010LOT1"}, HTTP_ACCEPT_LANGUAGE="en").json()
    assert expired["ok"] and expired["expiry"] == "2024-01-31" and "expired on" in expired["expired"]
    bad = client.post("/kits/scan/", {"scan": f"01{GTIN[:-1]}0"}, HTTP_ACCEPT_LANGUAGE="en").json()
    assert not bad["ok"] and "GTIN (01)" in bad["error"] and "check digit" in bad["error"]
    assert client.get("/kits/scan/").status_code == 405  # POST only: a scan never lands in a URL


def test_the_form_refuses_an_expired_scan_and_a_bad_check_digit(as_user: Any, owner: Any, patient: Any) -> None:
    client = as_user(owner)
    kits.gtin_remember(actor=owner, gtin=GTIN, device_id="1232")
    refused = _post(client, patient, scan=f"01{GTIN}1724010010LOT1", device="")
    assert refused.status_code == 200 and "This kit expired on" in refused.content.decode()
    bad = _post(client, patient, scan=f"01{GTIN[:-1]}0", device="1232")
    assert bad.status_code == 200 and "GTIN (01) has a wrong check digit" in bad.content.decode()
    assert 'id="id_scan_error"' in bad.content.decode()
    assert not Screening.objects.exists()


def test_a_bare_ean_scan_without_javascript_picks_the_device(as_user: Any, owner: Any, patient: Any) -> None:
    kits.gtin_remember(actor=owner, gtin="0" + EAN13, device_id="1468")
    assert _post(as_user(owner), patient, scan=EAN13, device="", kit_lot="TYPED1").status_code == 302
    recorded = Screening.objects.get()
    assert (recorded.device_id, recorded.kit_lot, recorded.kit_expiry) == ("1468", "TYPED1", None)


def test_mapping_needs_a_pharmacy_role(operator: Any) -> None:
    with pytest.raises(PermissionDenied):
        kits.gtin_remember(actor=operator, gtin=GTIN, device_id="1232")


# --- the shortlist ----------------------------------------------------------------------------------------------------


def _tests(actor: Any, patient: Any, device_id: str, n: int, *, days_ago: int = 0) -> None:
    for i in range(n):
        sampled = timezone.now() - timedelta(minutes=10 + i)
        done = screening_intake(actor=actor, data=screening_input(device_id=device_id, sampled_at=sampled), patient_id=patient.pk)
        if days_ago:
            Screening.objects.filter(pk=done.screening.pk).update(recorded_at=timezone.now() - timedelta(days=days_ago))


def test_the_shortlist_is_the_most_used_then_the_pinned(owner: Any, admin: Any, patient: Any, stranger: Any) -> None:
    _tests(owner, patient, "1468", 3)
    _tests(owner, patient, "1232", 1)
    _tests(owner, patient, "1437", 5, days_ago=91)  # older than 90 days: not counted
    _tests(stranger, patient_register(actor=stranger, identity=identity()), "1437", 4)  # another pharmacy's use: not counted
    kits.kit_pin(actor=admin, device_id="1232")  # pinned and used: listed once, at its use rank
    kits.kit_pin(actor=admin, device_id="1833")
    assert kits.most_used_devices(actor=owner) == [("1468", 3), ("1232", 1)]
    assert kits.kit_shortlist(actor=owner) == ["1468", "1232", "1833"]
    assert kits.kit_shortlist(actor=stranger) == ["1437"]
    assert [e.action for e in AuditEvent.objects.filter(action__startswith="kit.")] == ["kit.pin", "kit.pin"]
    kits.kit_unpin(actor=admin, device_id="1833")
    assert kits.kit_shortlist(actor=owner) == ["1468", "1232"]
    with pytest.raises(PermissionDenied):
        kits.kit_pin(actor=owner, device_id="1437")  # pharmacists use the list; the administrator pins


def test_the_record_form_shows_your_kits_first(as_user: Any, owner: Any, admin: Any, patient: Any) -> None:
    _tests(owner, patient, "1468", 2)
    kits.kit_pin(actor=admin, device_id="1833")
    page = as_user(owner).get(f"/patients/{patient.pk}/record/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    group = re.search(r'<optgroup label="Your kits">(.*?)</optgroup>', page, re.S)
    assert group is not None
    assert re.findall(r'value="(\d+)"', group.group(1)) == ["1468", "1833"]
    rest = re.search(r'<optgroup label="All devices">(.*?)</optgroup>', page, re.S)
    assert rest is not None and 'value="1468"' not in rest.group(1) and 'value="1232"' in rest.group(1)
    assert 'data-name="panbio covid 19 ag rapid test" data-other="abbott rapid diagnostics 1232"' in page
    assert "kit-search.js" in page and 'id="kit-search-ui"' in page


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's plan")
def test_the_most_used_kits_are_one_indexed_query(owner: Any, patient: Any) -> None:
    _tests(owner, patient, "1468", 2)
    with CaptureQueriesContext(connection) as queries:
        kits.most_used_devices(actor=owner)
    assert len(queries.captured_queries) == 1
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN QUERY PLAN " + queries.captured_queries[0]["sql"])
        plan = " ".join(str(row) for row in cursor.fetchall())
    assert "screening_pharmacy_recorded" in plan, plan


# --- the search -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "first"),
    [
        ("flowflex", "1468"),
        ("pan", "1232"),
        ("PANBIO", "1232"),
        ("pânbïo", "1232"),
        ("acon flow", "1468"),
        ("lowflex", "1468"),  # inside a word
        ("abbott", "1232"),
        ("1468", "1468"),
    ],
)
def test_search_matches_any_word_of_maker_name_or_id(db: Any, query: str, first: str) -> None:
    found = search_devices(query, Device.objects.filter(active=True))
    assert found and found[0].device_id == first


def test_every_word_must_match_and_the_shortlist_breaks_ties(db: Any) -> None:
    devices = list(Device.objects.filter(active=True))
    assert search_devices("abbott flowflex", devices) == []
    assert [d.device_id for d in search_devices("acon flowflex", devices)] == ["1468"]
    every = search_devices("antigen", devices)
    assert len(every) > 3
    ids = [d.device_id for d in every]
    favourite = ids[-1]
    assert search_devices("antigen", devices, shortlist=[favourite])[0].device_id == favourite
    assert len(search_devices("", devices)) == len(devices)


# --- the kits page ----------------------------------------------------------------------------------------------------


def test_the_kits_page_pins_unpins_and_forgets(as_user: Any, admin: Any, owner: Any, stranger: Any) -> None:
    client = as_user(admin)
    assert as_user(owner).get("/kits/").status_code == 403  # the administrator's page
    assert client.post("/kits/", {"action": "pin", "device": "1468"}).status_code == 302
    assert list(PinnedKit.objects.values_list("device_id", flat=True)) == ["1468"]
    kits.gtin_remember(actor=owner, gtin=GTIN, device_id="1232")
    page = client.get("/kits/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Flowflex" in page and GTIN in page
    foreign = kits.gtin_remember(actor=stranger, gtin=GTIN, device_id="1468")
    assert client.post("/kits/", {"action": "forget", "mapping": str(foreign.pk)}).status_code == 404
    mine = KitBarcode.objects.get(pharmacy=admin.pharmacy)
    assert client.post("/kits/", {"action": "forget", "mapping": str(mine.pk)}).status_code == 302
    assert not KitBarcode.objects.filter(pharmacy=admin.pharmacy).exists() and KitBarcode.objects.filter(pk=foreign.pk).exists()
    assert client.post("/kits/", {"action": "unpin", "device": "1468"}).status_code == 302
    assert not PinnedKit.objects.exists()
    actions = list(AuditEvent.objects.filter(action__in=["kit.pin", "kit.unpin", "kit.gtin_forget"]).values_list("action", flat=True))
    assert actions == ["kit.pin", "kit.gtin_forget", "kit.unpin"]


# --- printed ------------------------------------------------------------------------------------------------------------


def test_lot_and_expiry_are_on_the_test_page_and_the_register(as_user: Any, owner: Any, patient: Any) -> None:
    data = screening_input(kit_lot="-LOT9", kit_expiry=FUTURE)
    recorded = screening_intake(actor=owner, data=data, patient_id=patient.pk).screening
    page = as_user(owner).get(f"/screenings/{recorded.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert re.search(r'data-testid="kit-lot">-LOT9<', page) and FUTURE.strftime("%d/%m/%Y") in page
    row = _row(Screening.objects.select_related("patient", "device").get(pk=recorded.pk))
    _header, line = list(csv_lines([row], header=["h"] * 9, sep=";", yes="y", no="n"))
    assert f";'-LOT9;{FUTURE.isoformat()};" in line  # formula-safe, as every cell


def test_a_new_box_answered_with_result_later_is_remembered_too(as_user: Any, owner: Any, patient: Any) -> None:
    response = _post(as_user(owner), patient, scan=SCAN, scan_gtin=GTIN, device="1468", queue="later", **{"result_sars-cov-2": ""})
    assert response.status_code == 302
    assert kits.gtin_device(actor=owner, gtin=GTIN) == Device.objects.get(pk="1468")
