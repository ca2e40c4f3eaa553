"""manage.py purge [--dry-run] [--now ISO8601] [--json]: remove what is past its retention (RELAIS_RETENTION)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, TextIO, cast

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from relais.retention.services import purge


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise CommandError(f"--now: not an ISO 8601 time: {text!r}") from exc
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)


class Command(BaseCommand):
    help = "Remove what is past its retention, class by class, in batches; report what went (or would go) per class."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="count what would go, change nothing")
        parser.add_argument("--now", type=_moment, default=None, help="purge as if it were this time (ISO 8601)")
        parser.add_argument("--json", action="store_true", help="print the report as JSON")
        parser.add_argument("--batch-size", type=int, default=1000)
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be positive")
        report = purge(
            now=options["now"],
            dry_run=options["dry_run"],
            batch_size=options["batch_size"],
            progress=None if options["no_progress"] else cast(TextIO, self.stderr._out),
        )
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2, sort_keys=True))
            return
        verb = "would remove" if options["dry_run"] else "removed"
        self.stdout.write(f"purge at {report['now']} ({verb}), {report['seconds']} s")
        for name, result in report["classes"].items():
            counts = ", ".join(f"{k}={v}" for k, v in result.items() if k != "seconds")
            self.stdout.write(f"  {name}: {counts} ({result['seconds']} s)")
