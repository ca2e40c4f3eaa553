"""What a recorded, corrected or removed screening sets off, in one place, inside the transaction that writes it.

The outbox row (transmission to the national platform), the certificate and the patient messages commit with the
screening or not at all. Webhooks are not attached here: they follow the national platform's answer (transfer)."""

from __future__ import annotations

from datetime import datetime

from relais.accounts.models import User
from relais.certificates.services import certificate_issue, certificate_revoke_series
from relais.notify.services import notify_for_screening
from relais.screenings.models import Screening
from relais.transfer.services import outbox_enqueue


def screening_recorded(*, actor: User, screening: Screening, results: dict[str, str], now: datetime) -> None:
    outbox_enqueue(screening=screening)
    certificate_issue(screening=screening, results=results, now=now)
    notify_for_screening(actor=actor, screening=screening, now=now, fresh=True)


def screening_corrected(*, actor: User, original: Screening, correction: Screening, results: dict[str, str], removed: bool) -> None:
    """A corrected or removed version: sent as such, earlier certificates revoked, patient told again."""
    outbox_enqueue(screening=correction)
    # The earlier certificate says something no longer true: revoke it, then issue one for the corrected result if allowed.
    certificate_revoke_series(series_id=original.series_id, reason="removed" if removed else "corrected")
    certificate_issue(screening=correction, results=results)
    notify_for_screening(actor=actor, screening=correction)
