"""Browser journey (issue 15, item 4): three tests in the queue at once. A pharmacist swabs three patients and presses
"Swab taken – enter the result later" each time; the queue counts each test down to its reading time (one made ready,
one overdue by moving its sampling time back), announces a test turning ready, and the results are entered in another
order than the swabs; only then does each test become a recorded test queued for the national platform. A swab started
at another desk appears by itself and is cancelled with a reason, sending nothing. Real gunicorn
on SQLite, Debian's chromium; the page's clock is Playwright's, moved forward to see a countdown end."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.stack import dev_env, gunicorn, log_in, new_totp
from tests.e2e.test_journey import Server, Session, Totp, _manage, browser, pytestmark  # noqa: F401

EMAIL = "pharmacien@queue.test"
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
    pharmacy = pharmacy_create(actor=None, name="Pharmacie de la File", finess="750000010", address_line="3 rue du Faubourg",
        postcode="75010", city="Paris")
    user = User.objects.create_user("%(email)s", "%(password)s", full_name="Paul Bernard", role="pharmacist", pharmacy=pharmacy)
    TOTPDevice.objects.create(user=user, name="phone", confirmed=True, key="%(key)s")
    ids = {}
    for last, first, sex, born in [("ARNAUD", "Alice", "F", date(1990, 1, 2)), ("BERTIN", "Bruno", "M", date(1985, 5, 6)),
                                   ("CARON", "Chloé", "F", date(2001, 9, 10))]:
        ids[last] = str(patient_register(actor=user, identity=PatientIdentity(last_name=last, first_names=first, sex=sex,
            date_of_birth=born, phone="+33612345678")).pk)
print(json.dumps(ids))
"""
# The swabs of BERTIN and CARON taken earlier than the form said: one ready to read, one left past the overdue limit.
BACKDATE = """
from datetime import timedelta
from relais.testqueue.models import PendingTest
for last, minutes in [("BERTIN", 20), ("CARON", 60)]:
    row = PendingTest.objects.get(patient_id=%(ids)r[last])
    PendingTest.objects.filter(pk=row.pk).update(sampled_at=row.sampled_at - timedelta(minutes=minutes))
"""

ANOTHER_DESK = """
from datetime import timedelta
from django.utils import timezone
from relais.accounts.models import User
from relais.core.context import request_context
from relais.screenings.inputs import ScreeningInput
from relais.testqueue.services import queue_start
with request_context(channel="test"):
    queue_start(actor=User.objects.get(email="%(email)s"), patient_id="%(patient)s", data=ScreeningInput(device_id="1232",
        specimen_type="258500001", sampled_at=timezone.now() - timedelta(minutes=1), results={}, information_notice_given=True))
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str], Totp]]:
    var_dir = tmp_path_factory.mktemp("queue-var")
    env = dev_env(var_dir)
    _manage(env, "migrate", "--no-input", "-v", "0")
    key, authenticator = new_totp()
    ids = json.loads(_manage(env, "shell", "-c", SETUP % {"email": EMAIL, "password": PASSWORD, "key": key}).strip().splitlines()[-1])
    with gunicorn(env, var_dir / "gunicorn.log") as base_url:
        yield Server(base_url=base_url, var_dir=var_dir, first_invitation="", env=env), ids, authenticator


def _count(server: Server, sql: str) -> int:
    with sqlite3.connect(server.var_dir / "relais.sqlite3", timeout=10) as db:
        return int(db.execute(sql).fetchone()[0])


class Counter:
    """The pharmacist's keystrokes and clicks, and the machine time of the counted steps."""

    def __init__(self) -> None:
        self.keys = 0
        self.clicks = 0
        self.seconds = 0.0


def _row(page: Page, name: str) -> Any:
    return page.locator("[data-testid=queue-entry]", has_text=name)


def test_three_tests_in_the_queue_at_once(stack: Any, browser: Browser) -> None:  # noqa: F811
    server, ids, authenticator = stack
    session = Session(browser, server)
    page = session.page
    page.clock.install()  # the countdowns and the list's refresh run on this clock
    log_in(session, email=EMAIL, password=PASSWORD, authenticator=authenticator)
    done = Counter()

    # Three swabs, result later: device, the notice box, the second button.
    for n, last in enumerate(["ARNAUD", "BERTIN", "CARON"]):
        session.goto(f"/patients/{ids[last]}/record/")
        if n == 0:
            session.check()
        tick = time.perf_counter()
        page.locator("#id_device").select_option("1232")
        page.locator("#id_information_notice_given").check()
        page.get_by_role("button", name="Swab taken – enter the result later").click()
        expect(page).to_have_url(session.url("/queue/"))
        done.seconds += time.perf_counter() - tick
        done.clicks += 3
        session.message("Swab in the queue")
    assert _count(server, "SELECT COUNT(*) FROM screenings_screening") == 0
    assert _count(server, "SELECT COUNT(*) FROM transfer_outboxmessage") == 0
    assert _count(server, "SELECT COUNT(*) FROM notify_notification") == 0

    rows = page.locator("[data-testid=queue-entry]")
    expect(rows).to_have_count(3)
    for last in ["ARNAUD", "BERTIN", "CARON"]:
        # 15 min from a sampling time rounded down to the minute, less the minutes a loaded machine takes to get here.
        expect(_row(page, last).locator("[data-testid=countdown]")).to_have_text(re.compile(r"^ready in 1[0-5]:\d\d$"))
    # The countdown moves in the browser (the server rendered the starting value).
    before = _row(page, "ARNAUD").locator("[data-testid=countdown]").inner_text()
    page.clock.run_for(2_000)
    expect(_row(page, "ARNAUD").locator("[data-testid=countdown]")).not_to_have_text(before)

    # Two swabs were taken earlier than typed: one ready, one overdue. The list refreshes itself within 30 s.
    _manage(server.env, "shell", "-c", BACKDATE % {"ids": ids})
    page.goto(session.url("/queue/"))  # sampling times changed, not the list of tests: reload to read them
    expect(rows.nth(0)).to_contain_text("CARON")  # sorted by readiness
    expect(rows.nth(1)).to_contain_text("BERTIN")
    expect(rows.nth(2)).to_contain_text("ARNAUD")
    expect(_row(page, "CARON").locator("[data-testid=overdue]")).to_be_visible()
    expect(_row(page, "CARON").locator("[data-testid=overdue]")).to_have_text(re.compile(r"^overdue: no result for 4[45] min$"))
    expect(_row(page, "BERTIN").locator("[data-testid=countdown]")).to_have_text("Ready to read")
    expect(_row(page, "BERTIN").locator("[data-testid=overdue]")).to_be_hidden()
    expect(_row(page, "BERTIN")).to_have_class(re.compile(r"\bqueue-ready\b"))
    expect(_row(page, "ARNAUD").locator("[data-testid=countdown]")).to_have_text(re.compile(r"^ready in 1[345]:\d\d$"))
    session.check("three tests")

    # ARNAUD's timer rings: the row turns ready and the live region says so, once.
    page.clock.fast_forward("15:00")
    expect(_row(page, "ARNAUD").locator("[data-testid=countdown]")).to_have_text("Ready to read")
    expect(page.locator("[data-testid=queue-announce]")).to_have_text("ARNAUD Alice: ready to read")

    # The day's counts.
    session.goto("/day/")
    expect(page.locator("[data-testid=today-in-progress]")).to_have_text("3")
    expect(page.locator("[data-testid=today-overdue]")).to_have_text("1")
    session.goto("/queue/")

    # Results in another order than the swabs: the overdue one, then ARNAUD, then BERTIN.
    for n, (last, result) in enumerate([("CARON", "Detected"), ("ARNAUD", "Not detected"), ("BERTIN", "Not detected")]):
        tick = time.perf_counter()
        _row(page, last).get_by_role("link", name=re.compile(r"^Enter the result")).click()
        expect(page.get_by_role("heading", level=1)).to_contain_text(last)
        if n == 0:
            session.check()
        page.get_by_role("radio", name=re.compile(rf"^{result}")).check()
        page.get_by_role("button", name="Record the result").click()
        expect(page).to_have_url(session.url("/queue/"))
        done.seconds += time.perf_counter() - tick
        done.clicks += 3
        session.message("Result recorded")
        expect(rows).to_have_count(2 - n)
        assert _count(server, "SELECT COUNT(*) FROM transfer_outboxmessage") == n + 1
    expect(page.locator("[data-testid=queue-empty]")).to_be_visible()

    # Each became a recorded test with its own message to the national platform; the queue is empty and closed.
    assert _count(server, "SELECT COUNT(*) FROM screenings_screening") == 3
    assert _count(server, "SELECT COUNT(DISTINCT screening_id) FROM transfer_outboxmessage") == 3
    assert _count(server, "SELECT COUNT(*) FROM testqueue_pendingtest WHERE screening_id IS NOT NULL AND done_at IS NOT NULL") == 3
    order = [
        row[0]
        for row in sqlite3.connect(server.var_dir / "relais.sqlite3")
        .execute("SELECT p.patient_id FROM testqueue_pendingtest p ORDER BY p.done_at")
        .fetchall()
    ]
    assert [str(o).replace("-", "") for o in order] == [ids[n].replace("-", "") for n in ("CARON", "ARNAUD", "BERTIN")]
    # A swab started at another desk appears without a reload (the list asks every 30 s), and is cancelled here.
    _manage(server.env, "shell", "-c", ANOTHER_DESK % {"email": EMAIL, "patient": ids["ARNAUD"]})
    page.clock.run_for(31_000)
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("ARNAUD")
    rows.first.get_by_role("link", name=re.compile(r"^Enter the result")).click()
    page.get_by_text("Cancel this test").click()
    page.locator("#id_reason").fill("Patient left before the reading")
    page.get_by_role("button", name="Cancel the test").click()
    session.message("Test cancelled")
    expect(page.locator("[data-testid=queue-empty]")).to_be_visible()
    session.check("empty")
    assert _count(server, "SELECT COUNT(*) FROM testqueue_pendingtest WHERE cancelled_at IS NOT NULL") == 1
    assert _count(server, "SELECT COUNT(*) FROM transfer_outboxmessage") == 3  # nothing sent for it

    session.nav("Today")
    expect(page.locator("table.screenings tbody tr")).to_have_count(3)
    print(f"test queue: 3 tests, {done.keys} keys {done.clicks} clicks {done.seconds:.1f} s")
    session.close()
