"""Pre-registration in a real Chromium against a real gunicorn: a patient fills in the form on a 360 px phone and gets
a code; the pharmacist (TOTP login) finds it by the code, confirms and records a negative test. The same pharmacist also
records a walk-in patient (register + record, keyboard path), and the keystrokes, clicks and machine time of both are
printed: ``front desk: walk-in N keys M clicks T s; pre-registered N keys M clicks T s``."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.e2e.axe import SUMMARY, check_page
from tests.e2e.test_journey import (  # noqa: F401  # server and browser are fixtures
    CHROMIUM,
    FINESS,
    KNOWN_PROBLEMS,
    Server,
    Session,
    _manage,
    browser,
    server,
)

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"needs Debian chromium at {CHROMIUM}")

PHARMACIST_EMAIL = "comptoir@e2e.test"
PHARMACIST_PASSWORD = "saffron-lighthouse-marble-quiver"

# A test recorded earlier in the day: the record form then offers the pharmacy's last kit, for both patients alike.
EARLIER_TEST = f"""
from datetime import date, timedelta
from django.utils import timezone
from relais.accounts.models import Pharmacy, Role, User
from relais.core.context import request_context
from relais.intake.services import screening_record
from relais.patients.services import PatientIdentity, patient_register
from relais.prereg.services import link_for
from relais.screenings.inputs import ScreeningInput
pharmacy = Pharmacy.objects.get(finess="{FINESS}")
user = User.objects.create_user("matin@e2e.test", "quartz-harbour-velvet-cinnamon", full_name="Matin", role=Role.PHARMACIST,
    pharmacy=pharmacy)
with request_context(channel="test"):
    patient = patient_register(actor=user, identity=PatientIdentity(last_name="Matin-Essai", first_names="Léo", sex="M",
        date_of_birth=date(1980, 1, 2)))
    screening_record(actor=user, patient_id=patient.pk, data=ScreeningInput(device_id="1232", specimen_type="258500001",
        sampled_at=timezone.now() - timedelta(hours=2), results={{"sars-cov-2": "260415000"}}, information_notice_given=True))
print("LINK=/pre/" + link_for(pharmacy=pharmacy).token + "/")
"""


@dataclass
class Counted:
    """The pharmacist's hands: every key and click goes through here, so the figures are exact."""

    page: Page
    keys: int = 0
    clicks: int = 0

    def click(self, target: Locator) -> None:
        target.click()
        self.clicks += 1

    def type(self, text: str) -> None:
        self.page.keyboard.type(text)
        self.keys += len(text)

    def press(self, key: str) -> None:
        self.page.keyboard.press(key)
        self.keys += 1

    def tab_to(self, element_id: str, *, most: int = 8) -> None:
        """Tab until ``element_id`` has the focus (a date field takes several Tabs to leave: its parts, its button)."""
        for _ in range(most):
            self.press("Tab")
            if self.page.evaluate("document.activeElement.id") == element_id:
                return
        raise AssertionError(f"Tab never reached #{element_id}")


def _record_negative(hands: Counted) -> None:
    """The record form as the pharmacist uses it: the kit is the last one used, so: result, notice, record."""
    page = hands.page
    expect(page).to_have_url(re.compile(r"/patients/[0-9a-f-]{36}/record/$"))
    expect(page.locator("#id_device")).to_have_value("1232")
    hands.click(page.get_by_role("radio", name=re.compile(r"^Not detected")))
    hands.click(page.locator("#id_information_notice_given"))
    hands.click(page.get_by_role("button", name="Record the test"))
    expect(page).to_have_url(re.compile(r"/screenings/[0-9a-f-]{36}/$"))
    expect(page.locator("ul.messages")).to_contain_text("Test recorded.")


def _fits(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def test_pre_registered_patient_at_the_counter(server: Server, browser: Browser, record_property: Any, capsys: Any, tmp_path: Path) -> None:  # noqa: F811
    link = re.search(r"LINK=(\S+)", _manage(server.env, "shell", "-c", EARLIER_TEST)).group(1)  # type: ignore[union-attr]

    # --- the patient, on a phone, in French first ---
    phone = browser.new_context(locale="fr-FR", viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True)
    phone.set_default_timeout(10_000)
    page = phone.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" and not KNOWN_PROBLEMS.search(m.text) else None)
    page.goto(server.base_url + link)
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    expect(page.get_by_role("heading", level=1)).to_have_text("Pré-enregistrez-vous pour votre test")
    expect(page.get_by_text("Pharmacie E2E")).to_be_visible()
    assert _fits(page), "the form scrolls sideways on a 360 px phone"
    check_page(page)
    page.get_by_role("button", name="English").click()  # the site's language switch, back on the same link
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page).to_have_url(server.base_url + link)
    page.get_by_role("textbox", name="Last name").fill("Lefèvre-Essai")
    page.get_by_role("textbox", name="First names").fill("Zoé")
    page.get_by_role("combobox", name="Sex").select_option("F")
    page.get_by_role("textbox", name="Date of birth").fill("14/07/1990")
    page.get_by_role("textbox", name="Mobile phone").fill("06 12")
    page.get_by_role("checkbox", name="Send me the link to my result").check()
    page.get_by_role("button", name="Send my details").click()
    # A wrong number: the message is under the field, tied to it, and the focus is there.
    phone_field = page.get_by_role("textbox", name="Mobile phone")
    expect(phone_field).to_be_focused()
    expect(phone_field).to_have_attribute("aria-describedby", re.compile(r"^id_phone_error\b"))
    expect(page.locator("#id_phone_error")).to_contain_text("phone number")
    assert _fits(page), "the form with its errors scrolls sideways on a phone"
    check_page(page, state="errors")
    page.screenshot(path=tmp_path / "prereg-phone-error.png", full_page=True)
    phone_field.fill("06 12 34 56 78")
    page.get_by_role("button", name="Send my details").click()
    expect(page).to_have_url(server.base_url + "/pre/done/")
    code = page.locator("[data-testid=prereg-code]").inner_text().strip()
    assert re.fullmatch(r"[A-Z0-9]{6}", code), code
    assert _fits(page)
    check_page(page)
    page.screenshot(path=tmp_path / "prereg-phone-code.png", full_page=True)
    phone.close()
    assert not problems, problems

    # --- the pharmacist: invitation, password, TOTP ---
    printed = _manage(server.env, "invite", PHARMACIST_EMAIL, "--role", "pharmacist", "--pharmacy", FINESS)
    invitation = re.search(r"https?://[^/\s]+(/invite/\S+/)", printed)
    assert invitation, printed
    counter = Session(browser, server)
    counter.accept_invitation(server.base_url + invitation.group(1), "Claire Comptoir", PHARMACIST_PASSWORD)
    counter.login_password(PHARMACIST_EMAIL, PHARMACIST_PASSWORD)
    counter.enrol_totp()
    page = counter.page

    # --- walk-in: register + record, the keyboard path through the existing forms ---
    walk_in = Counted(page)
    tick = time.perf_counter()
    walk_in.click(page.locator("header nav").get_by_role("link", name="New patient", exact=True))
    expect(page.locator("#id_last_name")).to_be_focused()
    walk_in.type("Martin-Essai")
    walk_in.press("Tab")
    walk_in.type("Paul")
    walk_in.press("Tab")
    walk_in.type("m")  # the sex list: M selects Male
    walk_in.press("Tab")
    walk_in.type("02051985")  # en-GB date field: day, month, year
    walk_in.tab_to("id_nir")
    walk_in.tab_to("id_phone")
    walk_in.type("0698765432")
    walk_in.press("Enter")
    expect(page.locator("ul.messages")).to_contain_text("Patient registered.")
    expect(page.get_by_role("heading", level=1)).to_contain_text("MARTIN-ESSAI Paul")
    _record_negative(walk_in)
    walk_in_seconds = time.perf_counter() - tick
    expect(page.locator("[data-testid=result]")).to_contain_text("Not detected")

    # --- pre-registered: find by the code, check the document, confirm, record ---
    pre = Counted(page)
    tick = time.perf_counter()
    axe_before = SUMMARY.seconds  # the accessibility checks' time is not the pharmacist's: taken off below
    pre.click(page.locator("header nav").get_by_role("link", name="Pre-registered", exact=True))
    expect(page.get_by_role("cell", name="LEFÈVRE-ESSAI Zoé")).to_be_visible()  # in the list, with its date of birth
    expect(page.get_by_role("cell", name="14/07/1990")).to_be_visible()
    expect(page.locator("#id_code")).to_be_focused()
    counter.check("waiting")
    pre.type(code.lower())  # as read from the patient's screen, in any case
    pre.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Confirm a pre-registration")
    expect(page.locator("[data-testid=prereg-identity]")).to_contain_text("14/07/1990")
    expect(page.get_by_role("note")).to_contain_text("Check the identity document")
    expect(page.get_by_role("button", name="Identity checked: confirm and record the test")).to_be_focused()
    counter.check()
    page.screenshot(path=tmp_path / "prereg-confirm.png", full_page=True)
    pre.press("Enter")
    expect(page.locator("ul.messages")).to_contain_text("Patient registered.")
    expect(page.get_by_role("heading", level=1)).to_contain_text("LEFÈVRE-ESSAI Zoé")
    _record_negative(pre)
    pre_seconds = time.perf_counter() - tick - (SUMMARY.seconds - axe_before)
    expect(page.locator("[data-testid=result]")).to_contain_text("Not detected")
    expect(page.get_by_role("heading", level=1)).to_contain_text("LEFÈVRE-ESSAI")

    # The pre-registration is gone from the list once confirmed; both tests are on today's list.
    counter.nav("Pre-registered")
    expect(page.get_by_text("No pre-registration waiting.")).to_be_visible()
    counter.nav("Today")
    for name in ("LEFÈVRE-ESSAI Zoé", "MARTIN-ESSAI Paul"):
        expect(page.locator("table.screenings tbody tr", has_text=name)).to_contain_text("Not detected")
    counter.logout()
    counter.close()

    line = (
        f"front desk: walk-in {walk_in.keys} keys {walk_in.clicks} clicks {walk_in_seconds:.1f} s; "
        f"pre-registered {pre.keys} keys {pre.clicks} clicks {pre_seconds:.1f} s"
    )
    record_property("summary", line)
    with capsys.disabled():
        print(f"\n{line}\n[e2e] screenshots in {tmp_path}")
    assert pre.keys + pre.clicks < walk_in.keys + walk_in.clicks
