"""Seal every committed audit event and exit (``--loop``: keep sealing, like the audit_seal worker)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from relais.audit.seal import seal_pending
from relais.audit.seal_worker import AuditSealWorker
from relais.core.worker import add_common_arguments, install_signals, run_options


class Command(BaseCommand):
    help = "Seal the committed audit events (hash chain + signed checkpoints) and exit; --checkpoint also signs the tail."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--checkpoint", action="store_true", help="also write a checkpoint for the events past the last one")
        parser.add_argument("--loop", action="store_true", help="keep running as the audit_seal worker")
        add_common_arguments(parser, poll=AuditSealWorker.poll)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["loop"]:
            worker = AuditSealWorker(**options)
            install_signals(worker.stop)
            worker.run(**run_options(options))
            self.stdout.write(worker.summary())
            return
        report = seal_pending(limit=options["batch"] or 1000, checkpoint=options["checkpoint"])
        self.stdout.write(f"sealed {report.sealed} event(s), wrote {report.checkpoints} checkpoint(s)")
