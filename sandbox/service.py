"""What the platform does with a received body, independent of the transport: validate, reject, deduplicate, store, answer.

Transports handle the modes that act on the connection itself (down, http500, http429, slow,
ack_lost, ack_malformed); this module handles ``reject`` and the normal path, and the HL7 acknowledgement mode
(``Mode.ack_mode``: AA/AE/AR, or in "enhanced" the CA/CE/CR or nothing that MSH-15/MSH-16 ask for, see hl7.answer_code).
"""

from __future__ import annotations

import itertools
import logging
import threading
from dataclasses import dataclass

from sandbox import fhir, hl7
from sandbox.modes import Mode
from sandbox.store import Accepted, Store

log = logging.getLogger("sandbox")

MAX_BODY = 5 * 1024 * 1024


@dataclass(frozen=True)
class FhirReply:
    status: int
    body: str


class Sampler:
    """Which messages get the full library validation (hl7apy, fhir.resources): the first ``first`` of each format,
    then one in ``every`` (0: none). The others go through the fast structural validators."""

    def __init__(self, *, first: int = 100, every: int = 100) -> None:
        self.first, self.every = max(0, first), max(0, every)
        self._counters = {"hl7v2": itertools.count(), "fhir": itertools.count()}
        self._lock = threading.Lock()
        self.full = {"hl7v2": 0, "fhir": 0}
        self.fast = {"hl7v2": 0, "fhir": 0}

    def pick(self, kind: str) -> bool:
        with self._lock:
            n = next(self._counters[kind])
            full = n < self.first or (self.every > 0 and (n - self.first) % self.every == 0)
            (self.full if full else self.fast)[kind] += 1
        return full

    def reset(self) -> None:
        """Start counting again (control API reset): the next messages are "the first N" again."""
        with self._lock:
            self._counters = {"hl7v2": itertools.count(), "fhir": itertools.count()}
            self.full = {"hl7v2": 0, "fhir": 0}
            self.fast = {"hl7v2": 0, "fhir": 0}

    def stats(self) -> dict[str, object]:
        with self._lock:
            return {"first": self.first, "every": self.every, "full": dict(self.full), "fast": dict(self.fast)}


class Platform:
    def __init__(self, store: Store, sampler: Sampler | None = None) -> None:
        self.store = store
        self.sampler = sampler or Sampler()
        self.resources = fhir.Resources(store)  # the FHIR server's current resources and their versions (conditional update)

    # -- HL7 v2 ----------------------------------------------------------------------------------

    def receive_hl7(self, data: bytes, transport: str, mode: Mode) -> str:
        """The ACK (or batch of ACKs) for an HL7 body: one message or an FHS/BHS batch. In the enhanced ack mode,
        "" when the message asks for no acknowledgement of its outcome (MSH-15/MSH-16, see hl7.answer_code)."""
        charset = hl7.charset_of(data)
        try:
            text = hl7.normalize(data.decode(charset))
        except UnicodeDecodeError as exc:
            text = hl7.normalize(data.decode("latin-1"))
            reason = f"the message is not valid UTF-8 (MSH-18 does not say 8859/1): {exc.reason} at byte {exc.start}"
            return self._refuse_all(text, "AE", hl7.Problem(reason, "MSH^1^18", hl7.DATA_TYPE_ERROR), transport, mode)
        if hl7.is_batch(text):
            return self._receive_batch(text, transport, mode)
        return self._receive_message(text, transport, mode)

    def _refuse_all(self, text: str, code: str, problem: hl7.Problem, transport: str, mode: Mode) -> str:
        if hl7.is_batch(text):
            file = hl7.split_batch(text)
            acks = [[self._refuse(message, code, problem, transport, mode) for message in batch.messages] for batch in file.batches]
            return hl7.batch_ack(file, [[answer for answer in batch if answer] for batch in acks])
        return self._refuse(text, code, problem, transport, mode)

    def _refuse(self, text: str, code: str, problem: hl7.Problem, transport: str, mode: Mode, commit: str = "") -> str:
        """The ACK refusing a message (nothing stored): ``code`` AE or AR in original mode, CE/CR (or ``commit``) for an
        accept acknowledgement in the enhanced ack mode, "" when the message asks for no acknowledgement of a refusal."""
        header = hl7.read_header(text) if text.startswith("MSH") else hl7.Header()
        self.store.count_rejected()
        answer = hl7.answer_code(header, code, mode.ack_mode)
        if answer is not None and answer.startswith("C") and commit:
            answer = commit
        log.info("hl7v2 %s message %r answered %s: %s", transport, header.control_id, answer or "nothing", problem.reason)
        return hl7.ack(header, answer, problem.reason, problem) if answer else ""

    def _receive_batch(self, text: str, transport: str, mode: Mode) -> str:
        file = hl7.split_batch(text)
        acks: list[list[str]] = []
        for batch in file.batches:
            batch_acks = []
            for message in batch.messages:
                if file.problem and mode.mode != "reject":
                    problem = hl7.Problem(f"batch envelope: {file.problem}", "BTS", hl7.SEGMENT_SEQUENCE_ERROR)
                    answer = self._refuse(message, "AE", problem, transport, mode)
                else:
                    answer = self._receive_message(message, transport, mode)
                if answer:  # enhanced ack mode: a message that asks for no acknowledgement has no ACK in the batch
                    batch_acks.append(answer)
            acks.append(batch_acks)
        if file.problem:
            log.info("hl7v2 %s batch envelope refused: %s", transport, file.problem)
        return hl7.batch_ack(file, acks)

    def _receive_message(self, text: str, transport: str, mode: Mode) -> str:
        if not text:
            return self._refuse(text, "AE", hl7.Problem("empty message", "MSH", hl7.SEGMENT_SEQUENCE_ERROR), transport, mode)
        if mode.ack_mode == "enhanced" and text.startswith("MSH"):
            header = hl7.read_header(text.split("\r", 1)[0])
            condition = hl7.ack_condition_problem(header)
            if condition is not None:  # what to answer is unclear: an accept acknowledgement refusing the content
                self.store.count_rejected()
                log.info("hl7v2 %s message %r answered CE: %s", transport, header.control_id, condition.reason)
                return hl7.ack(header, "CE", condition.reason, condition)
        if mode.mode == "reject":  # a refusal of the content: CE (not CR) for an accept acknowledgement
            problem = hl7.Problem(mode.reject_reason, "", hl7.APPLICATION_INTERNAL_ERROR)
            return self._refuse(text, "AR", problem, transport, mode, commit="CE")
        checked = hl7.check_message(text, full=self.sampler.pick("hl7v2"))
        if checked.problem is not None:
            return self._refuse(checked.text, checked.problem.ack, checked.problem, transport, mode)
        accepted = hl7.answer_code(checked.header, "AA", mode.ack_mode)
        # "" when no acknowledgement is asked: a duplicate is then answered nothing too
        response = hl7.ack(checked.header, accepted, "message accepted") if accepted else ""
        outcome = self.store.store(
            Accepted(
                message_id=checked.message_id,
                format="hl7v2",
                transport=transport,
                placer=checked.placer,
                filler=checked.filler,
                result_status=checked.result_status,
                has_identity=checked.has_identity,
                body=checked.text,
                response=response,
                test_key=checked.test_key,
                version_status=checked.version_status,
            )
        )
        if outcome.refused:  # a correction or removal matching no original (the store counted the rejection)
            refused = hl7.answer_code(checked.header, "AE", mode.ack_mode)
            log.info("hl7v2 %s message %r answered %s: %s", transport, checked.message_id, refused or "nothing", outcome.refused)
            problem = hl7.Problem(outcome.refused, "OBR^1^3", hl7.UNKNOWN_KEY)
            return hl7.ack(checked.header, refused, outcome.refused, problem) if refused else ""
        if outcome.duplicate:
            log.info("hl7v2 %s message %r is a duplicate: first answer replayed, not stored", transport, checked.message_id)
            if not outcome.same_body:
                log.warning("hl7v2 message %r reuses a known message id with a different content (kept: the first)", checked.message_id)
        else:
            log.info("hl7v2 %s message %r accepted and stored, answered %s", transport, checked.message_id, accepted or "nothing")
        return outcome.response

    # -- FHIR ------------------------------------------------------------------------------------

    def receive_fhir(self, data: bytes, transport: str, mode: Mode) -> FhirReply:
        if mode.mode == "reject":
            self.store.count_rejected()
            log.info("fhir %s bundle rejected: %s", transport, mode.reject_reason)
            return FhirReply(422, fhir.operation_outcome(mode.reject_reason, code="business-rule"))
        checked = fhir.check_bundle(data, full=self.sampler.pick("fhir"))
        if checked.problem:
            self.store.count_rejected()
            log.info("fhir %s bundle %r rejected: %s", transport, checked.message_id, checked.problem)
            return FhirReply(422, fhir.operation_outcome(checked.problem, code="invalid", expression=checked.expression))
        with self.resources.lock:  # plan and store as one step: the stored answer is what was done
            outcomes = self.resources.plan(checked.writes)
            response = fhir.transaction_response(checked, outcomes)
            resource_versions = self.resources.new_versions(checked.writes, outcomes, when=fhir.now())
            outcome = self.store.store(
                Accepted(
                    message_id=checked.message_id,
                    format="fhir",
                    transport=transport,
                    placer=checked.placer,
                    filler=checked.filler,
                    result_status=checked.result_status,
                    has_identity=checked.has_identity,
                    body=data.decode("utf-8"),
                    response=response,
                    test_key=checked.test_key,
                    version_status=checked.version_status,
                    resource_versions=resource_versions,  # written with the message, in the same transaction
                )
            )
            if outcome.refused:  # a correction or removal that matches no original (counted as rejected by the store)
                log.info("fhir %s bundle %r refused: %s", transport, checked.message_id, outcome.refused)
                return FhirReply(422, fhir.operation_outcome(outcome.refused, code="business-rule", expression="Bundle.entry"))
        if outcome.duplicate:
            log.info("fhir %s bundle %r is a duplicate: answered 200 again, not stored", transport, checked.message_id)
            if not outcome.same_body:
                log.warning("fhir bundle %r reuses a known message id with a different content (kept: the first)", checked.message_id)
        else:
            log.info("fhir %s bundle %r accepted and stored", transport, checked.message_id)
        return FhirReply(200, outcome.response)
