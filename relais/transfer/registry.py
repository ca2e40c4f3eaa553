"""Formats and transports, looked up by name (healthchecks' TRANSPORTS is the model).

Adding a format: a module in formats/ that renders a TransferPayload, a reader in replies.py, one line in FORMATS.
Adding a transport: a module in transports/ with an adapter giving it ``send() -> Reply``, one line in TRANSPORTS.
The destination a message is sent to picks both when it is sent: a configuration change re-renders, never strands."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.utils import timezone

from relais.transfer import replies
from relais.transfer.formats import fhir, hl7v2
from relais.transfer.outcome import Outcome
from relais.transfer.payload import TransferPayload
from relais.transfer.transports import Https, Mllp, Reply, Transport

if TYPE_CHECKING:
    from relais.transfer.destinations import Destination

HL7_CONTENT_TYPE = "x-application/hl7-v2+er7"
FHIR_CONTENT_TYPE = "application/fhir+json"


@dataclass(frozen=True)
class Format:
    name: str
    content_type: str
    transports: frozenset[str]  # the transports that can carry it
    render: Callable[[TransferPayload], str]  # raises hl7v2.RenderError when the message does not validate
    read_reply: Callable[[Reply, str], Outcome]  # (reply, message id) -> outcome
    render_batch: Callable[[Sequence[str]], str] | None = None  # several rendered messages in one file
    read_batch_reply: Callable[[Reply, list[str]], dict[str, Outcome]] | None = None


def _hl7_batch(messages: Sequence[str]) -> str:
    return hl7v2.render_batch_text(list(messages), batch_id=secrets.token_hex(10), created_at=timezone.now())


FORMATS: dict[str, Format] = {
    "hl7v2": Format(
        name="hl7v2",
        content_type=HL7_CONTENT_TYPE,
        transports=frozenset({"mllp", "https"}),
        render=hl7v2.render_oru_r01,
        read_reply=replies.read_hl7v2,
        render_batch=_hl7_batch,
        read_batch_reply=replies.read_hl7v2_batch,
    ),
    "fhir": Format(
        name="fhir",
        content_type=FHIR_CONTENT_TYPE,
        transports=frozenset({"https"}),
        render=fhir.render_bundle,
        read_reply=replies.read_fhir,
    ),
}

TRANSPORTS: dict[str, Callable[[Destination], Transport]] = {
    "mllp": Mllp,
    "https": Https,
}
