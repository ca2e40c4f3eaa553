"""Browser journey (issue 15, item 7): the today list refreshes itself when a test is recorded elsewhere; the pharmacist
opens the day's dashboard, reads today's counts and downloads the day as CSV, which holds the day's tests and no other
pharmacy's. Real gunicorn on SQLite, Debian's chromium; the 30 s refresh runs on Playwright's clock."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.stack import dev_env, gunicorn, log_in, new_totp
from tests.e2e.test_journey import Server, Session, Totp, _manage, browser, pytestmark  # noqa: F401

EMAIL = "pharmacien@day.test"
PASSWORD = "granite-umbrella-fennel-octave"
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

def test(user, patient, minutes, result):
    return screening_record(actor=user, patient_id=patient.pk, data=ScreeningInput(device_id="1232", specimen_type="258500001",
        sampled_at=timezone.now() - timedelta(minutes=minutes), results={"sars-cov-2": result}, information_notice_given=True))

with request_context(channel="test"):
    pharmacy = pharmacy_create(actor=None, name="Pharmacie du Jour", finess="750000010", address_line="3 rue du Faubourg",
        postcode="75010", city="Paris")
    other = pharmacy_create(actor=None, name="Pharmacie Ailleurs", finess="690001235", address_line="1 place Bellecour",
        postcode="69002", city="Lyon")
    user = User.objects.create_user("%(email)s", "%(password)s", full_name="Paul Bernard", role="pharmacist", pharmacy=pharmacy)
    TOTPDevice.objects.create(user=user, name="phone", confirmed=True, key="%(key)s")
    stranger = User.objects.create_user("stranger@day.test", "%(password)s", role="pharmacist", pharmacy=other)
    camille = patient_register(actor=user, identity=PatientIdentity(last_name="DURAND", first_names="Camille", sex="F",
        date_of_birth=date(1994, 3, 12)))
    leo = patient_register(actor=user, identity=PatientIdentity(last_name="=HYPERLINK(\\"http://x.example\\")", first_names="Léo",
        sex="M", date_of_birth=date(1988, 7, 1)))
    far = patient_register(actor=stranger, identity=PatientIdentity(last_name="AILLEURS", first_names="Zoé", sex="F",
        date_of_birth=date(1970, 1, 2)))
    test(user, camille, 30, "260415000")
    test(user, leo, 20, "260373001")
    test(stranger, far, 10, "260373001")
print(json.dumps({"camille": str(camille.pk)}))
"""
ANOTHER_TEST = """
from datetime import timedelta
from django.utils import timezone
from relais.accounts.models import User
from relais.core.context import request_context
from relais.intake.services import screening_record
from relais.screenings.inputs import ScreeningInput
with request_context(channel="test"):
    screening_record(actor=User.objects.get(email="%(email)s"), patient_id="%(patient)s", data=ScreeningInput(device_id="1232",
        specimen_type="258500001", sampled_at=timezone.now() - timedelta(minutes=2), results={"sars-cov-2": "260415000"},
        information_notice_given=True))
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str], Totp]]:
    var_dir = tmp_path_factory.mktemp("day-var")
    env = dev_env(var_dir)
    _manage(env, "migrate", "--no-input", "-v", "0")
    key, authenticator = new_totp()
    ids = json.loads(_manage(env, "shell", "-c", SETUP % {"email": EMAIL, "password": PASSWORD, "key": key}).strip().splitlines()[-1])
    with gunicorn(env, var_dir / "gunicorn.log") as base_url:
        yield Server(base_url=base_url, var_dir=var_dir, first_invitation="", env=env), ids, authenticator


def test_day_dashboard_and_csv_export(stack: Any, browser: Browser, tmp_path: Path) -> None:  # noqa: F811
    server, ids, authenticator = stack
    session = Session(browser, server)
    page = session.page
    page.clock.install()  # the list's 30 s timer runs on this clock, moved forward below
    log_in(session, email=EMAIL, password=PASSWORD, authenticator=authenticator)

    # The today list refreshes itself: a test recorded elsewhere (another desk, the API) appears without a reload.
    rows = page.locator("#day-today table.screenings tbody tr")
    expect(rows).to_have_count(2)
    _manage(server.env, "shell", "-c", ANOTHER_TEST % {"email": EMAIL, "patient": ids["camille"]})
    page.clock.run_for(31_000)
    expect(rows).to_have_count(3)
    expect(page.get_by_role("link", name="Refresh the list")).to_be_visible()  # without JavaScript, the same by hand
    session.check("with tests")

    # The dashboard: today's counts, this pharmacy's only.
    clicks = 0
    session.nav("The day")
    clicks += 1
    expect(page.get_by_role("heading", level=1)).to_have_text("The day")
    expect(page.locator("[data-testid=today-tests]")).to_have_text("3")
    expect(page.locator("[data-testid=today-positives]")).to_have_text("1")
    expect(page.locator("[data-testid=today-rejections]")).to_have_text("0")
    expect(page.locator("[data-testid=today-failed]")).to_have_text("0")
    expect(page.get_by_role("img", name="Tests recorded per day over the last 14 days")).to_be_visible()
    session.check()
    page.screenshot(path=tmp_path / "day-dashboard.png", full_page=True)

    # Export the day (the form opens on today) as CSV.
    with page.expect_download() as info:
        page.get_by_role("button", name="Download the spreadsheet (CSV)").click()
        clicks += 1
    download = info.value
    assert download.suggested_filename.startswith("relais-registre-") and download.suggested_filename.endswith(".csv")
    raw = Path(download.path()).read_bytes()
    assert raw.startswith("\ufeff".encode())
    table = list(csv.reader(io.StringIO(raw.decode("utf-8")[1:])))
    assert table[0][:2] == ["Sampled at", "Patient"]
    assert len(table) == 4, table
    names = sorted(row[1] for row in table[1:])
    assert names == ['\'=HYPERLINK("HTTP://X.EXAMPLE") Léo', "DURAND Camille", "DURAND Camille"], names
    assert not any("AILLEURS" in cell for row in table for cell in row)
    # Chromium reports a navigation that became a download as aborted: that is the download, not a failure.
    session.problems = [p for p in session.problems if p != f"request failed: POST {session.url('/day/export/')} net::ERR_ABORTED"]
    print(f"day export from the home page: {clicks} clicks, 0 keystrokes")
    session.close()
