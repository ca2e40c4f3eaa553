"""Notification channels are looked up by name: one class and one line in CHANNELS add a channel."""

from __future__ import annotations

from typing import Any

from relais.intake.services import screening_record
from relais.notify import channels
from relais.notify.models import Channel, Notification
from relais.notify.outcome import SendOutcome
from tests.factories import screening_input


def test_every_channel_choice_has_a_registered_channel() -> None:
    assert set(channels.CHANNELS) == set(Channel.values)


class Pigeon:
    """A channel written as a newcomer would: where the patient is reached, how a batch is sent."""

    sent: list[str] = []

    @staticmethod
    def address_of(patient: Any) -> str:
        return "loft 7"

    def send_all(self, notifications: list[Notification], *, on_outcome: Any, before_send: Any) -> dict[Notification, SendOutcome]:
        self.sent.extend(n.address for n in notifications)
        return dict.fromkeys(notifications, SendOutcome.sent("pigeon-1"))


def test_a_registered_channel_gets_its_messages_queued_and_sent(monkeypatch: Any, owner: Any, patient: Any) -> None:
    monkeypatch.setattr(channels, "CHANNELS", {**channels.CHANNELS, "pigeon": Pigeon()})
    monkeypatch.setattr("relais.notify.services.CHANNELS", channels.CHANNELS)
    screening = screening_record(actor=owner, patient_id=patient.pk, data=screening_input())
    queued = Notification.objects.filter(screening=screening)
    assert sorted(n.channel for n in queued) == ["email", "pigeon", "sms"]
    pigeon = [n for n in queued if n.channel == "pigeon"]
    outcomes = channels.send_batch(pigeon)
    assert [o.provider_id for o in outcomes.values()] == ["pigeon-1"] and Pigeon.sent == ["loft 7"]
