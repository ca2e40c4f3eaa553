"""Issue 15, item 9: the record form by keyboard alone. Tab goes through the form in the order of the visit (kit, lot and
expiry, specimen, sampling time, symptoms, result, notice, buttons), the onset date only once the patient has symptoms;
the shortcuts are shown on the page and work (N/P/I on a result, Ctrl+Enter records). Real gunicorn, Debian's chromium;
axe on the form."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.stack import dev_env, gunicorn, log_in, new_totp
from tests.e2e.test_journey import Server, Session, Totp, _manage, browser, pytestmark  # noqa: F401

EMAIL = "clavier@record.test"
PASSWORD = "granite-umbrella-fennel-octave"
SETUP = """
import json
from datetime import date
from django_otp.plugins.otp_totp.models import TOTPDevice
from relais.accounts.models import User
from relais.accounts.services import pharmacy_create
from relais.core.context import request_context
from relais.patients.services import PatientIdentity, patient_register

with request_context(channel="test"):
    pharmacy = pharmacy_create(actor=None, name="Pharmacie du Clavier", finess="750000010", address_line="3 rue du Faubourg",
        postcode="75010", city="Paris")
    user = User.objects.create_user("%(email)s", "%(password)s", full_name="Paul Bernard", role="pharmacist", pharmacy=pharmacy)
    TOTPDevice.objects.create(user=user, name="phone", confirmed=True, key="%(key)s")
    patient = patient_register(actor=user, identity=PatientIdentity(last_name="DURAND", first_names="Camille", sex="F",
        date_of_birth=date(1994, 3, 12)))
print(json.dumps({"patient": str(patient.pk)}))
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str], Totp]]:
    var_dir = tmp_path_factory.mktemp("keyboard-var")
    env = dev_env(var_dir)
    _manage(env, "migrate", "--no-input", "-v", "0")
    key, authenticator = new_totp()
    ids = json.loads(_manage(env, "shell", "-c", SETUP % {"email": EMAIL, "password": PASSWORD, "key": key}).strip().splitlines()[-1])
    with gunicorn(env, var_dir / "gunicorn.log") as base_url:
        yield Server(base_url=base_url, var_dir=var_dir, first_invitation="", env=env), ids, authenticator


def _focused(page: Page) -> str:
    """The focused control as 'name' (or its id, or its button text)."""
    return str(
        page.evaluate(
            "() => { const e = document.activeElement; return e.name || e.id || (e.textContent || '').trim().slice(0, 20) || e.tagName; }"
        )
    )


def _tab_order(page: Page, stop: str) -> list[str]:
    order = [_focused(page)]
    while order[-1] != stop and len(order) < 40:
        page.keyboard.press("Tab")
        order.append(_focused(page))
    return order


def test_record_form_by_keyboard_with_visible_shortcuts(stack: Any, browser: Browser) -> None:  # noqa: F811
    server, ids, authenticator = stack
    session = Session(browser, server)
    page = session.page
    page.context.set_extra_http_headers({"Accept-Language": "en"})
    log_in(session, email=EMAIL, password=PASSWORD, authenticator=authenticator)
    session.goto(f"/patients/{ids['patient']}/record/")
    expect(page.locator("#form-shortcuts")).to_be_visible()
    expect(page.locator("#form-shortcuts kbd")).to_have_count(5)
    expect(page.locator("label kbd").first).to_be_visible()  # on each result choice too
    session.check()

    # The onset date is not in the way until the patient has symptoms.
    expect(page.locator("#id_symptom_onset")).to_be_hidden()
    order = _tab_order(page, stop="queue")
    fields = [name for i, name in enumerate(order) if name not in order[:i]]  # a radio group is one stop
    expected = [
        "device",
        "kit_lot",
        "kit_expiry",
        "specimen_type",
        "sampled_at",
        "symptoms",
        "result_sars-cov-2",
    ]
    positions = [fields.index(name) for name in expected]
    assert positions == sorted(positions), fields
    assert "symptom_onset" not in fields
    assert fields.index("information_notice_given") > fields.index("result_sars-cov-2")
    assert fields[-1] == "queue" and fields.index("Record the test") == len(fields) - 2, fields

    # Symptoms: yes -> the onset date appears, right after.
    page.locator("input[name=symptoms][value=yes]").focus()
    page.keyboard.press("Space")
    expect(page.locator("#id_symptom_onset")).to_be_visible()
    page.keyboard.press("Tab")
    assert _focused(page) == "symptom_onset"

    # A result by its key, then Ctrl+Enter records from anywhere in the form.
    page.locator("#id_device").select_option("1232")
    page.locator("input[name='result_sars-cov-2']").first.focus()
    page.keyboard.press("p")
    expect(page.locator("input[name='result_sars-cov-2'][value='260373001']")).to_be_checked()
    page.keyboard.press("n")
    expect(page.locator("input[name='result_sars-cov-2'][value='260415000']")).to_be_checked()
    page.locator("#id_information_notice_given").check()
    page.locator("#id_sampled_at").focus()
    page.keyboard.press("Control+Enter")
    session.message("Test recorded.")
    expect(page.locator("body")).to_contain_text("Not detected")
    session.close()
