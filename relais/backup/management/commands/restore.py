"""manage.py restore PATH [--yes] [--json]: verify a backup to its last byte, then restore it and check it (docs/backup.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO, cast

from django.core.management.base import BaseCommand, CommandError, CommandParser

from relais.backup import databases
from relais.backup.services import BackupError, restore_backup


def _progress(command: BaseCommand, off: bool) -> TextIO | None:
    """The bar on a terminal only: under a timer it would fill the journal with redraws."""
    out = cast(TextIO, command.stderr._out)
    return None if off or not out.isatty() else out


class Command(BaseCommand):
    help = "Restore a backup into the configured database (empty, or any with --yes), with its keys and checkpoint files."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument("--yes", action="store_true", help="replace a database that already holds data")
        parser.add_argument("--json", action="store_true", help="print the report as JSON")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["path"]
        if not path.is_file():
            raise CommandError(f"{path} is not a file")
        try:
            report = restore_backup(path=path, overwrite=options["yes"], progress=_progress(self, options["no_progress"]))
        except (BackupError, databases.DatabaseError) as exc:
            raise CommandError(str(exc)) from exc
        figures = {
            "backup_created_at": report.created_at.isoformat(),
            "backend": report.backend,
            "tables": report.tables,
            "rows": report.rows,
            "keys_written": report.keys_written,
            "checkpoint_files_written": report.checkpoint_files_written,
            "count_mismatches": {t: {"backup": a, "restored": b} for t, (a, b) in report.count_mismatches.items()},
            "seal_ok": report.seal_ok,
            "seal_problem": report.seal_problem,
            "patients_checked": report.patients_checked,
            "patients_failed": report.patients_failed,
            "migrations_pending": report.migrations_pending,
            "notes": report.notes,
            "seconds": report.seconds,
            "ok": report.ok,
        }
        if options["json"]:
            self.stdout.write(json.dumps(figures, indent=2, sort_keys=True))
        else:
            self.stdout.write(
                f"restored the backup of {figures['backup_created_at']} ({report.tables} tables, {report.rows} rows,"
                f" {report.keys_written} retention keys and {report.checkpoint_files_written} checkpoint files written,"
                f" {report.seconds} s)"
            )
            self.stdout.write(f"  counts: {'every table as in the backup' if not report.count_mismatches else 'MISMATCH'}")
            for table, (a, b) in sorted(report.count_mismatches.items()):
                self.stdout.write(f"    {table}: backup {a}, restored {b}")
            self.stdout.write(f"  audit seal: {'verifies' if report.seal_ok else 'FAILS: ' + report.seal_problem}")
            self.stdout.write(f"  patients decrypted: {report.patients_checked - report.patients_failed} of {report.patients_checked}")
            for note in report.notes:
                self.stdout.write(f"  note: {note}")
        if not report.ok:
            raise CommandError("the backup was restored but a check failed (see above)")
