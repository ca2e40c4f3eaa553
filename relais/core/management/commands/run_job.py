"""Run one scheduled job now, whatever its schedule, and print its report as JSON."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.dateparse import parse_datetime

from relais.core.schedule import jobs, run_now


class Command(BaseCommand):
    help = "Run one scheduled job now (e.g. retention.purge) and print its report."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="the job's name; run without it to list them")
        parser.add_argument("--now", help="ISO 8601 date-time the job takes as the present (tests, catching up)")

    def handle(self, *args: Any, **options: Any) -> None:
        known = jobs()
        if options["name"] not in known:
            raise CommandError(f"unknown job {options['name']!r}; known jobs: {', '.join(sorted(known)) or 'none'}")
        now = None
        if options["now"]:
            now = parse_datetime(options["now"])
            if now is None or now.tzinfo is None:
                raise CommandError(f"--now: not an ISO 8601 date-time with a time zone: {options['now']}")
        try:
            report = run_now(options["name"], now=now)
        except RuntimeError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(json.dumps(report, indent=2, default=str))
