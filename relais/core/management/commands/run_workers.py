"""Run every queue's worker in this one process, one thread each (small deployments, `make run`).

Each worker can still run alone (transfer_worker, notify_worker, webhook_worker, submission_worker), and several
processes of each may run side by side. SIGTERM/SIGINT stop them all: each finishes its row in hand and gives back
the rest. Management commands sit on top of the apps, so this one may import them all.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from relais.audit.seal_worker import AuditSealWorker
from relais.breach.management.commands.breach_letter_worker import BreachLetterWorker
from relais.core.schedule import ScheduleWorker
from relais.core.worker import Worker, add_common_arguments, install_signals, run_options, run_together
from relais.notify.management.commands.notify_worker import NotifyWorker
from relais.submissions.management.commands.submission_worker import SubmissionWorker
from relais.transfer.management.commands.transfer_worker import TransferWorker
from relais.webhooks.management.commands.webhook_worker import WebhookWorker

WORKERS: dict[str, type[Worker]] = {
    w.name: w for w in (TransferWorker, NotifyWorker, WebhookWorker, SubmissionWorker, ScheduleWorker, AuditSealWorker, BreachLetterWorker)
}


class Command(BaseCommand):
    help = "Run all queue workers in one process (transfer, notify, webhooks, csv, scheduled jobs, audit sealer, breach letters)."

    def add_arguments(self, parser: CommandParser) -> None:
        add_common_arguments(parser)
        parser.add_argument("--only", default="", help=f"comma-separated queues to run (default: all of {', '.join(WORKERS)})")

    def handle(self, *args: Any, **options: Any) -> None:
        names = [n.strip() for n in options["only"].split(",") if n.strip()] or list(WORKERS)
        unknown = sorted(set(names) - set(WORKERS))
        if unknown:
            raise CommandError(f"--only: unknown queue {', '.join(unknown)}; choose among {', '.join(WORKERS)}")
        workers = [WORKERS[name](**options) for name in names]  # each checks its configuration before any starts

        def stop(signum: int) -> None:
            for worker in workers:
                worker.stop(signum)

        install_signals(stop)
        run_together(workers, **run_options(options))
        for worker in workers:
            self.stdout.write(worker.summary())
