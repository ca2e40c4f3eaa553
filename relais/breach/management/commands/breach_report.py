"""What a compromised account, API client, pharmacy, data key or the whole database could have exposed between two
times: patients (counted, by pharmacy), data categories, tests and results, from the audit log and the data. Opens a
breach case, writes the Art. 33 notification drafts (French, English) and prepares the Art. 34 letters as drafts, which
are sent only once a pharmacy admin or an operator approves them (web: /breach/). Prints counts and ids, never identity."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from relais.breach.models import Selector
from relais.breach.scope import ScopeError
from relais.breach.services import breach_report
from relais.core.context import request_context


def _when(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    parsed = parse_datetime(value)
    if parsed is None:
        raise CommandError(f"{name}: not an ISO 8601 date-time: {value}")
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed)


class Command(BaseCommand):
    help = "Breach impact report: patients, categories, tests and results that could have been exposed; Art. 33 draft, Art. 34 letters."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", required=True, help="start of the window, ISO 8601 (included)")
        parser.add_argument("--until", required=True, help="end of the window, ISO 8601 (excluded)")
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--account", metavar="EMAIL", help="a staff account's accesses in the window")
        which.add_argument("--api-client", metavar="ID", help="an API client's accesses in the window")
        which.add_argument("--pharmacy", metavar="FINESS", help="everything held for one pharmacy in the window")
        which.add_argument("--key-id", metavar="K", help="every row encrypted under one data key")
        which.add_argument("--all", action="store_true", help="everything held in the window (database or backup)")
        parser.add_argument("--json", action="store_true", help="print the report as JSON")
        parser.add_argument("--discovered-at", help="when the breach was discovered (default: now); the 72 h start there")
        parser.add_argument("--nature", default="", help="what happened, in your words (added to the drafts and letters)")
        parser.add_argument("--measures", default="", help="measures taken, in your words (added to the drafts and letters)")
        parser.add_argument("--out", help="folder for the drafts (default: RELAIS_BREACH['dir'])")

    def handle(self, *args: Any, **options: Any) -> None:
        since = _when(options["since"], "--since")
        until = _when(options["until"], "--until")
        assert since is not None and until is not None
        kinds = {
            Selector.ACCOUNT: options["account"],
            Selector.API_CLIENT: options["api_client"],
            Selector.PHARMACY: options["pharmacy"],
            Selector.KEY_ID: options["key_id"],
            Selector.ALL: "" if options["all"] else None,
        }
        kind, value = next((k, v) for k, v in kinds.items() if v is not None)
        try:
            with request_context(channel="cli"):
                case = breach_report(
                    kind=kind,
                    value=value,
                    since=since,
                    until=until,
                    discovered_at=_when(options["discovered_at"], "--discovered-at"),
                    nature=options["nature"],
                    measures=options["measures"],
                    out_dir=Path(options["out"]) if options["out"] else None,
                )
        except (ScopeError, ValidationError) as exc:
            raise CommandError(exc.messages[0] if isinstance(exc, ValidationError) else str(exc)) from exc
        report = case.report
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2, ensure_ascii=False))
            return
        patients, tests = report["patients"], report["tests"]
        self.stdout.write(f"breach case {case.pk} ({kind} {report['selector']['ref']})".rstrip())
        self.stdout.write(f"window: {report['window']['since']} -> {report['window']['until']} (end excluded)")
        self.stdout.write(f"patients: {patients['total']} in {len(patients['by_pharmacy'])} pharmacies")
        for row in patients["by_pharmacy"][:20]:
            self.stdout.write(f"  {row['finess']:<9} {row['patients']:>9}  {row['name']}")
        if len(patients["by_pharmacy"]) > 20:
            self.stdout.write(f"  ... {len(patients['by_pharmacy']) - 20} more pharmacies in report.json")
        self.stdout.write(f"categories: {', '.join(report['categories']) or '-'}")
        self.stdout.write(f"tests: {tests['tests']} ({tests['records']} versions), positive results: {tests['positive']}")
        for row in tests["results"]:
            self.stdout.write(f"  {row['analyte']} {row['result']}: {row['count']}")
        self.stdout.write(f"certificates: {report['records']['certificates']}; audit events in the window: {report['events']['total']}")
        for table, count in report["encrypted_rows"].items():
            self.stdout.write(f"encrypted under the key: {table}: {count}")
        self.stdout.write(f"letters prepared (drafts, sent only once approved at /breach/{case.pk}/): {report['letters']['draft']}")
        for language, path in report["drafts"].items():
            self.stdout.write(f"Art. 33 draft ({language}): {path}")
        self.stdout.write(f"report time: {report['seconds']:.2f} s")
