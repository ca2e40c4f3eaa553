"""manage.py backup [--output PATH] [--json] | --prune: an encrypted, authenticated backup, or deleting old ones (docs/backup.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO, cast

from django.core.management.base import BaseCommand, CommandError, CommandParser

from relais.backup import databases
from relais.backup.services import BackupError, create_backup, prune_backups


def _progress(command: BaseCommand, off: bool) -> TextIO | None:
    """The bar on a terminal only: under a timer it would fill the journal with redraws."""
    out = cast(TextIO, command.stderr._out)
    return None if off or not out.isatty() else out


class Command(BaseCommand):
    help = "Write an encrypted, authenticated backup of the database, the retention keys and the audit checkpoint files."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--output", type=Path, default=None, help="file or folder to write to (default RELAIS_BACKUP_DIR)")
        parser.add_argument("--prune", action="store_true", help="make no backup: delete those older than RELAIS_BACKUP_RETENTION_DAYS")
        parser.add_argument("--json", action="store_true", help="print the report as JSON")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        result: dict[str, Any] = {}
        if options["prune"] and options["output"]:
            raise CommandError("--prune deletes old backups in RELAIS_BACKUP_DIR; it takes no --output")
        if not options["prune"]:
            try:
                report = create_backup(output=options["output"], progress=_progress(self, options["no_progress"]))
            except (BackupError, databases.DatabaseError) as exc:
                raise CommandError(str(exc)) from exc
            result = {
                "path": str(report.path),
                "created_at": report.created_at.isoformat(),
                "backend": report.backend,
                "key_id": report.key_id,
                "bytes": report.size,
                "database_bytes": report.database_bytes,
                "tables": report.tables,
                "rows": report.rows,
                "retention_keys": report.retention_keys,
                "checkpoint_files": report.checkpoint_files,
                "seconds": report.seconds,
                "warnings": report.warnings,
            }
        if options["prune"]:
            result["pruned"] = [str(p) for p in prune_backups()]
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=2, sort_keys=True))
            return
        if "path" in result:
            self.stdout.write(
                f"backup written to {result['path']} ({result['bytes']} bytes, {result['tables']} tables, {result['rows']} rows,"
                f" {result['retention_keys']} retention keys, {result['checkpoint_files']} checkpoint files,"
                f" key id {result['key_id']}, {result['seconds']} s)"
            )
            for warning in result["warnings"]:
                self.stderr.write(f"warning: {warning}")
        if "pruned" in result:
            self.stdout.write(f"pruned {len(result['pruned'])} backups past their retention")
