"""Reading a receiver's answer: HL7 acknowledgements (one message or a batch), FHIR replies, HTTP refusals."""

from __future__ import annotations

import json

from relais.transfer.formats import hl7v2
from relais.transfer.outcome import Outcome
from relais.transfer.transports import Reply


def ack_outcome(ack: hl7v2.Ack, control_id: str) -> Outcome:
    if ack.control_id != control_id:
        return Outcome.transient(f"acknowledgement for another message ({ack.control_id})", transmitted=True)
    if ack.code in {"AA", "CA"}:
        return Outcome.acknowledged(ack.code, ack.text)
    return Outcome.rejected(ack.text or f"rejected ({ack.code})", ack_code=ack.code)


def http_rejection(reply: Reply) -> Outcome:
    reason = reply.body.strip()[:300]
    try:
        outcome = json.loads(reply.body)
        issues = outcome.get("issue", []) if isinstance(outcome, dict) else []
        texts = [i.get("diagnostics") or (i.get("details") or {}).get("text", "") for i in issues if isinstance(i, dict)]
        reason = "; ".join(t for t in texts if t) or reason
    except ValueError:
        pass
    return Outcome.rejected(f"HTTP {reply.status}: {reason or 'no reason given'}", ack_code=str(reply.status))


def read_hl7v2(reply: Reply, message_id: str) -> Outcome:
    if reply.status is not None and reply.status >= 400:
        return http_rejection(reply)
    try:
        ack = hl7v2.parse_ack(reply.body)
    except hl7v2.MalformedAck as exc:
        return Outcome.transient(f"malformed acknowledgement: {exc}", transmitted=True)
    return ack_outcome(ack, message_id)


def read_hl7v2_batch(reply: Reply, message_ids: list[str]) -> dict[str, Outcome]:
    if reply.status is not None and reply.status >= 400:
        return dict.fromkeys(message_ids, http_rejection(reply))
    try:
        acks = {ack.control_id: ack for ack in hl7v2.parse_batch_acks(reply.body)}
    except hl7v2.MalformedAck as exc:
        return dict.fromkeys(message_ids, Outcome.transient(f"malformed batch acknowledgement: {exc}", transmitted=True))
    missing = Outcome.transient("no acknowledgement in the batch reply", transmitted=True)
    return {i: ack_outcome(acks[i], i) if i in acks else missing for i in message_ids}


def read_fhir(reply: Reply, message_id: str) -> Outcome:
    if reply.status is None or reply.status >= 400:
        return http_rejection(reply)
    try:
        body = json.loads(reply.body)
    except ValueError:
        return Outcome.transient("malformed answer: not JSON", transmitted=True)
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
        return Outcome.transient("malformed answer: not a FHIR Bundle", transmitted=True)
    return Outcome.acknowledged(str(reply.status), body.get("type", ""))
