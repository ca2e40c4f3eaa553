"""Re-derive the sealed audit log; exit 0 when intact, 1 naming the first damaged sequence and its kind."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.dateparse import parse_datetime

from relais.audit.verify import verify


class Command(BaseCommand):
    help = "Verify the audit log's hashes, chain, Merkle roots, checkpoint signatures and external copies."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", help="ISO 8601: start at the last checkpoint signed before this time")
        parser.add_argument("--json", action="store_true", help="print the report as JSON")
        parser.add_argument("--batch", type=int, default=20000, help="seals read per query")
        parser.add_argument("--quiet", action="store_true", help="no progress on stderr")

    def handle(self, *args: Any, **options: Any) -> None:
        since = None
        if options["since"]:
            since = parse_datetime(options["since"])
            if since is None or since.tzinfo is None:
                raise CommandError(f"--since: not an ISO 8601 date-time with a zone: {options['since']}")
        started = time.monotonic()
        last_shown = [0.0]

        def progress(done: int, total: int) -> None:
            if options["quiet"] or time.monotonic() - last_shown[0] < 1:
                return
            last_shown[0] = time.monotonic()
            rate = done / max(time.monotonic() - started, 1e-9)
            sys.stderr.write(f"\rverified {done:,}/{total:,} seals ({rate:,.0f}/s)")
            sys.stderr.flush()

        report = verify(since=since, batch=options["batch"], progress=progress)
        if last_shown[0]:
            sys.stderr.write("\n")
        elapsed = time.monotonic() - started
        if options["json"]:
            self.stdout.write(json.dumps({**report.as_dict(), "seconds": round(elapsed, 3)}))
        elif report.ok:
            self.stdout.write(
                f"audit log intact: {report.events} events (seq {report.first_seq}-{report.last_seq}), "
                f"{report.checkpoints} signed checkpoints, {report.purged_segments} purged segments, {elapsed:.1f} s"
            )
        else:
            first = report.first
            assert first is not None
            self.stdout.write(f"AUDIT LOG DAMAGED: first bad sequence {first.seq}: {first.kind} ({first.detail})")
            for problem in sorted(report.problems, key=lambda p: p.seq)[1:20]:
                self.stdout.write(f"  also seq {problem.seq}: {problem.kind} ({problem.detail})")
        if not report.ok:
            raise CommandError(f"audit log damaged at sequence {report.first.seq if report.first else '?'}", returncode=1)
