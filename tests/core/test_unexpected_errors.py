"""A row that raises anything unexpected (a decryption error, a bug) is recorded on that row without its message,
retried with backoff, parked as failed at the fifth error and shown to operators; the rows behind it go on, and the
worker never crashes. One test per queue."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.apps import apps
from django.core.management import call_command
from django.utils import timezone

from relais.api.models import ApiClient
from relais.core.queue import MAX_ERRORS
from relais.notify.models import Notification, NotificationStatus
from relais.notify.services import SendOutcome
from relais.screenings.models import Screening
from relais.submissions.models import Submission, SubmissionStatus
from relais.transfer.models import OutboxMessage, TransferStatus
from relais.transfer.outcome import Outcome

pytestmark = pytest.mark.django_db

# Webhooks move from the api app to their own (issue 11, point 4): these tests follow them wherever they are.
if apps.is_installed("relais.webhooks"):
    from relais.webhooks.delivery import WebhookOutcome
    from relais.webhooks.models import DeliveryStatus, Webhook, WebhookDelivery

    WEBHOOK_WORKER = "relais.webhooks.management.commands.webhook_worker"
else:
    from relais.api.webhooks import WebhookOutcome  # type: ignore[import-not-found,no-redef]

    from relais.api.models import DeliveryStatus, Webhook, WebhookDelivery  # type: ignore[attr-defined,no-redef]

    WEBHOOK_WORKER = "relais.api.management.commands.webhook_worker"

SECRET = "Dupont Jean 1985-03-12"  # what a careless exception message could carry: it must be stored nowhere


class Poison(ValueError):
    pass


def _load(screenings: int = 3) -> None:
    call_command("loadgen", "--screenings", str(screenings), "--patients", str(screenings), "--correct-share", "0", "--no-progress")


def _run_until_parked(command: str, model: Any, poisoned: Any) -> Any:
    """Run the worker once per error; the poisoned row is made due again between runs (its backoff skipped)."""
    for errors in range(1, MAX_ERRORS + 1):
        call_command(command, "--once", stdout=StringIO())
        row = model.objects.get(pk=poisoned)
        assert row.error_count == errors
        assert "Poison" in row.last_error and SECRET not in row.last_error and "Dupont" not in row.last_error
        if errors < MAX_ERRORS:
            assert row.next_attempt_at > timezone.now()  # backoff: not tried again at once
            model.objects.filter(pk=poisoned).update(next_attempt_at=timezone.now())
    return model.objects.get(pk=poisoned)


def test_transfer_row_that_raises_is_parked_as_rejected_and_the_others_go_out(monkeypatch: Any, caplog: Any) -> None:
    _load()
    poisoned = OutboxMessage.objects.order_by("next_attempt_at", "created_at").first()
    assert poisoned is not None

    class FakeDeliverer:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pass

        def deliver(self, messages: Sequence[OutboxMessage], **kwargs: Any) -> dict[OutboxMessage, Outcome]:
            if any(m.pk == poisoned.pk for m in messages):
                raise Poison(SECRET)
            return {m: Outcome.acknowledged("AA") for m in messages}

        def close(self) -> None:
            pass

    monkeypatch.setattr("relais.transfer.management.commands.transfer_worker.Deliverer", FakeDeliverer)
    parked = _run_until_parked("transfer_worker", OutboxMessage, poisoned.pk)
    assert parked.status == TransferStatus.REJECTED and "Poison" in parked.rejection_reason and parked.lease_owner == ""
    others = OutboxMessage.objects.exclude(pk=poisoned.pk)
    assert set(others.values_list("status", flat=True)) == {TransferStatus.ACKNOWLEDGED}
    out = StringIO()
    call_command("transfer_stats", stdout=out)
    assert json.loads(out.getvalue().strip().splitlines()[-1])["by_status"]["rejected"] == 1  # operators see it
    assert SECRET not in caplog.text


class FakeSms:
    def send(self, *, to: str, text: str, reference: str) -> SendOutcome:
        return SendOutcome.sent(reference)


def test_notify_row_that_raises_is_failed_and_the_others_are_sent(monkeypatch: Any, settings: Any, caplog: Any) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.RELAIS_SMS = {**settings.RELAIS_SMS, "backend": "tests.core.test_unexpected_errors.FakeSms"}
    _load()
    poisoned = Notification.objects.filter(channel="email").order_by("next_attempt_at", "created_at").first()
    assert poisoned is not None
    from relais.notify import channels

    real = channels.email_text

    def email_text(notification: Notification) -> str:
        if notification.pk == poisoned.pk:
            raise Poison(SECRET)  # e.g. the address or the link could not be decrypted
        return real(notification)

    monkeypatch.setattr(channels, "email_text", email_text)
    parked = _run_until_parked("notify_worker", Notification, poisoned.pk)
    assert parked.status == NotificationStatus.FAILED and parked.failed_at is not None and parked.link_url == ""
    assert set(Notification.objects.exclude(pk=poisoned.pk).values_list("status", flat=True)) == {NotificationStatus.SENT}
    out = StringIO()
    call_command("notify_stats", stdout=out)
    figures = json.loads(out.getvalue().strip().splitlines()[-1])
    assert figures["failed_last_day"] == 1 and SECRET not in out.getvalue()  # operators see it, not what it said
    assert SECRET not in caplog.text


def test_webhook_row_that_raises_is_failed_and_the_others_are_delivered(monkeypatch: Any, caplog: Any) -> None:
    _load()
    from relais.accounts.models import User

    actor = User.objects.get(email__startswith="loadgen-")
    service = User.objects.create_user("service@relais.test", None, role=actor.role, pharmacy=actor.pharmacy)
    client = ApiClient.objects.create(pharmacy=actor.pharmacy, name="errors", service_user=service)
    hook = Webhook.objects.create(client=client, url="http://127.0.0.1:9/hook")
    for screening in Screening.objects.order_by("recorded_at"):
        delivery = WebhookDelivery(webhook=hook, event="screening.acknowledged", screening=screening, next_attempt_at=timezone.now())
        delivery.payload = {"event_id": str(delivery.pk)}
        delivery.save()
    poisoned = WebhookDelivery.objects.order_by("next_attempt_at", "created_at").first()
    assert poisoned is not None

    def deliver(delivery: WebhookDelivery) -> WebhookOutcome:
        if delivery.pk == poisoned.pk:
            raise Poison(SECRET)
        return WebhookOutcome("delivered", status_code=200)

    monkeypatch.setattr(f"{WEBHOOK_WORKER}.webhook_deliver_one", deliver)
    parked = _run_until_parked("webhook_worker", WebhookDelivery, poisoned.pk)
    assert parked.status == DeliveryStatus.FAILED  # listed as failed in the client's delivery log
    assert set(WebhookDelivery.objects.exclude(pk=poisoned.pk).values_list("status", flat=True)) == {DeliveryStatus.DELIVERED}
    assert SECRET not in caplog.text


def test_csv_file_that_raises_is_failed_and_the_files_behind_it_are_recorded(monkeypatch: Any, caplog: Any) -> None:
    _load(1)
    from relais.accounts.models import User
    from relais.screenings.csv_import import example_csv
    from relais.submissions.services import csv_submit

    actor = User.objects.get(email__startswith="loadgen-")
    first, _ = csv_submit(actor=actor, data=example_csv().encode(), file_name="first.csv")
    Submission.objects.filter(pk=first.pk).update(created_at=timezone.now() - timedelta(minutes=1))
    csv_submit(actor=actor, data=example_csv().encode(), file_name="second.csv")
    from relais.submissions.management.commands import submission_worker

    real = submission_worker.csv_process

    def csv_process(*, submission: Submission, **kwargs: Any) -> Submission:
        if submission.pk == first.pk:
            raise Poison(SECRET)
        return real(submission=submission, **kwargs)

    monkeypatch.setattr(submission_worker, "csv_process", csv_process)
    parked = _run_until_parked("submission_worker", Submission, first.pk)
    assert parked.status == SubmissionStatus.FAILED and parked.failure_reason and parked.content == ""
    assert set(Submission.objects.exclude(pk=first.pk).values_list("status", flat=True)) == {SubmissionStatus.DONE}
    assert SECRET not in caplog.text
