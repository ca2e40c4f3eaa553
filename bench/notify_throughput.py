"""Patient emails sent per second to a real SMTP server on loopback, by one `notify_worker`, end to end.

Usage: .venv/bin/python bench/notify_throughput.py [--messages 2000]
A fresh SQLite database in a temporary folder; the demo pharmacy; N patients with an email address and one
screening each (recorded through the service, which also signs their certificates: that rate is printed too);
then one notify_worker drains the queue into aiosmtpd. The figure is wall time of the worker run, start-up included.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = str(ROOT / ".venv" / "bin" / "python")
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()
    from sandbox.messaging import SmtpServer

    with tempfile.TemporaryDirectory() as tmp:
        smtp = SmtpServer(port=0).start()
        env = {
            **os.environ,
            "RELAIS_ENV": "development",
            "RELAIS_VAR_DIR": tmp,
            "RELAIS_SMTP_PORT": str(smtp.port),
            "RELAIS_PUBLIC_URL": "https://relais.example",
        }
        subprocess.run([PY, "-m", "relais.core.devsecrets", f"{tmp}/secrets"], cwd=ROOT, env=env, check=True)
        for command in (["migrate", "--no-input", "-v", "0"], ["seed_demo"]):
            subprocess.run([PY, "manage.py", *command], cwd=ROOT, env=env, check=True, capture_output=True)
        os.environ.update(env)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "relais.settings")
        import django

        django.setup()
        from django.utils import timezone

        from relais.accounts.management.commands.seed_demo import DEMO_FINESS
        from relais.accounts.models import Pharmacy, Role, User
        from relais.certificates.models import Certificate
        from relais.core.context import request_context
        from relais.intake.services import screening_record
        from relais.notify.models import Notification, NotificationStatus
        from relais.patients.services import PatientIdentity, patient_register
        from relais.screenings.inputs import ScreeningInput

        pharmacy = Pharmacy.objects.get(finess=DEMO_FINESS)
        actor = User.objects.filter(pharmacy=pharmacy, role=Role.PHARMACIST).first()
        assert actor is not None
        Notification.objects.all().delete()
        letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        started = time.perf_counter()
        with request_context(channel="bench"):
            for n in range(args.messages):
                name = "BENCH" + "".join(letters[(n // 26**i) % 26] for i in range(4))
                identity = PatientIdentity(
                    last_name=name, first_names="Camille", sex="F", date_of_birth=date(1985, 3, 12), email=f"p{n}@example.org"
                )
                patient = patient_register(actor=actor, identity=identity, allow_duplicate=True)
                screening_record(
                    actor=actor,
                    patient_id=patient.pk,
                    data=ScreeningInput(
                        device_id="1232",
                        specimen_type="258500001",
                        sampled_at=timezone.now() - timedelta(minutes=5),
                        results={"sars-cov-2": "260415000"},
                        information_notice_given=True,
                    ),
                )
        recorded = time.perf_counter() - started
        queued = Notification.objects.filter(status=NotificationStatus.PENDING).count()
        rate = args.messages / recorded
        print(f"recorded: {args.messages} screenings (certificate signed, message queued) in {recorded:.1f} s ({rate:.0f}/s)")
        print(f"certificates in the database: {Certificate.objects.count()}")
        started = time.perf_counter()
        subprocess.run([PY, "manage.py", "notify_worker", "--once", "--batch", "200"], cwd=ROOT, env=env, check=True, capture_output=True)
        elapsed = time.perf_counter() - started
        sent = Notification.objects.filter(status=NotificationStatus.SENT).count()
        received = len(smtp.store.messages)
        smtp.stop()
        print(f"notify: queued={queued} sent={sent} received_by_smtp={received} seconds={elapsed:.1f} per_second={sent / elapsed:.0f}")


if __name__ == "__main__":
    main()
