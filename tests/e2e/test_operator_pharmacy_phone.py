"""Issue 16, the pharmacy's phone in a real browser (gunicorn, Debian's chromium, axe on every state of the page): the
platform operator onboards a pharmacy with its phone (a wrong number refused next to the field, nothing created), then
changes it on the pharmacies list."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.axe import assert_accessible
from tests.e2e.stack import served
from tests.e2e.test_journey import Server, Session, Totp, browser, pytestmark  # noqa: F401

EMAIL = "operator@phone.test"
PASSWORD = "harbour-violet-copper-lantern"
SETUP = """
from django_otp.plugins.otp_totp.models import TOTPDevice
from relais.accounts.models import User

user = User.objects.create_user("%(email)s", "%(password)s", full_name="Omar Perrin", role="platform_operator")
TOTPDevice.objects.create(user=user, name="phone", confirmed=True, key="%(key)s")
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Totp]]:
    with served(tmp_path_factory.mktemp("operator-var"), SETUP, {"email": EMAIL, "password": PASSWORD}) as running:
        yield running


@pytest.fixture(scope="module")
def session(stack: Any, browser: Browser) -> Iterator[Session]:  # noqa: F811
    server, authenticator = stack
    session = Session(browser, server)
    session.page.context.set_extra_http_headers({"Accept-Language": "en"})
    page = session.page
    # stack.log_in ends on the pharmacist's "/": an operator's home redirects to the pharmacies list instead.
    session.goto("/login/")
    page.locator("#id_username").fill(EMAIL)
    page.locator("#id_password").fill(PASSWORD)
    page.keyboard.press("Enter")
    expect(page).to_have_url(session.url("/mfa/"))
    page.locator("#id_token").fill(authenticator.code())
    page.keyboard.press("Enter")
    expect(page).to_have_url(session.url("/operator/pharmacies/"))
    yield session
    session.close()


def test_operator_enters_and_changes_a_pharmacy_phone(session: Session) -> None:
    page = session.page
    expect(page.get_by_role("heading", level=1)).to_have_text("Pharmacies")
    assert_accessible(page, name="operator pharmacies")
    values = {"name": "Pharmacie du Port", "finess": "130000011", "address_line": "2 quai du Port", "postcode": "13002"}
    for name, value in {**values, "city": "Marseille", "phone": "12", "admin_email": "port@example.org"}.items():
        page.locator(f"#id_{name}").fill(value)
    page.get_by_role("button", name="Create pharmacy and invite").click()
    expect(page.locator("#id_phone_error")).to_be_visible()
    expect(page.get_by_label("Pharmacy phone:", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(page.locator("[data-testid=invite-link]")).to_have_count(0)
    expect(page.locator("[data-testid=pharmacy-phone]")).to_have_count(0)  # nothing created
    assert_accessible(page, name="operator pharmacies (phone error)")
    page.get_by_label("Pharmacy phone:", exact=True).fill("04 91 00 00 00")
    page.get_by_role("button", name="Create pharmacy and invite").click()
    expect(page.locator("[data-testid=invite-link]")).to_be_visible()
    row_phone = page.locator("[data-testid=pharmacy-phone]")
    expect(row_phone).to_have_value("+33491000000")
    assert_accessible(page, name="operator pharmacies (created)")
    row_phone.fill("04 91 11 22 33")
    page.locator("tbody").get_by_role("button", name="Save").click()
    session.message("The pharmacy's phone number is saved.")
    expect(page.locator("[data-testid=pharmacy-phone]")).to_have_value("+33491112233")
    assert_accessible(page, name="operator pharmacies (phone saved)")
