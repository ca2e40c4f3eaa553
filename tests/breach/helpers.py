"""A crafted history: who read which patient when, in two pharmacies, for the breach report's selectors."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from io import StringIO
from pathlib import Path
from typing import Any

from django.core.management import call_command
from django.utils import timezone

from relais.accounts.models import User
from relais.audit.models import AuditEvent
from relais.breach.models import BreachCase
from relais.intake.services import screening_record
from relais.patients.selectors import patient_get
from relais.patients.services import patient_register
from relais.screenings.selectors import screening_get
from relais.screenings.vocab import RESULT_DETECTED
from tests.factories import identity, screening_input


@dataclass
class History:
    a1: Any
    a2: Any
    a3: Any
    b1: Any
    t0: datetime  # before the colleague's and the client's reads
    t1: datetime  # after them, before the late read
    t2: datetime  # after everything


def _person(actor: User, n: int, **overrides: Any) -> Any:
    values: dict[str, Any] = {"last_name": f"ZEBRA{'ABCDEFGH'[n]}", "nir": "", "email": f"p{n}@example.org", **overrides}
    return patient_register(actor=actor, identity=identity(**values), allow_duplicate=True)


def build(owner: User, colleague: User, stranger: User, client_user: User | None = None) -> History:
    a1, a2, a3 = (_person(owner, n) for n in range(3))
    b1 = _person(stranger, 3, phone="+33698765432", email="")
    s1 = screening_record(actor=owner, patient_id=a1.pk, data=screening_input(results={"sars-cov-2": RESULT_DETECTED}))
    s2 = screening_record(actor=owner, patient_id=a2.pk, data=screening_input())
    s3 = screening_record(actor=owner, patient_id=a3.pk, data=screening_input())
    screening_record(actor=stranger, patient_id=b1.pk, data=screening_input())
    t0 = timezone.now()
    patient_get(actor=colleague, patient_id=a1.pk)  # a patient read directly
    screening_get(actor=colleague, screening_id=s2.pk)  # a test read: its patient counts
    if client_user is not None:
        screening_get(actor=client_user, screening_id=s3.pk, purpose="api_read")
    t1 = timezone.now()
    patient_get(actor=colleague, patient_id=a3.pk)  # after the window
    assert s1 and s3
    return History(a1=a1, a2=a2, a3=a3, b1=b1, t0=t0, t1=t1, t2=timezone.now())


def report(tmp_path: Path, *args: str) -> dict[str, Any]:
    out = StringIO()
    call_command("breach_report", *args, "--json", "--out", str(tmp_path), stdout=out)
    return json.loads(out.getvalue())  # type: ignore[no-any-return]


def iso(value: datetime) -> str:
    return value.isoformat()


def first_event(actor: User, after: datetime) -> AuditEvent:
    event = AuditEvent.objects.filter(actor_id=actor.pk, occurred_at__gte=after).order_by("id").first()
    assert event is not None
    return event


def case_of(data: dict[str, Any]) -> BreachCase:
    return BreachCase.objects.get(pk=data["case"])
