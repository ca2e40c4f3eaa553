"""What happens when the national platform's answer is recorded: apps above transfer register a handler here.

outbox_record calls every handler inside its transaction, so a handler's rows exist if and only if the outcome does,
and transfer imports none of the apps that listen (webhooks registers in WebhooksConfig.ready)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from relais.transfer.models import OutboxMessage


class OutcomeHandler(Protocol):
    def __call__(self, *, messages: list[OutboxMessage], now: datetime) -> object: ...


OUTCOME_HANDLERS: list[OutcomeHandler] = []


def on_outcomes(handler: OutcomeHandler) -> OutcomeHandler:
    """Register ``handler(messages=..., now=...)`` for settled (acknowledged or rejected) messages; once only."""
    if handler not in OUTCOME_HANDLERS:
        OUTCOME_HANDLERS.append(handler)
    return handler


def outcomes_settled(*, messages: list[OutboxMessage], now: datetime) -> None:
    """Run in the outcome's transaction; a handler that raises rolls the outcome back with it."""
    for handler in OUTCOME_HANDLERS:
        handler(messages=messages, now=now)
