"""End-to-end journey in a real Chromium against a real gunicorn server.

A pharmacy administrator accepts the first invitation, turns on two-step verification and invites a
pharmacist; the pharmacist registers a patient, records a test, corrects it, meets the duplicate
warning; finally the administrator logs out and back in with a fresh TOTP code.
"""

from __future__ import annotations

import base64
import http.client
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django_otp.oath import totp
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from relais.screenings import csv_import
from tests.e2e.axe import check_page

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FINESS = "750000010"
TOTP_STEP = 30
ADMIN_EMAIL = "admin@e2e.test"
ADMIN_PASSWORD = "copper-lagoon-whistle-marmalade"
PHARMACIST_EMAIL = "pharmacien@e2e.test"
PHARMACIST_PASSWORD = "granite-umbrella-fennel-octave"
PATIENT = {
    "last_name": "Lefèvre-Essai",
    "first_names": "Camille Anne",
    "sex": "F",
    "date_of_birth": "1994-03-12",
    "nir": "2 94 03 75 120 005 91",
    "address_line": "12 rue de la Paix",
    "postcode": "75002",
    "city": "Paris",
    "country": "FR",
    "phone": "06 12 34 56 78",
    "email": "camille.lefevre@example.org",
}
CREATE_PHARMACY = f"""
from relais.accounts.services import pharmacy_create
from relais.core.context import request_context
with request_context(channel="test"):
    pharmacy_create(actor=None, name="Pharmacie E2E", finess="{FINESS}", address_line="3 rue du Faubourg", postcode="75010", city="Paris")
"""

# Tolerated browser complaints, each a known app defect:
# - relais/static is not a static files folder, so /static/relais.css is the HTML 404 page and Chromium refuses it
#   (tested by test_stylesheet_is_served; tolerated only so the journey itself stays green meanwhile);
# - there is no favicon, and Chromium asks for /favicon.ico now and then.
KNOWN_PROBLEMS = re.compile(
    r"Refused to apply style from '[^']*/static/relais\.css' because its MIME type"
    r"|request failed: GET \S*/static/relais\.css net::ERR_ABORTED"
    r"|status of 404 \(Not Found\) \(\S*/favicon\.ico\)"
)

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() and not os.environ.get("CI"),
    reason=f"end-to-end test needs Debian chromium at {CHROMIUM} (`make browser-deps` installs it); it is mandatory when CI is set",
)


@dataclass
class Server:
    base_url: str
    var_dir: Path
    first_invitation: str
    env: dict[str, str] = field(default_factory=dict)

    def patient_count(self) -> int:
        with sqlite3.connect(self.var_dir / "relais.sqlite3", timeout=10) as db:
            return db.execute("SELECT COUNT(*) FROM patients_patient").fetchone()[0]


@dataclass
class Totp:
    """An authenticator app: a code is single use, so it remembers the last 30-second window it sent."""

    secret: str
    last_window: int = field(default=-1)
    waited: float = 0.0

    def code(self) -> str:
        key = base64.b32decode(self.secret + "=" * (-len(self.secret) % 8))
        while int(time.time()) // TOTP_STEP <= self.last_window:  # this window's code was used: wait for the next one
            pause = max(0.0, (self.last_window + 1) * TOTP_STEP - time.time()) + 0.05
            self.waited += pause
            time.sleep(pause)
        while True:
            window = int(time.time()) // TOTP_STEP
            code = f"{totp(key, step=TOTP_STEP):06d}"
            if int(time.time()) // TOTP_STEP == window:
                self.last_window = window
                return code


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(base_url: str, path: str) -> tuple[int, str]:
    """Status and Content-Type of a GET on the test server."""
    host, port = base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", "")
    finally:
        connection.close()


def _manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"manage.py {args[0]} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    var_dir = tmp_path_factory.mktemp("relais-var")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAIS_") and k != "DATABASE_URL"}
    env.update(RELAIS_VAR_DIR=str(var_dir), RELAIS_ENV="development", PYTHONDONTWRITEBYTECODE="1")
    subprocess.run(
        [sys.executable, "-m", "relais.core.devsecrets", str(var_dir / "secrets")], cwd=REPO, env=env, check=True, capture_output=True
    )
    _manage(env, "migrate", "--no-input", "-v", "0")
    _manage(env, "shell", "-c", CREATE_PHARMACY)
    printed = _manage(env, "invite", ADMIN_EMAIL, "--role", "pharmacy_admin", "--pharmacy", FINESS)
    invite_path = re.search(r"https?://[^/\s]+(/invite/\S+/)", printed)
    assert invite_path, f"no invitation link in: {printed!r}"

    base_url = f"http://127.0.0.1:{_free_port()}"
    log_path = var_dir / "gunicorn.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                str(BIN / "gunicorn"),
                "relais.wsgi:application",
                "--bind",
                base_url.removeprefix("http://"),
                "--workers",
                "2",
                "--access-logfile",
                "-",
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"gunicorn exited with {process.returncode}:\n{log_path.read_text()}")
            try:
                if _get(base_url, "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"gunicorn did not answer /healthz within 30 s:\n{log_path.read_text()}")
            time.sleep(0.1)
        yield Server(base_url=base_url, var_dir=var_dir, first_invitation=base_url + invite_path.group(1), env=env)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"CI is set but {CHROMIUM} is missing: run `make browser-deps`")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Session:
    """One person at one browser: a context in en-GB whose console must stay free of errors (CSP included)."""

    def __init__(self, browser: Browser, server: Server) -> None:
        self.server = server
        self.context: BrowserContext = browser.new_context(locale="en-GB", viewport={"width": 1280, "height": 900})
        self.context.set_default_timeout(10_000)
        self.page: Page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on(
            "console",
            lambda msg: (
                self.problems.append(f"console {msg.type}: {msg.text} ({msg.location.get('url')})") if msg.type == "error" else None
            ),
        )
        self.page.on("response", lambda r: self.problems.append(f"HTTP {r.status} {r.request.method} {r.url}") if r.status >= 400 else None)
        self.page.on("requestfailed", lambda r: self.problems.append(f"request failed: {r.method} {r.url} {r.failure}"))
        self.page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))

    def url(self, path: str) -> str:
        return self.server.base_url + path

    def goto(self, path: str) -> None:
        response = self.page.goto(self.url(path))
        assert response is not None and response.ok, f"GET {path} -> {response and response.status}"

    def check(self, state: str = "") -> None:
        """axe-core on the page as it is now (once per kind of page in the run)."""
        check_page(self.page, state=state)

    def nav(self, name: str) -> None:
        self.page.locator("header nav").get_by_role("link", name=name, exact=True).click()

    def message(self, text: str) -> None:
        expect(self.page.locator("ul.messages")).to_contain_text(text)

    def accept_invitation(self, link: str, full_name: str, password: str) -> None:
        self.page.goto(link)
        expect(self.page.get_by_role("heading", level=1)).to_have_text("Create your account")
        expect(self.page.locator("#id_full_name")).to_be_focused()
        self.check()
        self.page.keyboard.type(full_name)
        self.page.locator("#id_password1").fill(password)
        self.page.locator("#id_password2").fill(password)
        self.page.keyboard.press("Enter")
        expect(self.page).to_have_url(self.url("/login/"))
        self.message("Your account is ready")

    def login_password(self, email: str, password: str) -> None:
        expect(self.page).to_have_url(re.compile(re.escape(self.url("/login/"))))
        expect(self.page.locator("#id_username")).to_be_focused()
        self.check()
        self.page.keyboard.type(email)
        self.page.keyboard.press("Tab")
        self.page.keyboard.type(password)
        self.page.keyboard.press("Enter")
        expect(self.page).to_have_url(self.url("/mfa/"))

    def enrol_totp(self) -> Totp:
        expect(self.page.get_by_role("heading", level=1)).to_have_text("Set up two-step verification")
        expect(self.page.locator(".qr svg")).to_be_visible()
        authenticator = Totp(self.page.locator("[data-testid=totp-secret]").inner_text().strip())
        self.check("enrol")
        self.enter_code(authenticator)
        self.message("Two-step verification is on")
        return authenticator

    def enter_code(self, authenticator: Totp) -> None:
        expect(self.page.locator("#id_token")).to_be_focused()
        self.check("code")
        self.page.keyboard.type(authenticator.code())
        self.page.keyboard.press("Enter")
        expect(self.page).to_have_url(self.url("/"))
        expect(self.page.get_by_role("heading", level=1)).to_have_text("Today's tests")
        self.check()

    def logout(self) -> None:
        self.page.get_by_role("button", name="Log out").click()
        expect(self.page).to_have_url(self.url("/login/"))
        expect(self.page.get_by_role("button", name="Log out")).to_have_count(0)

    def close(self) -> None:
        self.context.close()
        problems = [p for p in self.problems if not KNOWN_PROBLEMS.search(p)]
        assert not problems, "\n".join(problems)


def _fill_patient(page: Page, identity: dict[str, str], *, phone: str) -> None:
    """Fill the form like a keyboard user: the fields must come in this order when pressing Tab."""
    values = {**identity, "phone": phone}
    for name in (
        "last_name",
        "first_names",
        "sex",
        "date_of_birth",
        "nir",
        "address_line",
        "postcode",
        "city",
        "country",
        "phone",
        "email",
    ):
        focused = page.locator(f"#id_{name}")
        expect(focused).to_be_focused()
        if name == "sex":
            focused.select_option(values[name])
        elif name in values:
            focused.fill(values[name])
        if name == "date_of_birth":
            # Tab walks through the date parts and the calendar button (in the browser's order) before leaving the field.
            for _part in range(5):
                page.keyboard.press("Tab")
                if page.evaluate("document.activeElement.id") != focused.get_attribute("id"):
                    break
        elif name != "email":
            page.keyboard.press("Tab")


def test_pharmacy_journey(server: Server, browser: Browser, tmp_path: Path, capsys: Any) -> None:
    started = time.monotonic()
    admin = Session(browser, server)
    page = admin.page

    # The first page in the default language of this browser (English), then French and back with the header button.
    page.goto(server.first_invitation)
    html = page.locator("html")
    expect(html).to_have_attribute("lang", "en")
    page.get_by_role("button", name="Français").click()
    expect(html).to_have_attribute("lang", "fr")
    expect(page).to_have_url(server.first_invitation)
    expect(page.get_by_role("button", name="English")).to_be_visible()
    expect(page.locator("#id_full_name")).to_be_visible()
    page.get_by_role("button", name="English").click()
    expect(html).to_have_attribute("lang", "en")

    # Administrator: invitation, password, TOTP enrolment.
    expect(page.get_by_text(f"Invitation for {ADMIN_EMAIL}")).to_be_visible()
    admin.accept_invitation(server.first_invitation, "Alice Martin", ADMIN_PASSWORD)
    admin.login_password(ADMIN_EMAIL, ADMIN_PASSWORD)
    admin_totp = admin.enrol_totp()

    # The administrator invites a pharmacist from the Team page.
    admin.nav("Team")
    expect(page.get_by_role("heading", level=1)).to_have_text("Team")
    page.locator("#id_email").fill(PHARMACIST_EMAIL)
    page.locator("#id_role").select_option("pharmacist")
    page.get_by_role("button", name="Create invitation").click()
    colleague_link = page.locator("[data-testid=invite-link]").inner_text().strip()
    admin.check("invitation created")
    assert colleague_link.startswith(f"{server.base_url}/invite/"), colleague_link
    admin.logout()

    # The pharmacist, in the same browser with a fresh context.
    pharmacist = Session(browser, server)
    page = pharmacist.page
    pharmacist.accept_invitation(colleague_link, "Paul Bernard", PHARMACIST_PASSWORD)
    pharmacist.login_password(PHARMACIST_EMAIL, PHARMACIST_PASSWORD)
    pharmacist.enrol_totp()
    expect(page.locator("header .who")).to_have_text(PHARMACIST_EMAIL)
    expect(page.locator("header nav").get_by_role("link", name="Team")).to_have_count(0)

    # Register a patient with the keyboard; a wrong phone number first.
    pharmacist.nav("New patient")
    expect(page).to_have_url(pharmacist.url("/patients/new/"))
    _fill_patient(page, PATIENT, phone="06 12 34")
    page.keyboard.press("Enter")
    phone_error = page.locator("#id_phone_error")
    expect(phone_error).to_be_visible()
    expect(phone_error).to_contain_text("phone number")
    expect(page.locator(".field.invalid")).to_have_count(1)
    expect(page.locator(".field.invalid #id_phone")).to_have_count(1)
    pharmacist.check("errors")
    expect(page).to_have_url(pharmacist.url("/patients/new/"))
    expect(page.locator("#id_last_name")).to_have_value(PATIENT["last_name"])
    assert server.patient_count() == 0

    page.locator("#id_phone").fill(PATIENT["phone"])
    page.locator("#id_phone").press("Enter")
    expect(page).to_have_url(re.compile(r"/patients/[0-9a-f-]{36}/record/$"))
    pharmacist.message("Patient registered.")
    assert server.patient_count() == 1
    display_name = "LEFÈVRE-ESSAI Camille Anne"
    expect(page.get_by_role("heading", level=1)).to_contain_text(display_name)
    page.screenshot(path=tmp_path / "e2e-record.png", full_page=True)
    record_url = page.url
    pharmacist.check()

    # Record a test, timed from opening the record page to the confirmation.
    tick = time.perf_counter()
    page.goto(record_url)
    device = page.locator("#id_device")
    expect(device).to_be_focused()
    device.select_option("1232")
    page.get_by_role("radio", name=re.compile(r"^Not detected")).check()
    # The law sends the identity to SI-DEP for every test; the pharmacist confirms the patient got the notice (linked there).
    expect(page.get_by_role("link", name=re.compile(r"^Information notice"))).to_have_attribute("href", re.compile(r"^/notice/"))
    page.locator("#id_information_notice_given").check()
    page.get_by_role("button", name="Record the test").click()
    expect(page).to_have_url(re.compile(r"/screenings/[0-9a-f-]{36}/$"))
    pharmacist.message("Test recorded.")
    record_seconds = time.perf_counter() - tick
    expect(page.locator("[data-testid=status]")).to_have_text("Final")
    expect(page.locator("[data-testid=result]")).to_contain_text("Not detected")
    pharmacist.check()

    # It is on today's list.
    pharmacist.nav("Today")
    row = page.locator("table.screenings tbody tr", has_text=display_name)
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Panbio")
    expect(row).to_contain_text("Not detected")
    expect(row).to_contain_text("Final")
    # No transfer worker runs here: the national-platform status says it is waiting.
    expect(row.locator("[data-testid=transfer-status]")).to_have_text("Pending")
    pharmacist.check("with tests")
    page.screenshot(path=tmp_path / "e2e-today.png", full_page=True)

    # Correct it: Not detected -> Detected, with a reason; two versions in the history.
    row.get_by_role("link", name="Open").click()
    page.get_by_role("link", name="Correct or remove").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Correct a result")
    expect(page.get_by_role("radio", name="Correct the result")).to_be_checked()
    pharmacist.check()
    page.get_by_role("radio", name=re.compile(r"^Detected")).check()
    page.locator("#id_reason").fill("Test line re-read after 15 minutes: faint line visible.")
    page.get_by_role("button", name="Save the correction").click()
    pharmacist.message("Correction recorded")
    expect(page.locator("[data-testid=status]")).to_have_text("Corrected")
    expect(page.locator("[data-testid=result]")).to_contain_text("Detected (positive)")
    history = page.locator("ol.history li")
    expect(history).to_have_count(2)
    expect(history.nth(0)).to_contain_text("v1")
    expect(history.nth(0)).to_contain_text("Not detected")
    expect(history.nth(1)).to_contain_text("v2")
    expect(history.nth(1)).to_contain_text("Corrected")
    pharmacist.check("corrected")
    pharmacist.nav("Today")
    row = page.locator("table.screenings tbody tr", has_text=display_name)
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Corrected")

    # Registering the same person again warns about the duplicate and creates nothing.
    pharmacist.nav("New patient")
    identity = {k: PATIENT[k] for k in ("last_name", "first_names", "sex", "date_of_birth")}
    _fill_patient(page, identity, phone="")
    page.keyboard.press("Enter")
    warning = page.locator("[data-testid=duplicate-warning]")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text(display_name)
    expect(page.get_by_role("button", name="Register anyway")).to_be_visible()
    pharmacist.check("duplicate")
    assert server.patient_count() == 1
    pharmacist.logout()
    pharmacist.close()

    # The administrator logs back in: password, then a fresh code (never the one used at enrolment).
    page = admin.page
    admin.goto("/login/")
    admin.login_password(ADMIN_EMAIL, ADMIN_PASSWORD)
    expect(page.get_by_role("heading", level=1)).to_have_text("Verification code")
    admin.enter_code(admin_totp)
    expect(page.locator("table.screenings tbody tr", has_text=display_name)).to_contain_text("Corrected")
    admin.nav("Team")
    expect(page.locator("table tbody tr", has_text=PHARMACIST_EMAIL)).to_contain_text("active")

    # Import a spreadsheet: five good rows and one bad; the page follows the worker and lists the row to fix.
    admin.nav("Import a file")
    expect(page.get_by_label("CSV file")).to_be_visible()
    admin.check()
    csv_path = tmp_path / "tests-du-jour.csv"
    lines = csv_import.example_csv().splitlines()
    lines.append(lines[1].replace("12/03/1985", "31/02/1985"))
    csv_path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    page.get_by_label("CSV file").set_input_files(str(csv_path))
    page.get_by_role("button", name="Send the file").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Imported file")
    expect(page.locator("#progress-text")).to_have_text("0 / 6")
    _manage(server.env, "submission_worker", "--until-empty")
    expect(page.locator("#n-accepted")).to_have_text("5", timeout=15_000)  # the page polls, then reloads with the problems
    problem = page.locator("table.problems tbody tr")
    expect(problem).to_have_count(1)
    expect(problem).to_contain_text("7")
    expect(problem).to_contain_text("31/02/1985")
    admin.check("problems")
    page.screenshot(path=tmp_path / "e2e-import.png", full_page=True)
    admin.logout()
    admin.close()

    total = time.monotonic() - started
    with capsys.disabled():
        print(f"\n[e2e] record a test: {record_seconds:.2f} s from opening the record page to the confirmation")
        print(f"[e2e] journey: {total:.1f} s, of which {admin_totp.waited:.1f} s waiting for a fresh TOTP code; screenshots in {tmp_path}")
    assert record_seconds < 20, f"recording a test took {record_seconds:.1f} s"


def test_stylesheet_is_served(server: Server) -> None:
    status, content_type = _get(server.base_url, "/static/relais.css")
    assert (status, content_type.split(";")[0]) == (200, "text/css")


PATIENT_LINK = f"""
from datetime import date, timedelta
from django.db import transaction
from django.utils import timezone
from relais.accounts.models import Pharmacy, Role, User
from relais.core.context import request_context
from relais.notify.services import link_issue
from relais.patients.services import PatientIdentity, patient_register
from relais.intake.services import screening_record
from relais.screenings.inputs import ScreeningInput
pharmacy = Pharmacy.objects.get(finess="{FINESS}")
user = User.objects.create_user("counter@e2e.test", "quartz-harbour-velvet-cinnamon", full_name="Counter",
    role=Role.PHARMACIST, pharmacy=pharmacy)
with request_context(channel="test"):
    patient = patient_register(actor=user, identity=PatientIdentity(last_name="Mobile-Essai", first_names="Zoé", sex="F",
        date_of_birth=date(1990, 7, 14), email="zoe@example.org"), allow_duplicate=True)
    screening = screening_record(actor=user, patient_id=patient.pk, data=ScreeningInput(device_id="1232", specimen_type="258500001",
        sampled_at=timezone.now() - timedelta(minutes=5), results={{"sars-cov-2": "260373001"}}, information_notice_given=True))
    with transaction.atomic():
        _link, token = link_issue(actor=user, screening=screening, now=timezone.now())
print("TOKEN=" + token)
"""


def test_patient_reads_the_result_on_a_phone(server: Server, browser: Browser, tmp_path: Path) -> None:
    token = re.search(r"TOKEN=(\S+)", _manage(server.env, "shell", "-c", PATIENT_LINK)).group(1)  # type: ignore[union-attr]
    context = browser.new_context(
        locale="fr-FR", viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True, device_scale_factor=2
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" and not KNOWN_PROBLEMS.search(msg.text) else None)
    page.goto(f"{server.base_url}/r/{token}")
    expect(page).to_have_url(f"{server.base_url}/r/")  # the token leaves the address bar at once
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    field = page.get_by_label("Votre date de naissance")
    expect(field).to_be_visible()
    check_page(page)
    field.fill("14/07/1990")
    page.get_by_role("button", name="Afficher mon résultat").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Votre résultat de test")
    expect(page.locator("[data-testid=result]")).to_contain_text("positif")
    expect(page.locator(".dcc svg")).to_be_visible()
    check_page(page, state="result")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "the page scrolls sideways on a phone"
    with page.expect_download() as download:
        page.get_by_role("link", name="Télécharger le résultat (PDF)").click()
    assert Path(download.value.path()).read_bytes().startswith(b"%PDF")
    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your test result")
    page.screenshot(path=tmp_path / "e2e-patient-phone.png", full_page=True)
    # The information notice: public, both languages on one page, naming the pharmacy.
    page.get_by_role("link", name="How your data are used (information notice)").click()
    expect(page.locator("[data-testid=notice-fr] h1")).to_contain_text("Notice d'information")
    expect(page.locator("[data-testid=notice-en] h1")).to_contain_text("Information notice")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "the notice scrolls sideways on a phone"
    check_page(page)
    context.close()
    assert not problems, problems
