"""Browser journey (issue 15, item 8): the national platform refuses three tests for one reason, then goes down.
The pharmacist sees the outage in plain words on the day's page; the operator sees the banner, resends the refused
ones by their reason after a confirmation; the platform comes back and everything is acknowledged, banner gone.

Real pieces: the sandbox (MLLP, HL7 v2; its reject and down modes), gunicorn, a transfer worker, Debian's chromium."""

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

PHARMACIST, OPERATOR = "pharmacien@outage.test", "operateur@outage.test"
PASSWORD = "granite-umbrella-fennel-octave"
REASON = "OBX-5 valeur non reconnue"
SETUP = """
import json
from datetime import date, timedelta
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice
from relais.accounts.models import User
from relais.accounts.services import pharmacy_create
from relais.core.context import request_context
from relais.patients.services import PatientIdentity, patient_register
with request_context(channel="test"):
    pharmacy = pharmacy_create(actor=None, name="Pharmacie Panne", finess="750000028", address_line="3 rue du Faubourg",
        postcode="75010", city="Paris")
    user = User.objects.create_user("%(pharmacist)s", "%(password)s", full_name="Paul Bernard", role="pharmacist", pharmacy=pharmacy)
    TOTPDevice.objects.create(user=user, name="phone", confirmed=True, key="%(key)s")
    operator = User.objects.create_user("%(operator)s", "%(password)s", full_name="Olga Opé", role="platform_operator")
    TOTPDevice.objects.create(user=operator, name="phone", confirmed=True, key="%(operator_key)s")
    patient = patient_register(actor=user, identity=PatientIdentity(last_name="DURAND", first_names="Camille", sex="F",
        date_of_birth=date(1994, 3, 12), city="Paris", postcode="75002", address_line="12 rue de la Paix"))
print(json.dumps({"patient": str(patient.pk), "user": str(user.pk)}))
"""
RECORD = """
from datetime import timedelta
from django.utils import timezone
from relais.accounts.models import User
from relais.core.context import request_context
from relais.intake.services import screening_record
from relais.screenings.inputs import ScreeningInput
with request_context(channel="test"):
    user = User.objects.get(pk="%(user)s")
    for _ in range(%(count)d):
        screening_record(actor=user, patient_id="%(patient)s", data=ScreeningInput(device_id="1232", specimen_type="258500001",
            sampled_at=timezone.now() - timedelta(minutes=20), results={"sars-cov-2": "260415000"}, information_notice_given=True))
"""


def _wait(what: str, check: Any, seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Sandbox, Relais, dict[str, str], Totp, Totp]]:
    tmp = tmp_path_factory.mktemp("outage")
    sandbox = start_sandbox(tmp)
    # Short backoff: the journey waits for retries in seconds, not minutes.
    relais = Relais(
        relais_env(tmp, sandbox, destination="sandbox-mllp-hl7v2", RELAIS_TRANSFER_BACKOFF_CAP="2", RELAIS_TRANSFER_TIMEOUT="2")
    )
    try:
        _manage(relais.env, "migrate", "--no-input", "-v", "0")
        key, pharmacist_totp = new_totp()
        operator_key, operator_totp = new_totp()
        setup = SETUP % {"pharmacist": PHARMACIST, "operator": OPERATOR, "password": PASSWORD, "key": key, "operator_key": operator_key}
        ids = json.loads(_manage(relais.env, "shell", "-c", setup).strip().splitlines()[-1])
        with gunicorn(relais.env, tmp / "gunicorn.log") as base_url:
            relais.start_worker()
            server = Server(base_url=base_url, var_dir=tmp / "var", first_invitation="", env=relais.env)
            yield server, sandbox, relais, ids, pharmacist_totp, operator_totp
    finally:
        relais.stop_workers()
        sandbox.stop()


def _record(relais: Relais, ids: dict[str, str], count: int) -> None:
    _manage(relais.env, "shell", "-c", RECORD % {"user": ids["user"], "patient": ids["patient"], "count": count})


def test_outage_banner_and_resend_by_reason(stack: Any, browser: Browser, tmp_path: Path) -> None:  # noqa: F811
    server, sandbox, relais, ids, pharmacist_totp, operator_totp = stack
    sandbox.mode("reject", reason=REASON)
    _record(relais, ids, 3)
    _wait("three refusals", lambda: sandbox.control("/control/stats")["rejected"] >= 3)
    sandbox.mode("down")
    _record(relais, ids, 2)

    pharmacist = Session(browser, server)
    page = pharmacist.page
    log_in(pharmacist, email=PHARMACIST, password=PASSWORD, authenticator=pharmacist_totp)

    def banner_shown() -> bool:
        page.reload()
        return page.locator("[data-testid=outage-banner]").count() == 1

    _wait("the outage banner on the day's page", banner_shown)
    expect(page.locator("[data-testid=outage-banner]")).to_contain_text("National platform unreachable since")
    expect(page.locator("[data-testid=outage-banner]")).to_contain_text("(2 messages waiting)")
    expect(page.locator(".transfer.outage").first).to_contain_text("Waiting: platform unreachable since")
    expect(page.locator("body")).not_to_contain_text("connection closed")
    pharmacist.check("outage")
    page.screenshot(path=tmp_path / "today-outage.png", full_page=True)

    operator = Session(browser, server)
    desk = operator.page
    operator.goto("/login/")
    desk.locator("#id_username").fill(OPERATOR)
    desk.locator("#id_password").fill(PASSWORD)
    desk.keyboard.press("Enter")
    expect(desk).to_have_url(operator.url("/mfa/"))
    desk.locator("#id_token").fill(operator_totp.code())
    desk.keyboard.press("Enter")
    expect(desk.locator("header")).to_be_visible()
    operator.goto("/operator/transfer/")
    expect(desk.locator("[data-testid=outage-banner]")).to_contain_text("National platform unreachable since")
    group = desk.locator("[data-testid=reason-group]")
    expect(group).to_have_count(1)
    expect(group).to_contain_text(REASON)
    expect(group).to_contain_text("The national platform refused the result")
    operator.check("outage")
    desk.screenshot(path=tmp_path / "operator-outage.png", full_page=True)

    group.locator("[data-testid=resend-reason]").click()
    expect(desk.locator("[data-testid=resend-confirm-count]")).to_contain_text("3 refused or parked messages")
    operator.check()
    desk.locator("[data-testid=resend-confirm]").click()
    expect(desk).to_have_url(operator.url("/operator/transfer/"))
    operator.message("3 results queued again for the national platform.")

    # The platform comes back: the worker's next retries are acknowledged, and the banner goes.
    sandbox.mode("normal")
    _wait("five acknowledgements", lambda: sandbox.control("/control/stats")["accepted"] >= 5)

    def banner_gone() -> bool:
        desk.reload()
        return desk.locator("[data-testid=outage-banner]").count() == 0 and desk.locator("[data-testid=reason-group]").count() == 0

    _wait("the banner gone", banner_gone)
    page.reload()
    expect(page.locator("[data-testid=outage-banner]")).to_have_count(0)
    pharmacist.close()
    operator.close()
