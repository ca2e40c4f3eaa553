"""Seed a demo pharmacy, its staff and the demo patient. Idempotent; passwords go to var/ (mode 0600)."""

from __future__ import annotations

import os
import secrets
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from relais.accounts.models import Pharmacy, Role, User
from relais.accounts.services import pharmacy_create
from relais.core.context import request_context
from relais.intake.services import screening_record
from relais.patients.services import PatientIdentity, patient_register
from relais.screenings.inputs import ScreeningInput
from relais.screenings.vocab import DEFAULT_SPECIMEN, RESULT_NOT_DETECTED

DEMO_FINESS = "750000010"
STAFF = [
    ("admin@demo.relais.test", "Alice Martin", Role.PHARMACY_ADMIN, True),
    ("pharmacien@demo.relais.test", "Paul Bernard", Role.PHARMACIST, True),
    ("operateur@relais.test", "Olivia Operator", Role.PLATFORM_OPERATOR, False),
    ("auditeur@relais.test", "Arthur Auditor", Role.AUDITOR, False),
]
DEMO_PATIENT = PatientIdentity(
    last_name="DURAND-TESTEUR",
    first_names="Camille",
    sex="F",
    date_of_birth=date(1994, 3, 12),
    nir="294037512000591",
    address_line="12 rue de la Paix",
    postcode="75002",
    city="Paris",
    country="FR",
    phone="+33612345678",
    email="camille.durand@example.org",
)


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


class Command(BaseCommand):
    help = "Create the demo pharmacy, staff and patient (development only)."

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.PRODUCTION:
            raise CommandError("seed_demo refuses to run with RELAIS_ENV=production")
        logins_file = settings.VAR_DIR / "demo-logins.txt"
        with request_context(channel="seed"):
            created = self._seed(logins_file)
        self.stdout.write(("Demo data created." if created else "Demo data already present.") + "\n")
        self.stdout.write(logins_file.read_text() if logins_file.exists() else "(no demo-logins.txt found)\n")
        self.stdout.write(
            "Second factor: at first login Relais shows a QR code; scan it with any authenticator app\n"
            "(FreeOTP, Aegis, Google Authenticator) or type the key shown, then enter the 6-digit code.\n"
            "Without a phone: `.venv/bin/python manage.py totp_code EMAIL` prints the current code (development only).\n"
        )

    @transaction.atomic
    def _seed(self, logins_file: Path) -> bool:
        if Pharmacy.objects.filter(finess=DEMO_FINESS).exists():
            return False
        pharmacy = pharmacy_create(
            actor=None,
            name="Pharmacie de la Gare (démo)",
            finess=DEMO_FINESS,
            address_line="1 place de la Gare",
            postcode="75010",
            city="Paris",
            phone="+33199001234",  # ARCEP's range for fiction (01 99 00 ..)
        )
        lines = [f"Demo logins (http://127.0.0.1:{os.environ.get('PORT', '8000')}/login/):"]
        for email, name, role, in_pharmacy in STAFF:
            password = "-".join(secrets.token_urlsafe(6) for _ in range(3))
            User.objects.create_user(email, password, full_name=name, role=role, pharmacy=pharmacy if in_pharmacy else None)
            lines.append(f"  {role:<18} {email:<30} {password}")
        _write_private(logins_file, "\n".join(lines) + "\n")
        pharmacist = User.objects.get(email="pharmacien@demo.relais.test")
        patient = patient_register(actor=pharmacist, identity=DEMO_PATIENT, allow_duplicate=True)
        screening_record(
            actor=pharmacist,
            patient_id=patient.pk,
            data=ScreeningInput(
                device_id="1232",
                specimen_type=DEFAULT_SPECIMEN,
                sampled_at=timezone.now() - timedelta(minutes=20),
                results={"sars-cov-2": RESULT_NOT_DETECTED},
                information_notice_given=True,
            ),
        )
        return True
