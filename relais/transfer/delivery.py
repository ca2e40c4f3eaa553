"""Render outbox messages and deliver them through the destination's transport."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import replace
from typing import Any

from relais.accounts.models import Pharmacy
from relais.core.blind_index import patient_pseudonym
from relais.screenings.models import Device, Screening
from relais.screenings.vocab import ANALYTES, RESULTS, SPECIMENS
from relais.transfer.destinations import Destination
from relais.transfer.formats import hl7v2
from relais.transfer.models import OutboxMessage
from relais.transfer.outcome import Outcome, TransientError
from relais.transfer.payload import PatientPart, ResultPart, TransferPayload, UnmappableValue
from relais.transfer.registry import FORMATS, TRANSPORTS
from relais.transfer.replies import IdentityValues, redact_identity
from relais.transfer.transports import Transport

OVERRUN_GRACE = 2.0  # seconds a send may run past its transport's deadline before the worker stops waiting for it
RECORD_MARGIN = 2.0  # seconds kept at the end of a lease to record outcomes; no send starts that would eat into them

log = logging.getLogger("relais.transfer")

LOINC_DISPLAY = {"94558-4": "SARS-CoV-2 (COVID-19) Ag [Presence] in Respiratory specimen by Rapid immunoassay"}


def build_payload(message: OutboxMessage, screening: Screening, *, pseudonymous: bool = False) -> TransferPayload:
    """Identity goes with every test (loi n° 2020-546, art. 11), except to a pseudonymous destination or for a test
    recorded under the old "no consent" promise (identity_withheld)."""
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
        )
    results = []
    for result in screening.results.all():
        analyte = ANALYTES.get(result.analyte)
        if analyte is None:
            raise UnmappableValue("result.analyte", result.analyte)
        results.append(
            ResultPart(
                analyte=result.analyte,
                analyte_label=analyte.label,
                loinc_code=result.loinc_code,
                loinc_display=LOINC_DISPLAY.get(result.loinc_code, f"{analyte.label} Ag rapid immunoassay"),
                result_snomed=result.result,
                result_display=str(RESULTS.get(result.result, result.result)),
            )
        )
    return TransferPayload(
        message_id=message.message_id,
        created_at=message.created_at,
        status=screening.status,
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
        patient_pseudonym=patient_pseudonym(pharmacy_id=pharmacy.pk, patient_id=patient.pk),
        patient=identity,
        results=tuple(results),
    )


def _load_screenings(ids: list[Any]) -> dict[Any, Screening]:
    """The screenings of a batch with their patients and results; pharmacies and devices (a handful per batch) loaded
    once each and shared, instead of one joined copy per screening. Three or four queries whatever the batch size."""
    screenings = Screening.objects.select_related("patient").defer("correction_reason").prefetch_related("results").in_bulk(ids)
    pharmacies = Pharmacy.objects.only("name", "finess", "address_line", "postcode", "city").in_bulk(
        {s.pharmacy_id for s in screenings.values()}
    )
    devices = Device.objects.only("name", "manufacturer").in_bulk({s.device_id for s in screenings.values()})
    for screening in screenings.values():
        screening.pharmacy = pharmacies[screening.pharmacy_id]
        screening.device = devices[screening.device_id]
    return screenings


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
    """One per worker. Renders in the worker's thread and sends through up to ``concurrency``
    connections at once, so rendering the next message overlaps waiting for the receiver.
    Claimed messages are never two versions of one test (see outbox_claim), so order is kept."""

    def __init__(self, target: Destination, *, concurrency: int = 1) -> None:
        self.target = target
        self.format = FORMATS[target.message_format]  # the destination in force decides, whatever was set when recorded
        self.concurrency = max(1, concurrency)
        self._local = threading.local()
        self._transports: list[Transport] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="relais-send")

    @property
    def transport(self) -> Transport:
        """This thread's connection (kept open between messages)."""
        transport: Transport | None = getattr(self._local, "transport", None)
        if transport is None:
            transport = TRANSPORTS[self.target.transport](self.target)
            self._local.transport = transport
            with self._lock:
                self._transports.append(transport)
        return transport

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        with self._lock:
            for transport in self._transports:
                transport.close()
            self._transports.clear()

    def _render_one(self, message: OutboxMessage, screening: Screening) -> str | Outcome:
        try:
            return self.format.render(build_payload(message, screening, pseudonymous=self.target.pseudonymous))
        except UnmappableValue as exc:
            return Outcome.rejected(f"a value cannot be coded for the national platform ({exc})", transmitted=False)
        except hl7v2.RenderError as exc:
            return Outcome.rejected(f"the message failed validation before sending ({exc})", transmitted=False)

    def deliver(
        self, messages: Sequence[OutboxMessage], *, stopping: threading.Event | None = None, until: float | None = None
    ) -> dict[OutboxMessage, Outcome]:
        """Outcomes of the messages attempted. No new message is started once ``stopping`` is set, nor when its
        exchange could outlast ``until`` (time.monotonic(); the claim's lease): the caller gives those back."""
        by_id = _load_screenings([m.screening_id for m in messages])
        outcomes: dict[OutboxMessage, Outcome] = {}
        for message in messages:  # what it goes out as, recorded with the outcome
            message.destination, message.message_format = self.target.name, self.format.name
        batching = self.target.batch_size > 1 and self.format.render_batch is not None
        rendered: dict[OutboxMessage, str] = {}
        in_flight: dict[Future[Outcome], tuple[OutboxMessage, float]] = {}

        def may_start() -> bool:
            if stopping is not None and stopping.is_set():
                return False
            return until is None or time.monotonic() + self.target.deadline <= until

        for message in messages:
            if not may_start():
                break
            result = self._render_one(message, by_id[message.screening_id])
            if isinstance(result, Outcome):
                outcomes[message] = result
            elif batching:
                rendered[message] = result
                if len(rendered) >= self.target.batch_size:
                    outcomes.update(self._deliver_batch(rendered))
                    rendered = {}
            else:
                while len(in_flight) >= self.concurrency:  # the next message is rendered while these are sent
                    self._collect(in_flight, outcomes)
                if not may_start():
                    break  # rendered but not started: handed back untouched
                in_flight[self._pool.submit(self._deliver_one, message, result)] = (message, time.monotonic())
        if rendered and may_start():
            outcomes.update(
                self._deliver_batch(rendered) if len(rendered) > 1 else {m: self._deliver_one(m, b) for m, b in rendered.items()}
            )
        while in_flight:
            self._collect(in_flight, outcomes)
        return {m: _redacted(o, by_id.get(m.screening_id)) for m, o in outcomes.items()}

    def _collect(self, in_flight: dict[Future[Outcome], tuple[OutboxMessage, float]], outcomes: dict[OutboxMessage, Outcome]) -> None:
        """Wait for at least one send to end, but never past a send's deadline: one still running then is
        abandoned as a transient failure (retried later; the receiver deduplicates if it did arrive)."""
        overdue_at = min(started for _message, started in in_flight.values()) + self.target.deadline + OVERRUN_GRACE
        done, _pending = wait(in_flight, timeout=max(0.0, overdue_at - time.monotonic()), return_when=FIRST_COMPLETED)
        for future in done:
            outcomes[in_flight.pop(future)[0]] = future.result()
        now = time.monotonic()
        for future, (message, started) in list(in_flight.items()):
            if not future.done() and now >= started + self.target.deadline + OVERRUN_GRACE:
                del in_flight[future]
                queued = future.cancel()  # still queued behind a stuck send: it never left
                log.warning("transfer: message %s abandoned, its send outlived the %g s deadline", message.message_id, self.target.deadline)
                detail = f"no complete acknowledgement within {self.target.deadline:g} s"
                outcomes[message] = Outcome.transient(detail, transmitted=not queued)

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
