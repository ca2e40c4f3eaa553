"""Render outbox messages and deliver them through the destination's transport."""

from __future__ import annotations

import logging
import select
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from django.conf import settings

from relais.accounts.models import Pharmacy
from relais.accounts.names import split_full_name
from relais.core.blind_index import patient_pseudonym
from relais.screenings.models import Device, Screening, ScreeningResult, ScreeningStatus
from relais.screenings.vocab import ANALYTES, RESULTS, SPECIMENS
from relais.transfer.destinations import Destination
from relais.transfer.formats import hl7v2
from relais.transfer.models import OutboxMessage, TransferStatus
from relais.transfer.outcome import Outcome, TransientError
from relais.transfer.payload import PatientPart, ResultPart, TransferPayload, UnmappableValue
from relais.transfer.registry import FORMATS, TRANSPORTS
from relais.transfer.replies import IdentityValues, redact_identity
from relais.transfer.transports import Transport

RECORD_MARGIN = 2.0  # seconds kept at the end of a lease to record outcomes; no send starts that would eat into them

log = logging.getLogger("relais.transfer")

LOINC_DISPLAY = {"94558-4": "SARS-CoV-2 (COVID-19) Ag [Presence] in Respiratory specimen by Rapid immunoassay"}


def build_payload(
    message: OutboxMessage,
    screening: Screening,
    *,
    pseudonymous: bool = False,
    results: Sequence[tuple[str, str, str]] | None = None,
    destination: str = "",
    status: str = "",
) -> TransferPayload:
    """Identity goes with every test (loi n° 2020-546, art. 11), except to a pseudonymous destination or for a test
    recorded under the old "no consent" promise (identity_withheld). ``results``: (analyte, loinc_code, result) of the
    screening when already loaded (the worker loads a batch's at once), else read from the screening."""
    patient = screening.patient
    pharmacy = screening.pharmacy
    identity = None
    if not pseudonymous and not screening.identity_withheld:
        identity = PatientPart(
            last_name=patient.last_name,
            first_names=patient.first_names,
            sex=patient.sex,
            date_of_birth=patient.date_of_birth,  # type: ignore[arg-type]  # EncryptedDateField gives a date
            nir=patient.nir,
            address_line=patient.address_line,
            postcode=patient.postcode,
            city=patient.city,
            country=patient.country,
            phone=patient.phone,
            email=patient.email,
            identity_verified=patient.identity_verified,
        )
    recorder = screening.recorded_by
    recorder_family, recorder_given = split_full_name(recorder.full_name if recorder is not None else "")
    if results is None:
        results = [(r.analyte, r.loinc_code, r.result) for r in screening.results.all()]
    parts = []
    for code, loinc_code, value in results:
        analyte = ANALYTES.get(code)
        if analyte is None:
            raise UnmappableValue("result.analyte", code)
        parts.append(
            ResultPart(
                analyte=code,
                analyte_label=analyte.label,
                loinc_code=loinc_code,
                loinc_display=LOINC_DISPLAY.get(loinc_code, f"{analyte.label} Ag rapid immunoassay"),
                result_snomed=value,
                result_display=str(RESULTS.get(value, value)),
            )
        )
    return TransferPayload(
        message_id=message.message_id,
        created_at=message.created_at,
        status=status or screening.status,
        screening_id=screening.pk,
        series_id=screening.series_id,
        version=screening.version,
        sampled_at=screening.sampled_at,
        recorded_at=screening.recorded_at,
        specimen_snomed=screening.specimen_type,
        specimen_display=str(SPECIMENS.get(screening.specimen_type, screening.specimen_type)),
        device_id=screening.device.device_id,
        device_name=screening.device.name,
        device_manufacturer=screening.device.manufacturer,
        pharmacy_name=pharmacy.name,
        pharmacy_finess=pharmacy.finess,
        pharmacy_address_line=pharmacy.address_line,
        pharmacy_postcode=pharmacy.postcode,
        pharmacy_city=pharmacy.city,
        pharmacy_phone=pharmacy.phone,
        pharmacy_id=str(pharmacy.pk),
        destination=destination or settings.RELAIS_TRANSFER["destination"],
        # Keyed per destination (blind_index.patient_pseudonym): an anonymous receiver's pseudonym is its own, never
        # found in what an identified receiver gets; identified messages also carry the Relais id (patient_id).
        patient_pseudonym=patient_pseudonym(
            pharmacy_id=pharmacy.pk, patient_id=patient.pk, destination=destination or settings.RELAIS_TRANSFER["destination"]
        ),
        patient_id="" if pseudonymous else str(patient.pk),
        patient=identity,
        results=tuple(parts),
        kit_lot=screening.kit_lot,
        kit_expiry=screening.kit_expiry,
        symptoms=screening.symptoms,
        symptom_onset=screening.symptom_onset,
        recorder_rpps=recorder.rpps if recorder is not None else "",
        recorder_family=recorder_family,
        recorder_given=recorder_given,
        recorder_id=str(recorder.pk) if recorder is not None else "",
        identity_verified=patient.identity_verified,
    )


# What build_payload and _redacted read: loading only these (and the results as plain tuples, in one query instead of
# a prefetch that clones a queryset per screening) took a batch's load from 140 to ~50 us a message.
SCREENING_FIELDS = (
    "series_id", "version", "pharmacy_id", "patient_id", "device_id", "specimen_type", "sampled_at", "identity_withheld", "status",
    "recorded_at", "kit_lot", "kit_expiry", "symptoms", "symptom_onset", "recorded_by",
)  # fmt: skip
PATIENT_FIELDS = (
    "last_name", "first_names", "sex", "date_of_birth", "nir", "address_line", "postcode", "city", "country", "phone", "email",
    "identity_verified",
)  # fmt: skip
RECORDER_FIELDS = ("rpps", "full_name")


def _load_screenings(ids: list[Any]) -> tuple[dict[Any, Screening], dict[Any, list[tuple[str, str, str]]]]:
    """The screenings of a batch with their patients, and their results; pharmacies and devices (a handful per batch)
    loaded once each and shared, instead of one joined copy per screening. Four queries whatever the batch size."""
    screenings = (
        Screening.objects.select_related("patient", "recorded_by")
        .only(*SCREENING_FIELDS, *(f"patient__{name}" for name in PATIENT_FIELDS), *(f"recorded_by__{name}" for name in RECORDER_FIELDS))
        .in_bulk(ids)
    )
    results: dict[Any, list[tuple[str, str, str]]] = {pk: [] for pk in screenings}
    rows = ScreeningResult.objects.filter(screening_id__in=list(screenings)).order_by("pk")
    for screening_id, analyte, loinc_code, value in rows.values_list("screening_id", "analyte", "loinc_code", "result"):
        results[screening_id].append((analyte, loinc_code, value))
    pharmacies = Pharmacy.objects.only("name", "finess", "address_line", "postcode", "city", "phone").in_bulk(
        {s.pharmacy_id for s in screenings.values()}
    )
    devices = Device.objects.only("name", "manufacturer").in_bulk({s.device_id for s in screenings.values()})
    for screening in screenings.values():
        screening.pharmacy = pharmacies[screening.pharmacy_id]
        screening.device = devices[screening.device_id]
    return screenings, results


def received_earlier(messages: Sequence[OutboxMessage], *, destination: str) -> set[Any]:
    """The messages (pks) whose test already has an earlier version that ``destination`` acknowledged after it was sent:
    only those go out as a correction or removal. A test whose original the destination refused, or never got (a
    rejected or superseded message, a change of destination), has no original there. One query per batch; none for a
    batch of first versions. Outbox rows stay as long as their test (retention empties only their texts)."""
    later = [m for m in messages if m.version > 1]
    if not later:
        return set()
    accepted: dict[Any, int] = {}
    rows = OutboxMessage.objects.filter(
        series_id__in={m.series_id for m in later}, destination=destination, status=TransferStatus.ACKNOWLEDGED, sent_at__isnull=False
    ).values_list("series_id", "version")
    for series_id, version in rows:
        accepted[series_id] = min(version, accepted.get(series_id, version))
    return {m.pk for m in later if accepted.get(m.series_id, m.version) < m.version}


def _redacted(outcome: Outcome, screening: Screening | None) -> Outcome:
    """A receiver may quote what it refused; the patient's identity must not end up in our queue table."""
    if not outcome.detail or screening is None:
        return outcome
    patient = screening.patient
    values = IdentityValues(
        names=(patient.last_name, patient.first_names),
        texts=(patient.email, patient.address_line, patient.city),
        digits=(patient.nir, patient.phone, patient.postcode),
        birth_date=patient.date_of_birth,  # type: ignore[arg-type]  # EncryptedDateField gives a date
    )
    detail = redact_identity(outcome.detail, values)
    return outcome if detail == outcome.detail else replace(outcome, detail=detail)


class Deliverer:
    """One per worker. Sends through up to ``concurrency`` connections at once, one message in flight on each, all
    from the worker's thread: the next message is rendered while the others' acknowledgements are on their way, and
    a poll waits on whichever connection answers first (a thread per connection cost 0.2-0.4 ms of CPU per message
    in hand-offs of the GIL, and capped a worker near 700 msg/s). Claimed messages are never two versions of one test
    (see outbox_claim), so order is kept."""

    def __init__(self, target: Destination, *, concurrency: int = 1) -> None:
        self.target = target
        self.format = FORMATS[target.message_format]  # the destination in force decides, whatever was set when recorded
        self.concurrency = max(1, concurrency)
        self._lanes: list[Transport] = []  # connections, opened on first use and kept open between messages

    @property
    def transport(self) -> Transport:
        """The first connection (HL7 batch files go through it)."""
        return self._lane(0)

    def _lane(self, index: int) -> Transport:
        while len(self._lanes) <= index:
            self._lanes.append(TRANSPORTS[self.target.transport](self.target))
        return self._lanes[index]

    def close(self) -> None:
        for transport in self._lanes:
            transport.close()
        self._lanes.clear()

    def _render_one(
        self, message: OutboxMessage, screening: Screening, results: list[tuple[str, str, str]] | None = None, *, received: bool = True
    ) -> str | Outcome:
        status = screening.status
        if status != ScreeningStatus.FINAL and not received:
            # This destination never accepted an earlier version: a correction is its original, a removal has nothing to remove.
            if status == ScreeningStatus.REMOVED:
                return Outcome.nothing_to_send(
                    f"not sent: {self.target.name} never accepted an earlier version of this test, nothing to remove"
                )
            status = ScreeningStatus.FINAL
        try:
            return self.format.render(
                build_payload(
                    message, screening, pseudonymous=self.target.pseudonymous, results=results, destination=self.target.name, status=status
                )
            )
        except UnmappableValue as exc:
            return Outcome.rejected(f"a value cannot be coded for the national platform ({exc})", transmitted=False)
        except hl7v2.RenderError as exc:
            return Outcome.rejected(f"the message failed validation before sending ({exc})", transmitted=False)

    def deliver(
        self, messages: Sequence[OutboxMessage], *, stopping: threading.Event | None = None, until: float | None = None
    ) -> dict[OutboxMessage, Outcome]:
        """Outcomes of the messages attempted. No new message is started once ``stopping`` is set, nor when its
        exchange could outlast ``until`` (time.monotonic(); the claim's lease): the caller gives those back."""
        by_id, results = _load_screenings([m.screening_id for m in messages])
        received = received_earlier(messages, destination=self.target.name)
        outcomes: dict[OutboxMessage, Outcome] = {}
        for message in messages:  # what it goes out as, recorded with the outcome
            message.destination, message.message_format = self.target.name, self.format.name
        batching = self.target.batch_size > 1 and self.format.render_batch is not None
        rendered: dict[OutboxMessage, str] = {}
        free = list(reversed(range(self.concurrency)))  # connections without a message in flight; pop() takes the first
        in_flight: dict[int, tuple[OutboxMessage, float]] = {}  # connection -> message, started (monotonic)

        def may_start() -> bool:
            if stopping is not None and stopping.is_set():
                return False
            return until is None or time.monotonic() + self.target.deadline <= until

        for message in messages:
            if not may_start():
                break
            result = self._render_one(message, by_id[message.screening_id], results[message.screening_id], received=message.pk in received)
            if isinstance(result, Outcome):
                outcomes[message] = result
            elif batching:
                rendered[message] = result
                if len(rendered) >= self.target.batch_size:
                    outcomes.update(self._deliver_batch(rendered))
                    rendered = {}
            else:
                while not free:  # the next message was rendered while these were on their way
                    self._collect(in_flight, free, outcomes)
                if not may_start():
                    break  # rendered but not started: handed back untouched
                lane = free.pop()
                try:
                    self._lane(lane).start(result, content_type=self.format.content_type, message_id=message.message_id)
                except TransientError as exc:
                    outcomes[message] = Outcome.transient(exc.detail, transmitted=exc.transmitted, retry_after=exc.retry_after)
                    free.append(lane)
                else:
                    in_flight[lane] = (message, time.monotonic())
        if rendered and may_start():
            outcomes.update(
                self._deliver_batch(rendered) if len(rendered) > 1 else {m: self._deliver_one(m, b) for m, b in rendered.items()}
            )
        while in_flight:
            self._collect(in_flight, free, outcomes)
        return {m: _redacted(o, by_id.get(m.screening_id)) for m, o in outcomes.items()}

    def _collect(self, in_flight: dict[int, tuple[OutboxMessage, float]], free: list[int], outcomes: dict[OutboxMessage, Outcome]) -> None:
        """Wait for at least one reply, but never past a send's deadline: one still unanswered then is abandoned as a
        transient failure (its connection closed; retried later, the receiver deduplicates if it did arrive)."""
        ready = [lane for lane in in_flight if self._lane(lane).pending() or self._lane(lane).fileno() < 0]
        if not ready:
            overdue_at = min(started for _message, started in in_flight.values()) + self.target.deadline
            poller = select.poll()
            lanes = {}
            for lane in in_flight:
                fd = self._lane(lane).fileno()
                lanes[fd] = lane
                poller.register(fd, select.POLLIN | select.POLLPRI)
            events = poller.poll(max(0.0, overdue_at - time.monotonic()) * 1000)
            ready = [lanes[fd] for fd, _event in events]
        for lane in ready:
            message, _started = in_flight.pop(lane)
            outcomes[message] = self._finish(lane, message)
            free.append(lane)
        now = time.monotonic()
        for lane, (message, started) in list(in_flight.items()):
            if now >= started + self.target.deadline:
                del in_flight[lane]
                self._lane(lane).close()
                log.warning("transfer: message %s abandoned, unanswered after the %g s deadline", message.message_id, self.target.deadline)
                outcomes[message] = Outcome.transient(f"no complete acknowledgement within {self.target.deadline:g} s", transmitted=True)
                free.append(lane)

    def _finish(self, lane: int, message: OutboxMessage) -> Outcome:
        try:
            reply = self._lane(lane).finish()
        except TransientError as exc:
            return Outcome.transient(exc.detail, transmitted=exc.transmitted, retry_after=exc.retry_after)
        return self.format.read_reply(reply, message.message_id)

    def _deliver_one(self, message: OutboxMessage, body: str) -> Outcome:
        try:
            reply = self.transport.send(body, content_type=self.format.content_type, message_id=message.message_id)
        except TransientError as exc:
            return Outcome.transient(exc.detail, transmitted=exc.transmitted, retry_after=exc.retry_after)
        return self.format.read_reply(reply, message.message_id)

    def _deliver_batch(self, rendered: dict[OutboxMessage, str]) -> dict[OutboxMessage, Outcome]:
        assert self.format.render_batch is not None and self.format.read_batch_reply is not None
        messages = list(rendered)
        try:
            batch = self.format.render_batch(list(rendered.values()))
            reply = self.transport.send(batch, content_type=self.format.content_type, message_id="")
        except TransientError as exc:
            return dict.fromkeys(messages, Outcome.transient(exc.detail, transmitted=exc.transmitted, retry_after=exc.retry_after))
        by_id = self.format.read_batch_reply(reply, [m.message_id for m in messages])
        return {m: by_id[m.message_id] for m in messages}
