"""Browser journey (issue 15, item 1): the national platform rejects a test for the patient's identity; the pharmacist
follows the link from the rejection, corrects the last name, and the corrected message is acknowledged, with the new
name in what the platform (the sandbox) stored.

Real pieces: the sandbox (MLLP, HL7 v2), gunicorn, a transfer worker, Debian's chromium."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.stack import gunicorn, log_in, new_totp
from tests.e2e.test_journey import Server, Session, Totp, _manage, browser, pytestmark  # noqa: F401
from tests.transfer.live import Relais, Sandbox, relais_env, start_sandbox

EMAIL = "pharmacien@identity.test"
PASSWORD = "granite-umbrella-fennel-octave"
TYPO, FIXED = "DURANT", "DURAND"
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
    pharmacy = pharmacy_create(actor=None, name="Pharmacie E2E", finess="750000010", address_line="3 rue du Faubourg",
        postcode="75010", city="Paris")
    user = User.objects.create_user("%(email)s", "%(password)s", full_name="Paul Bernard", role="pharmacist", pharmacy=pharmacy)
    TOTPDevice.objects.create(user=user, name="phone", confirmed=True, key="%(key)s")
    patient = patient_register(actor=user, identity=PatientIdentity(last_name="%(typo)s", first_names="Camille", sex="F",
        date_of_birth=date(1994, 3, 12), nir="294037512000591", city="Paris", postcode="75002", address_line="12 rue de la Paix"))
    screening = screening_record(actor=user, patient_id=patient.pk, data=ScreeningInput(device_id="1232", specimen_type="258500001",
        sampled_at=timezone.now() - timedelta(minutes=20), results={"sars-cov-2": "260415000"}, information_notice_given=True))
print(json.dumps({"patient": str(patient.pk), "screening": str(screening.pk)}))
"""


def _wait(what: str, check: Any, seconds: float = 30) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Sandbox, Relais, dict[str, str], Totp]]:
    tmp = tmp_path_factory.mktemp("identity")
    sandbox = start_sandbox(tmp)
    relais = Relais(relais_env(tmp, sandbox, destination="sandbox-mllp-hl7v2"))
    try:
        sandbox.mode("reject", reason="INS non qualifiée")
        _manage(relais.env, "migrate", "--no-input", "-v", "0")
        key, authenticator = new_totp()
        setup = SETUP % {"email": EMAIL, "password": PASSWORD, "key": key, "typo": TYPO}
        ids = json.loads(_manage(relais.env, "shell", "-c", setup).strip().splitlines()[-1])
        with gunicorn(relais.env, tmp / "gunicorn.log") as base_url:
            relais.start_worker()
            server = Server(base_url=base_url, var_dir=tmp / "var", first_invitation="", env=relais.env)
            yield server, sandbox, relais, ids, authenticator
    finally:
        relais.stop_workers()
        sandbox.stop()


def test_identity_rejection_corrected_from_the_link(stack: Any, browser: Browser, tmp_path: Path) -> None:  # noqa: F811
    server, sandbox, _relais, ids, authenticator = stack
    # The platform refuses the test: "INS non qualifiée".
    _wait("the rejection", lambda: sandbox.control("/control/stats")["rejected"] >= 1)
    sandbox.mode("normal")

    session = Session(browser, server)
    page = session.page
    log_in(session, email=EMAIL, password=PASSWORD, authenticator=authenticator)

    # The rejection, on the test's page, as the pharmacist finds it; the status reaches the page once recorded.
    test_page = f"/screenings/{ids['screening']}/"
    _wait("the rejection recorded", lambda: "rejection-reason" in page.goto(session.url(test_page)).text())  # type: ignore[union-attr]
    expect(page.locator("[data-testid=rejection-reason]")).to_have_text("INS non qualifiée")
    session.check("rejected")
    clicks = keys = 0
    page.locator("[data-testid=correct-identity]").click()
    clicks += 1
    expect(page).to_have_url(session.url(f"/patients/{ids['patient']}/identity/"))
    last_name = page.locator("#id_last_name")
    expect(last_name).to_have_value(TYPO)
    session.check()
    expect(last_name).to_be_focused()  # the form opens on the last name: select it, type the right one, Enter
    page.keyboard.press("Control+A")
    page.keyboard.type(FIXED)
    page.keyboard.press("Enter")
    keys += 1 + len(FIXED) + 1
    changes = page.locator("[data-testid=identity-changes]")
    expect(changes).to_contain_text(TYPO)
    expect(changes).to_contain_text(FIXED)
    expect(changes.locator("tbody tr")).to_have_count(1)
    expect(changes).to_contain_text("1 test of this patient is still kept")
    page.screenshot(path=tmp_path / "identity-changes.png", full_page=True)
    expect(page.locator("[data-testid=confirm-identity]")).to_be_focused()
    session.check("changes")
    page.keyboard.press("Enter")  # confirm
    keys += 1
    expect(page).to_have_url(session.url(f"/patients/{ids['patient']}/"))
    session.message("Identity corrected. 1 test(s) will be sent again")
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"{FIXED} Camille")
    session.check()

    # The worker sends the corrected version; the sandbox acknowledges and stores it with the new name. The platform
    # refused the original, so it holds no version of this test: the fix goes as the original (OBX-11 F), not C.
    def corrected() -> Any:
        rows = sandbox.control("/control/messages?with_body=1")
        return [r for r in rows if r["result_status"] == "F"]

    (stored,) = _wait("the corrected message at the sandbox", corrected)
    pid = next(s for s in stored["body"].split("\r") if s.startswith("PID|"))
    assert pid.split("|")[5].startswith(f"{FIXED}^Camille"), pid
    assert TYPO not in stored["body"]
    assert "|AA|" in stored["response"]
    assert sandbox.control("/control/stats")["accepted"] == 1  # the rejected original was never stored

    # Relais records the acknowledgement: the patient's test list shows it.
    def acknowledged() -> bool:
        page.reload()
        return page.locator("[data-testid=transfer-status]").first.get_attribute("class") == "transfer acknowledged"

    _wait("the acknowledgement in Relais", acknowledged)
    page.screenshot(path=tmp_path / "identity-corrected.png", full_page=True)
    print(f"identity correction from the rejection: {clicks} click(s), {keys} keystroke(s)")
    session.close()
