"""Browser journey (issue 15, item 3), "scan a kit": a keyboard-wedge scanner types the box's GS1 DataMatrix into the
record form's device field then Enter; a box the pharmacy never scanned asks once which catalogue device it is (found by
typing "flowflex"), the test is recorded and its page shows lot and expiry; the next scan of that box picks the device at
once; an expired box is refused with the message. The device search ranks as relais/screenings/kits.py does; the
administrator's kits page pins a kit. Real gunicorn on SQLite, Debian's chromium; prints
``kit scan: N keys M clicks T s`` for the first (unknown box) test."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from relais.screenings.catalogue import BUNDLED_VALUE_SET, devices_from_value_set
from relais.screenings.kits import search_devices
from relais.screenings.models import Device
from tests.e2e.axe import SUMMARY
from tests.e2e.stack import dev_env, gunicorn, log_in, new_totp
from tests.e2e.test_journey import Server, Session, Totp, _manage, browser, pytestmark  # noqa: F401

EMAIL = "comptoir@kit.test"
ADMIN_EMAIL = "titulaire@kit.test"
PASSWORD = "granite-umbrella-fennel-octave"
GTIN = "07031234567895"
SETUP = """
import json
from datetime import date, timedelta
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice
from relais.accounts.models import User
from relais.accounts.services import pharmacy_create
from relais.core.context import request_context
from relais.intake.services import screening_record
from relais.patients.services import PatientIdentity, patient_register
from relais.screenings.inputs import ScreeningInput

with request_context(channel="test"):
    pharmacy = pharmacy_create(actor=None, name="Pharmacie du Kit", finess="750000010", address_line="3 rue du Faubourg",
        postcode="75010", city="Paris")
    user = User.objects.create_user("%(email)s", "%(password)s", full_name="Paul Bernard", role="pharmacist", pharmacy=pharmacy)
    TOTPDevice.objects.create(user=user, name="phone", confirmed=True, key="%(key)s")
    admin = User.objects.create_user("%(admin_email)s", "%(password)s", full_name="Alice Martin", role="pharmacy_admin",
        pharmacy=pharmacy)
    TOTPDevice.objects.create(user=admin, name="phone", confirmed=True, key="%(admin_key)s")
    ids = {}
    for last, first, sex, born in (("DURAND", "Camille", "F", date(1994, 3, 12)), ("MARTIN", "Léo", "M", date(1988, 7, 1)),
                                   ("PETIT", "Noé", "M", date(1979, 5, 5))):
        patient = patient_register(actor=user, identity=PatientIdentity(last_name=last, first_names=first, sex=sex,
            date_of_birth=born))
        ids[last] = str(patient.pk)
    # Earlier today, a Panbio: the form offers it first, and a scan must override that.
    screening_record(actor=user, patient_id=ids["PETIT"], data=ScreeningInput(device_id="1232", specimen_type="258500001",
        sampled_at=timezone.now() - timedelta(hours=2), results={"sars-cov-2": "260415000"}, information_notice_given=True))
print(json.dumps(ids))
"""


def _yymmdd(day: date) -> str:
    return day.strftime("%y%m%d")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str], Totp, Totp]]:
    var_dir = tmp_path_factory.mktemp("kit-var")
    env = dev_env(var_dir)
    _manage(env, "migrate", "--no-input", "-v", "0")
    key, authenticator = new_totp()
    admin_key, admin_authenticator = new_totp()
    setup = SETUP % {"email": EMAIL, "admin_email": ADMIN_EMAIL, "password": PASSWORD, "key": key, "admin_key": admin_key}
    ids = json.loads(_manage(env, "shell", "-c", setup).strip().splitlines()[-1])
    with gunicorn(env, var_dir / "gunicorn.log") as base_url:
        yield Server(base_url=base_url, var_dir=var_dir, first_invitation="", env=env), ids, authenticator, admin_authenticator


class Hands:
    """The pharmacist's keys and clicks, counted."""

    def __init__(self, page: Page) -> None:
        self.page, self.keys, self.clicks = page, 0, 0

    def type(self, text: str) -> None:
        self.page.keyboard.type(text)
        self.keys += len(text)

    def press(self, key: str) -> None:
        self.page.keyboard.press(key)
        self.keys += 1

    def click(self, target: Any) -> None:
        target.click()
        self.clicks += 1


def _options(page: Page) -> list[str]:
    return page.locator("#id_device option").evaluate_all("(options) => options.map((o) => o.value)")


def _finish(hands: Hands) -> None:
    page = hands.page
    hands.click(page.get_by_role("radio", name=re.compile(r"^Not detected")))
    hands.click(page.locator("#id_information_notice_given"))
    hands.click(page.get_by_role("button", name="Record the test"))


def test_scan_a_kit(stack: Any, browser: Browser, tmp_path: Path) -> None:  # noqa: F811
    server, ids, authenticator, admin_authenticator = stack
    session = Session(browser, server)
    page = session.page
    log_in(session, email=EMAIL, password=PASSWORD, authenticator=authenticator)
    expiry = date.today().replace(day=1) + timedelta(days=400)
    shown_expiry = expiry.strftime("%d/%m/%Y")

    # --- a box this pharmacy never scanned: asked once ---
    session.goto(f"/patients/{ids['DURAND']}/record/")
    device = page.locator("#id_device")
    expect(device).to_be_focused()
    expect(device).to_have_value("1232")  # the last kit used
    expect(page.locator("#id_scan")).to_be_hidden()  # the search box takes the scans; the field stays for no JavaScript
    session.check()
    hands = Hands(page)
    axe_before = SUMMARY.seconds
    tick = time.perf_counter()
    hands.type(f"01{GTIN}17{_yymmdd(expiry)}10LOT-A7")  # the wedge: as fast as it types, then Enter
    hands.press("Enter")
    status = page.locator("[data-testid=kit-status]")
    expect(status).to_contain_text("which catalogue device is this box?")
    expect(status).to_contain_text(GTIN)
    expect(device).to_have_value("")
    expect(page.locator("#id_kit_lot")).to_have_value("LOT-A7")
    expect(page.locator("#id_kit_expiry")).to_have_value(expiry.isoformat())
    expect(page.locator("#kit-filter")).to_be_focused()
    session.check("new box")
    hands.type("flowflex")
    expect(device).to_have_value("1468")
    hands.press("Enter")
    expect(page.locator("#id_specimen_type")).to_be_focused()
    _finish(hands)
    expect(page).to_have_url(re.compile(r"/screenings/[0-9a-f-]{36}/$"))
    expect(page.locator("ul.messages")).to_contain_text("Test recorded.")
    seconds = time.perf_counter() - tick - (SUMMARY.seconds - axe_before)
    expect(page.locator("[data-testid=kit-lot]")).to_have_text("LOT-A7")
    expect(page.locator("[data-testid=kit-expiry]")).to_have_text(shown_expiry)
    expect(page.get_by_text("Flowflex", exact=False).first).to_be_visible()
    session.check()
    page.screenshot(path=tmp_path / "kit-recorded.png", full_page=True)
    print(f"kit scan: {hands.keys} keys {hands.clicks} clicks {seconds:.1f} s")

    # --- the same box again: the device at once ---
    session.goto(f"/patients/{ids['MARTIN']}/record/")
    expect(device).to_be_focused()  # a wedge typing before autofocus lands loses its first characters
    again = Hands(page)
    again.type(f"]d201{GTIN}17{_yymmdd(expiry)}10LOT-B8")
    again.press("Enter")
    expect(status).to_contain_text("Box recognised")
    expect(device).to_have_value("1468")
    expect(page.locator("#id_kit_lot")).to_have_value("LOT-B8")
    _finish(again)
    expect(page.locator("ul.messages")).to_contain_text("Test recorded.")
    expect(page.locator("[data-testid=kit-lot]")).to_have_text("LOT-B8")
    assert again.keys == len(f"]d201{GTIN}17{_yymmdd(expiry)}10LOT-B8") + 1 and again.clicks == 3

    # --- an expired box: refused, with the message, when scanned and when recorded ---
    session.goto(f"/patients/{ids['PETIT']}/record/")
    expect(device).to_be_focused()
    page.keyboard.type(f"01{GTIN}1724010010OLD1")
    page.keyboard.press("Enter")
    alert = page.locator("[data-testid=kit-alert]")
    expect(alert).to_contain_text("This kit expired on")
    expect(device).to_have_value("1468")
    session.check("expired")
    _finish(Hands(page))
    expect(page.locator("#id_kit_expiry_error")).to_contain_text("This kit expired on")
    expect(page).to_have_url(re.compile(r"/record/$"))

    # --- a bad check digit: named ---
    page.locator("#kit-filter").fill("")
    page.locator("#kit-filter").press_sequentially(f"01{GTIN[:-1]}017270331")
    page.locator("#kit-filter").press("Enter")
    expect(alert).to_contain_text("GTIN (01) has a wrong check digit")

    # --- the search ranks as the server's search_devices ---
    session.goto(f"/patients/{ids['MARTIN']}/record/")
    shortlist = page.locator("#id_device optgroup").first.locator("option").evaluate_all("(o) => o.map((x) => x.value)")
    assert shortlist == ["1232", "1468"] or shortlist == ["1468", "1232"], shortlist  # "Your kits"
    catalogue = sorted(
        (Device(**row) for row in devices_from_value_set(json.loads(BUNDLED_VALUE_SET.read_text(encoding="utf-8")))),
        key=lambda d: (d.manufacturer, d.name),
    )
    catalogue = [d for d in catalogue if d.active]
    box = page.locator("#kit-filter")
    for query in ("pan", "flowflex", "PÂNBIO", "acon flow", "antigen", "rapid test", "abbott flowflex", "1468", "sars 2"):
        box.fill(query)
        expected = [d.device_id for d in search_devices(query, catalogue, shortlist=shortlist)]
        assert _options(page) == expected, query
    box.fill("pan")
    expect(device).to_have_value("1232")
    box.press("ArrowDown")
    box.press("Escape")
    expect(page.locator("#id_device optgroup")).to_have_count(2)  # the full list again
    session.check("searching")
    session.close()

    # --- the administrator's kits page: the box, the shortlist, a pin ---
    admin = Session(browser, server)
    log_in(admin, email=ADMIN_EMAIL, password=PASSWORD, authenticator=admin_authenticator)
    admin.nav("Test kits")
    expect(admin.page.get_by_role("heading", level=1)).to_have_text("Test kits")
    expect(admin.page.locator("[data-testid=boxes]")).to_contain_text(GTIN)
    admin.check()
    admin.page.locator("#id_device").select_option("1833")
    admin.page.get_by_role("button", name="Pin this kit").click()
    expect(admin.page.locator("[data-testid=pinned]")).to_contain_text("1833")
    admin.check("pinned")
    admin.close()
