"""Recompute every patient's search indexes (after migration 0004 ran without RELAIS_BLIND_INDEX_KEY, or a key change)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from tqdm import tqdm

from relais.audit.services import audit_record
from relais.patients import search
from relais.patients.models import Patient


class Command(BaseCommand):
    help = "Fill or recompute the patients' search indexes (blind indexes of names, birth date, phone), with a progress bar."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--missing", action="store_true", help="only the records whose search indexes are empty")
        parser.add_argument("--batch-size", type=int, default=500)
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        if not search.search_key_available():
            raise CommandError("RELAIS_BLIND_INDEX_KEY is missing or invalid: the indexes cannot be computed")
        rows = Patient.objects.filter(surname_index="") if options["missing"] else Patient.objects.all()
        total = rows.count()
        bar = tqdm(total=total, unit="patient", desc="reindexing", disable=options["no_progress"], file=self.stderr)
        with bar, transaction.atomic():  # the identities it decrypts are read once, audited with the rewrite
            rewritten, unreadable = search.reindex(
                Patient, only_missing=options["missing"], chunk=options["batch_size"], progress=bar.update
            )
            audit_record(actor=None, action="patient.reindex", object_type="patient", object_ids=[], detail={"count": rewritten})
        self.stdout.write(f"{rewritten} patient(s) reindexed, {unreadable} no longer decrypt (left for the purge)")
