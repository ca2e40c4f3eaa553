"""Issue 16, front-desk leftovers in a real browser (gunicorn, Debian's chromium, axe on every page):
- "My account": a pharmacist enters their own RPPS number from the navigation; a wrong key is refused next to the field.
- The patient form's "in Latin letters" fields appear while typing a name no ICAO 9303 table covers (Chinese), stay
  hidden for Latin, Greek, Cyrillic and Arabic names, and the browser's rule (static/latin-reveal.js over the data the
  server renders) gives what the Python function gives, for names of many scripts and for every code point alone."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from relais.certificates.transliteration import untransliterable
from tests.certificates.test_icao_coverage import SAMPLE_NAMES, random_names
from tests.e2e.axe import assert_accessible
from tests.e2e.stack import log_in, served
from tests.e2e.test_journey import Server, Session, Totp, browser, pytestmark  # noqa: F401

EMAIL = "rpps@account.test"
PASSWORD = "lantern-quarry-saffron-meadow"
VALID = "10100000008"
SETUP = """
from django_otp.plugins.otp_totp.models import TOTPDevice
from relais.accounts.models import User
from relais.accounts.services import pharmacy_create
from relais.core.context import request_context

with request_context(channel="test"):
    pharmacy = pharmacy_create(actor=None, name="Pharmacie du Compte", finess="750000010", address_line="5 rue Oberkampf",
        postcode="75011", city="Paris")
    user = User.objects.create_user("%(email)s", "%(password)s", full_name="Lina Moreau", role="pharmacist", pharmacy=pharmacy)
    TOTPDevice.objects.create(user=user, name="phone", confirmed=True, key="%(key)s")
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Totp]]:
    with served(tmp_path_factory.mktemp("account-var"), SETUP, {"email": EMAIL, "password": PASSWORD}) as running:
        yield running


@pytest.fixture(scope="module")
def session(stack: Any, browser: Browser) -> Iterator[Session]:  # noqa: F811
    server, authenticator = stack
    session = Session(browser, server)
    session.page.context.set_extra_http_headers({"Accept-Language": "en"})
    log_in(session, email=EMAIL, password=PASSWORD, authenticator=authenticator)
    yield session
    session.close()


def test_my_account_rpps(session: Session) -> None:
    page = session.page
    session.nav("My account")
    expect(page.get_by_role("heading", level=1)).to_have_text("My account")
    field = page.get_by_label("RPPS number")
    expect(field).to_have_value("")
    assert_accessible(page, name="my account")
    field.fill("10100000009")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#id_rpps_error")).to_contain_text("RPPS number: the last digit")
    expect(field).to_have_attribute("aria-invalid", "true")
    assert_accessible(page, name="my account (error)")
    field.fill("101 0000 0008")
    page.get_by_role("button", name="Save").click()
    session.message("Your RPPS number is saved.")
    expect(page.get_by_label("RPPS number")).to_have_value(VALID)
    assert_accessible(page, name="my account (saved)")


def _python_rule(name: str) -> bool:
    return bool(name.strip()) and untransliterable(name)


def test_latin_fields_appear_while_typing(session: Session) -> None:
    page = session.page
    session.goto("/patients/new/")
    latin_last, latin_first = page.locator("#id_latin_last_name"), page.locator("#id_latin_first_names")
    expect(latin_last).to_be_hidden()
    expect(latin_first).to_be_hidden()
    assert_accessible(page, name="new patient")
    last_name, first_names = page.locator("#id_last_name"), page.locator("#id_first_names")
    for last, first in (("Dupont-Lefèvre", "Anne"), ("Παπαδόπουλος", "Νίκος"), ("Иванов", "Пётр"), ("محمد", "فاطمة")):
        last_name.fill("")
        last_name.press_sequentially(last)
        first_names.fill("")
        first_names.press_sequentially(first)
        expect(latin_last).to_be_hidden()
        expect(latin_first).to_be_hidden()
    first_names.fill("")
    first_names.press_sequentially("小明")
    expect(latin_last).to_be_visible()
    expect(latin_first).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("the Latin spelling fields are now shown")
    assert_accessible(page, name="new patient (Latin spelling)")
    first_names.fill("Ahmed")  # back to a covered name: hidden again
    expect(latin_last).to_be_hidden()
    first_names.fill("")
    first_names.press_sequentially("王")
    expect(latin_last).to_be_visible()
    latin_last.fill("MOHAMED")
    first_names.fill("Ahmed")
    expect(latin_last).to_be_visible()  # a Latin spelling given stays shown, as the server does
    assert session.problems == []


def test_the_browser_rule_is_the_python_rule(session: Session) -> None:
    page = session.page
    session.goto("/patients/new/")
    names = [*SAMPLE_NAMES, *random_names(600)]
    browser_says = page.evaluate("names => names.map(name => window.relaisNeedsLatin(name))", names)
    differ = [(name, said) for name, said in zip(names, browser_says, strict=True) if said != _python_rule(name)]
    assert differ == []
    # Every code point alone, compared as the list of those needing a Latin spelling (ranges, to keep it small).
    browser_ranges = page.evaluate(
        """max => {
            const out = [];
            for (let code = 0; code <= max; code++) {
                if (code >= 0xd800 && code <= 0xdfff) continue;
                if (!window.relaisNeedsLatin(String.fromCodePoint(code))) continue;
                const last = out[out.length - 1];
                if (last && last[1] === code - 1) last[1] = code; else out.push([code, code]);
            }
            return out;
        }""",
        sys.maxunicode,
    )
    python_ranges: list[list[int]] = []
    for code in range(sys.maxunicode + 1):
        if 0xD800 <= code <= 0xDFFF or not _python_rule(chr(code)):
            continue
        if python_ranges and python_ranges[-1][1] == code - 1:
            python_ranges[-1][1] = code
        else:
            python_ranges.append([code, code])
    assert browser_ranges == python_ranges
