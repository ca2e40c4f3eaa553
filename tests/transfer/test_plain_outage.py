"""Statuses from the pharmacist's point of view while the national platform is down, and the outage banner
(issue 15, item 8): a real connection failure (a closed port) starts it, a real acknowledgement from the sandbox ends it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from relais.intake.services import screening_record
from relais.transfer import selectors
from relais.transfer.delivery import Deliverer
from relais.transfer.destinations import Destination
from relais.transfer.models import DestinationHealth, OutboxMessage, TransferStatus
from relais.transfer.outcome import Outcome
from relais.transfer.services import outbox_claim, outbox_record
from tests.factories import screening_input
from tests.transfer.live import Sandbox, start_sandbox

IN_FORCE = "sandbox-mllp-hl7v2"  # the destination the test settings send to


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    running = start_sandbox(tmp_path_factory.mktemp("sandbox"))
    yield running
    running.stop()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _send(target: Destination, *, now: datetime, round_: int) -> dict[OutboxMessage, Outcome]:
    # Claimed as if later each round (past any backoff), recorded at ``now`` (the time the pages show).
    claimed = outbox_claim(owner="w", limit=10, now=timezone.now() + timedelta(days=round_))
    deliverer = Deliverer(target)
    try:
        outcomes = deliverer.deliver(claimed)
    finally:
        deliverer.close()
    outbox_record(owner="w", outcomes=outcomes, now=now)
    return outcomes


def _ten_forty_two() -> datetime:
    return timezone.localtime().replace(hour=10, minute=42, second=0, microsecond=0)


def test_down_then_up_statuses_and_banner(sandbox: Sandbox, as_user: Any, owner: Any, patient: Any, operator: Any, stranger: Any) -> None:
    for _ in range(2):
        screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    down = Destination(name=IN_FORCE, message_format="hl7v2", transport="mllp", port=_closed_port(), timeout=2, deadline=5)
    since = _ten_forty_two()
    outcomes = _send(down, now=since, round_=0)
    assert {o.kind for o in outcomes.values()} == {"transient"}
    assert all(o.detail.startswith("cannot connect to") for o in outcomes.values())  # the real transport's words
    outage = selectors.destination_outage(destination=IN_FORCE)
    assert outage is not None and outage.since == since and outage.waiting == 2

    # Failing again later keeps the start of the outage.
    _send(down, now=since + timedelta(minutes=30), round_=1)
    assert DestinationHealth.objects.get(name=IN_FORCE).failing_since == since

    french = as_user(owner).get("/", HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert "Plateforme nationale injoignable depuis 10 h 42 (2 messages en attente)." in french
    assert "En attente : plateforme injoignable depuis 10 h 42 — Relais réessaie automatiquement" in french
    assert "Envoyé, en attente d&#x27;accusé" not in french and "cannot connect" not in french
    english = as_user(owner).get("/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "National platform unreachable since 10:42 (2 messages waiting)." in english
    assert "Waiting: platform unreachable since 10:42 — Relais retries automatically" in english
    screening = OutboxMessage.objects.first().screening  # type: ignore[union-attr]
    detail = as_user(owner).get(f"/screenings/{screening.pk}/", HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert "La plateforme nationale est injoignable depuis 10 h 42. Relais réessaie automatiquement ; rien à faire." in detail
    operator_page = as_user(operator).get("/operator/transfer/", HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert 'data-testid="outage-banner"' in operator_page and "(2 messages en attente)" in operator_page
    assert "cannot connect to" in operator_page  # operators keep the transport's text
    landing = as_user(operator).get("/operator/pharmacies/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "National platform unreachable since 10:42 (2 messages waiting)." in landing
    other = as_user(stranger).get("/", HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert "(0 message en attente)" in other  # another pharmacy counts only its own

    # The platform answers again: the banner and the outage statuses are gone.
    up = Destination(name=IN_FORCE, message_format="hl7v2", transport="mllp", port=sandbox.ports["mllp"], timeout=5)
    outcomes = _send(up, now=since + timedelta(hours=1), round_=2)
    assert {o.kind for o in outcomes.values()} == {"acknowledged"}
    assert selectors.destination_outage(destination=IN_FORCE) is None
    after = as_user(owner).get("/", HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert 'data-testid="outage-banner"' not in after and "injoignable" not in after


def test_the_outage_is_read_once_per_page(as_user: Any, owner: Any, patient: Any) -> None:
    for _ in range(3):
        screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    DestinationHealth.objects.create(name=IN_FORCE, failing_since=timezone.now(), last_error="connection error: refused")
    client = as_user(owner)
    with CaptureQueriesContext(connection) as queries:
        page = client.get("/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert page.count("Waiting: platform unreachable since") == 3
    # Once for the banner and every row, once in the list's fingerprint (an outage starting or ending refreshes the list).
    assert sum("transfer_destinationhealth" in q["sql"] for q in queries.captured_queries) == 2


def test_an_outage_starting_or_ending_changes_the_today_list_fingerprint(owner: Any, patient: Any) -> None:
    from relais.frontdesk.selectors import today_list_version

    screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    before = today_list_version(actor=owner)
    health = DestinationHealth.objects.create(name=IN_FORCE, failing_since=timezone.now(), last_error="connection error: refused")
    during = today_list_version(actor=owner)
    health.failing_since = None
    health.save()
    assert before != during and today_list_version(actor=owner) == before


def test_only_connection_failures_start_an_outage_and_any_answer_ends_it(owner: Any, patient: Any) -> None:
    screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    now = timezone.now()

    def record(outcome: Outcome, at: datetime) -> None:
        [message] = outbox_claim(owner="w", limit=1, now=at)
        message.destination = IN_FORCE
        outbox_record(owner="w", outcomes={message: outcome}, now=at)

    record(Outcome.transient("malformed answer: not JSON", transmitted=True), now)
    assert selectors.destination_outage(destination=IN_FORCE) is None  # the platform answered, if badly
    record(Outcome.transient("receiver answered 503", transmitted=True), now + timedelta(hours=1))
    assert selectors.destination_outage(destination=IN_FORCE) is not None
    record(Outcome.rejected("INS non qualifiée", ack_code="AE"), now + timedelta(hours=2))  # an answer, even a refusal
    assert selectors.destination_outage(destination=IN_FORCE) is None
    assert OutboxMessage.objects.get().status == TransferStatus.REJECTED


def test_since_is_written_in_the_reader_s_language() -> None:
    from django.utils import translation

    from relais.transfer.templatetags.transfer_plain import since_text

    today = _ten_forty_two()
    yesterday = today - timedelta(days=1)
    with translation.override("fr"):
        assert since_text(today) == "10 h 42"
        assert since_text(yesterday) == f"{timezone.localtime(yesterday):%d/%m/%Y} à 10 h 42"
    with translation.override("en"):
        assert since_text(today) == "10:42"
        assert since_text(yesterday) == f"{timezone.localtime(yesterday):%d/%m/%Y} 10:42"
