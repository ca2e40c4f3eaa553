"""Generate synthetic patients and screenings through the real services (benchmarks, reliability tests)."""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from tqdm import tqdm

from relais.accounts.models import Pharmacy, Role, User
from relais.accounts.services import pharmacy_create
from relais.core.context import request_context
from relais.intake.services import screening_correct, screening_record
from relais.patients.services import PatientIdentity, patient_register
from relais.screenings.inputs import ScreeningInput
from relais.screenings.vocab import DEFAULT_SPECIMEN, RESULT_DETECTED, RESULT_NOT_DETECTED

NAMES = ["MARTIN", "BERNARD", "THOMAS", "PETIT", "ROBERT", "RICHARD", "D'ARTAGNAN", "LEFÈVRE|PIPE", "O'NEIL^CARET", "GARCIA~TILDE"]
FIRST = ["Léa", "Hugo", "Chloé", "Louis", "Zoé", "Noé", "Anaïs", "Jean-Éric"]


class Command(BaseCommand):
    help = "Create synthetic screenings (development and tests only): --screenings N, a share corrected."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--screenings", type=int, default=1000)
        parser.add_argument("--patients", type=int, default=100)
        parser.add_argument("--correct-share", type=float, default=0.1)
        parser.add_argument("--finess", default="690001235")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.PRODUCTION:
            raise CommandError("loadgen refuses to run in production")
        rng = random.Random(options["seed"])
        with request_context(channel="loadgen"):
            pharmacy = Pharmacy.objects.filter(finess=options["finess"]).first() or pharmacy_create(
                actor=None,
                name="Pharmacie de charge",
                finess=options["finess"],
                address_line="2 rue des Essais",
                postcode="69001",
                city="Lyon",
            )
            actor = User.objects.filter(pharmacy=pharmacy, role=Role.PHARMACIST).first() or User.objects.create_user(
                f"loadgen-{pharmacy.finess}@relais.test", None, role=Role.PHARMACIST, pharmacy=pharmacy
            )
            patients = [
                patient_register(
                    actor=actor,
                    allow_duplicate=True,
                    identity=PatientIdentity(
                        last_name=rng.choice(NAMES),
                        first_names=rng.choice(FIRST),
                        sex=rng.choice("FM"),
                        date_of_birth=date(1950, 1, 1) + timedelta(days=rng.randrange(25000)),
                        address_line=f"{rng.randrange(1, 99)} rue de la Gare & du Port",
                        postcode="69001",
                        city="Lyon",
                        country="FR",
                        phone="+33612345678",
                        email="test@example.org",
                    ),
                )
                for _ in range(options["patients"])
            ]
            corrected = 0
            now = timezone.now()
            for index in tqdm(range(options["screenings"]), unit="test", disable=options["no_progress"], file=self.stderr):
                screening = screening_record(
                    actor=actor,
                    patient_id=rng.choice(patients).pk,
                    data=ScreeningInput(
                        device_id="1232",
                        specimen_type=DEFAULT_SPECIMEN,
                        # One second apart: never the same patient, device and time twice (intake would call it a duplicate).
                        sampled_at=now - timedelta(minutes=1, seconds=index),
                        results={"sars-cov-2": rng.choice([RESULT_NOT_DETECTED, RESULT_DETECTED])},
                        information_notice_given=True,
                    ),
                )
                if rng.random() < options["correct_share"]:
                    flipped = RESULT_DETECTED if screening.results.get().result == RESULT_NOT_DETECTED else RESULT_NOT_DETECTED
                    screening_correct(actor=actor, screening_id=screening.pk, reason="load test", results={"sars-cov-2": flipped})
                    corrected += 1
        self.stdout.write(f"loadgen: {options['screenings']} screenings, {corrected} corrected, {len(patients)} patients")
