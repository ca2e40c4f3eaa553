"""SQL queries spent recording one screening, pinned per entry point: a change that adds a query fails here first.

Counted for the whole request as the pharmacist or the software makes it; PostgreSQL also locks a known patient's row."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from relais.core import crypto
from relais.screenings import csv_import
from relais.screenings.models import Screening
from relais.screenings.vocab import RESULT_NOT_DETECTED
from tests.factories import _body

# Queries per screening, whole request or whole item, once the day's keys are cached (the steady state of a running
# server). Raise one only with a reason in the commit that raises it.
# Issue 12: +1 per audit event for its object index (audit_auditsubject): 3 on the web form and per CSV row (they
# queue messages), 2 per API item.
# Web form: +1 on PostgreSQL for the patient's row lock.
# Issue 13: every entry point records as a set (relais.intake.services.screenings_intake): one query per lookup and one
# INSERT per table whatever the number of tests, so a batch or a CSV chunk costs the same number of queries for 1 test
# as for 50. Before: 15 per API item, 20 per CSV row; the web form 29, the single POST 20 (19 once the
# answer was built from the version just written). A batch or CSV chunk is planned before its transaction and re-reads
# under the lock only the columns its decisions rest on, devices no longer among them: 36 -> 35 and 30 -> 29.
# The API client's service user comes with its pharmacy from the token check (-1 single and batch), and a new test's
# answer shows the outbox row written with it instead of reading it back (-1 single): 16 -> 14, 35 -> 34.
WEB_FORM = {"sqlite": 27, "postgresql": 28}
API_SINGLE = 14
API_BATCH = 34  # whole request, whatever the number of items (up to the 1,000 of one chunk)
CSV_FILE = 29  # the worker's whole run on a file, whatever the number of rows (up to the 1,000 of one chunk)

NAMES = ["ALPHA", "BRAVO", "CHARLIE", "DELTA", "ECHO", "FOXTROT", "GOLF", "HOTEL"]


def _item(n: int) -> dict[str, Any]:
    person = {"last_name": NAMES[n], "first_names": "Alex", "sex": "U", "date_of_birth": "1980-01-01"}
    return _body(patient=person, sampled_at=(timezone.now() - timedelta(minutes=5 + n)).isoformat())


@pytest.fixture(autouse=True)
def _warm_retention_keys(db: Any, django_capture_on_commit_callbacks: Any) -> None:
    """A running server has today's retention keys cached after its first write of the day (the cache fills on commit,
    which a test's transaction never reaches): counted here is that steady state, not the once-a-day key creation."""
    today = timezone.localdate()
    with django_capture_on_commit_callbacks(execute=True):
        for days in (92, 184):
            crypto.retention_key_id(today + timedelta(days=days))
        crypto.active_key_id()


def _count(call: Any) -> tuple[int, Any]:
    with CaptureQueriesContext(connection) as queries:
        result = call()
    return len(queries), result


def test_web_form(as_user: Any, owner: Any, patient: Any) -> None:
    client = as_user(owner)
    client.get(f"/patients/{patient.pk}/record/")  # warm the session and the device catalogue
    form = {
        "device": "1232",
        "specimen_type": "258500001",
        "sampled_at": timezone.localtime().strftime("%Y-%m-%dT%H:%M"),
        "result_sars-cov-2": RESULT_NOT_DETECTED,
        "information_notice_given": "on",
    }
    count, response = _count(lambda: client.post(f"/patients/{patient.pk}/record/", form))
    assert response.status_code == 302 and Screening.objects.count() == 1

    assert count == WEB_FORM[connection.vendor]


def test_api_single(client: Client, bearer: dict[str, str]) -> None:
    body = json.dumps(_item(0))
    count, response = _count(lambda: client.post("/api/v1/screenings", body, content_type="application/json", **bearer))
    assert response.status_code == 201, response.content

    assert count == API_SINGLE


def test_api_batch_per_item(client: Client, bearer: dict[str, str]) -> None:
    def batch(items: list[dict[str, Any]]) -> int:
        body = json.dumps({"items": items})
        count, response = _count(lambda: client.post("/api/v1/screenings/batch", body, content_type="application/json", **bearer))
        assert response.status_code == 200 and response.json()["accepted"] == len(items), response.content
        return count

    batch([_item(7)])  # the first write of a test run also creates the data key
    one = batch([_item(0)])
    five = batch([_item(n) for n in range(1, 6)])

    assert one == five == API_BATCH


def test_csv_row_in_the_worker(owner: Any) -> None:
    from relais.submissions import services as submissions

    def process(first: int, rows: int) -> int:
        header, example = csv_import.template_csv().splitlines()
        lines = [header] + [example.replace("Lefèvre", NAMES[n]).replace("285037505612306", "") for n in range(first, first + rows)]
        submission, _ = submissions.csv_submit(actor=owner, data="\n".join(lines).encode(), file_name="day.csv")
        count, done = _count(lambda: submissions.csv_process(submission=submission, owner="test"))
        assert done.accepted == rows, submissions.error_report_rows(done)
        return count

    process(7, 1)  # the first write of a test run also creates the data key
    one = process(0, 1)
    five = process(1, 5)

    assert one == five == CSV_FILE
