"""Run one queue's worker as a real process for tests/core/test_workers.py: seed rows, run slowly, read the state.

python -m tests.core.worker_harness seed|run|expire|state <queue> [marker] [flags...]   (environment from live.relais_env)

``run`` with a marker file slows every row down (SLOW seconds, after writing a line to the marker), so a test can
signal the worker while a row is in hand; ``-`` runs the worker as it is.
"""

from __future__ import annotations

import csv
import importlib
import json
import os
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

SLOW = 1.5


def _mark(marker: str) -> None:
    with open(marker, "a") as file:
        file.write("row\n")
    time.sleep(SLOW)


def _slow(queue: str, marker: str) -> None:
    from relais.notify.management.commands import notify_worker
    from relais.submissions.management.commands import submission_worker

    if queue == "notify":
        touch = notify_worker.notify_touch

        def slow_touch(**kwargs: Any) -> bool:
            _mark(marker)
            return touch(**kwargs)

        notify_worker.notify_touch = slow_touch  # type: ignore[assignment]
    elif queue == "webhooks":
        webhook_worker = importlib.import_module(f"{_webhooks_app()}.management.commands.webhook_worker")
        deliver = webhook_worker.webhook_deliver_one

        def slow_deliver(delivery: Any) -> Any:
            _mark(marker)
            return deliver(delivery)

        webhook_worker.webhook_deliver_one = slow_deliver
    elif queue == "csv":
        process = submission_worker.csv_process

        def slow_process(*, progress: Any, **kwargs: Any) -> Any:
            def slow_progress(done: int, total: int) -> None:
                _mark(marker)
                progress(done, total)

            return process(progress=slow_progress, **kwargs)

        submission_worker.csv_process = slow_process  # type: ignore[assignment]
    # transfer: the sandbox is put in its slow mode by the test


def _webhooks_app() -> str:
    """Webhooks move from the api app to their own (issue 11, point 4): follow them wherever they are."""
    from django.apps import apps

    return "relais.webhooks" if apps.is_installed("relais.webhooks") else "relais.api"


COMMANDS = {"transfer": "transfer_worker", "notify": "notify_worker", "webhooks": "webhook_worker", "csv": "submission_worker"}


def _model(queue: str) -> Any:
    from relais.notify.models import Notification
    from relais.submissions.models import Submission
    from relais.transfer.models import OutboxMessage

    webhooks = importlib.import_module(f"{_webhooks_app()}.models")
    return {"transfer": OutboxMessage, "notify": Notification, "webhooks": webhooks.WebhookDelivery, "csv": Submission}[queue]


def _seed(queue: str, count: int) -> None:
    from django.core.management import call_command
    from django.utils import timezone

    call_command("loadgen", "--screenings", str(count if queue != "csv" else 1), "--patients", "2", "--correct-share", "0", "--no-progress")
    from relais.accounts.models import User
    from relais.api.models import ApiClient
    from relais.screenings.models import Screening

    actor = User.objects.get(email__startswith="loadgen-")
    if queue == "webhooks":
        service = User.objects.create_user("service@relais.test", None, role=actor.role, pharmacy=actor.pharmacy)
        client = ApiClient.objects.create(pharmacy=actor.pharmacy, name="harness", service_user=service)
        webhooks = importlib.import_module(f"{_webhooks_app()}.models")
        hook = webhooks.Webhook.objects.create(client=client, url=os.environ["TEST_WEBHOOK_URL"])
        for screening in Screening.objects.all():
            delivery = webhooks.WebhookDelivery(
                webhook=hook, event="screening.acknowledged", screening=screening, next_attempt_at=timezone.now()
            )
            delivery.payload = {"event_id": str(delivery.pk), "screening_id": str(screening.pk)}
            delivery.save()
    elif queue == "csv":
        from relais.screenings.csv_import import COLUMN_NAMES, example_csv, write_csv
        from relais.submissions.services import csv_submit

        parsed = list(csv.reader(example_csv().splitlines()[1:]))
        lines = [list(COLUMN_NAMES)]
        for i in range(count):
            row = list(parsed[i % len(parsed)])
            row[0] = f"{row[0]}{'abcdefghij'[i % 10]}{'abcdefghij'[i // 10 % 10]}{'abcdefghij'[i // 100 % 10]}"
            lines.append(row)
        csv_submit(actor=actor, data=write_csv(lines).encode(), file_name="harness.csv")


def _state(queue: str) -> dict[str, Any]:
    model = _model(queue)
    rows = list(model.objects.values("status", "lease_owner", "attempts" if queue != "csv" else "processed"))
    return {"status": dict(Counter(r["status"] for r in rows)), "leased": sum(1 for r in rows if r["lease_owner"]), "rows": len(rows)}


def main(argv: list[str]) -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "relais.settings")
    django.setup()
    from django.core.management import call_command
    from django.utils import timezone

    action, queue, *rest = argv
    if action == "seed":
        _seed(queue, int(rest[0]))
    elif action == "run":
        marker, *flags = rest
        if marker != "-":
            _slow(queue, marker)
        call_command(COMMANDS[queue], "--poll", "0.2", *flags)
    elif action == "expire":
        _model(queue).objects.exclude(lease_owner="").update(lease_until=timezone.now() - timedelta(seconds=1))
    elif action == "state":
        print(json.dumps(_state(queue)))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    main(sys.argv[1:])
