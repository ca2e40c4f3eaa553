"""Transfer tells the apps above it of an outcome through a hook (relais.transfer.hooks), in the outcome's transaction:
a notification is queued if and only if the outcome is recorded, and transfer imports nothing of webhooks."""

from __future__ import annotations

from typing import Any

import pytest

from relais.api.models import ApiClient
from relais.intake.services import screening_record
from relais.patients.services import patient_register
from relais.transfer import hooks
from relais.transfer.models import OutboxMessage, TransferStatus
from relais.transfer.outcome import Outcome
from relais.transfer.services import outbox_claim, outbox_record, outbox_record_error
from relais.webhooks.models import Webhook, WebhookDelivery
from relais.webhooks.services import webhook_enqueue_for_outcomes
from tests.factories import identity, screening_input


@pytest.fixture
def hook(api_client: ApiClient, admin: Any) -> Webhook:
    return Webhook.objects.create(client=api_client, url="http://127.0.0.1:9/hook", created_by=admin)


def claimed_message(api_client: ApiClient) -> OutboxMessage:
    patient = patient_register(actor=api_client.service_user, identity=identity(), allow_duplicate=True)
    screening_record(actor=api_client.service_user, patient_id=patient.pk, data=screening_input())
    [message] = outbox_claim(owner="transfer", limit=10)
    return message


def test_webhooks_app_registers_its_handler_once() -> None:
    from django.apps import apps

    apps.get_app_config("webhooks").ready()  # a second ready() must not queue every notification twice
    assert hooks.OUTCOME_HANDLERS.count(webhook_enqueue_for_outcomes) == 1


def test_outcome_and_notification_commit_together(api_client: ApiClient, hook: Webhook) -> None:
    message = claimed_message(api_client)
    outbox_record(owner="transfer", outcomes={message: Outcome.acknowledged("AA")})
    message.refresh_from_db()
    [delivery] = WebhookDelivery.objects.all()
    assert message.status == TransferStatus.ACKNOWLEDGED and delivery.screening_id == message.screening_id


def test_outcome_rolled_back_after_the_hook_leaves_no_notification(api_client: ApiClient, hook: Webhook, monkeypatch: Any) -> None:
    message = claimed_message(api_client)

    def audit_fails(**kwargs: Any) -> None:  # runs after the hook, inside the same transaction
        raise RuntimeError("audit unavailable")

    monkeypatch.setattr("relais.transfer.services.audit_record", audit_fails)
    with pytest.raises(RuntimeError, match="audit unavailable"):
        outbox_record(owner="transfer", outcomes={message: Outcome.acknowledged("AA")})
    message.refresh_from_db()
    assert message.status != TransferStatus.ACKNOWLEDGED
    assert not WebhookDelivery.objects.exists()


def test_a_failing_handler_rolls_the_outcome_back(api_client: ApiClient, hook: Webhook, monkeypatch: Any) -> None:
    message = claimed_message(api_client)

    def handler_fails(*, messages: list[OutboxMessage], now: Any) -> None:
        raise RuntimeError("handler failed")

    monkeypatch.setattr(hooks, "OUTCOME_HANDLERS", [*hooks.OUTCOME_HANDLERS, handler_fails])
    with pytest.raises(RuntimeError, match="handler failed"):
        outbox_record(owner="transfer", outcomes={message: Outcome.rejected("PID-7", ack_code="AR")})
    message.refresh_from_db()
    assert message.status != TransferStatus.REJECTED
    assert not WebhookDelivery.objects.exists()


def test_a_row_parked_after_errors_is_notified_like_a_rejection(api_client: ApiClient, hook: Webhook) -> None:
    message = claimed_message(api_client)
    message.error_count = 4  # the fifth unexpected error parks it
    assert outbox_record_error(owner="transfer", message=message, error="KeyError: bug")
    [delivery] = WebhookDelivery.objects.all()
    assert delivery.event == "screening.rejected"
