from datetime import timedelta

from django.apps import AppConfig


class BackupConfig(AppConfig):
    name = "relais.backup"
    label = "backup"

    def ready(self) -> None:
        from relais.backup.services import prune_job
        from relais.core.schedule import Job, register

        # Backups hold retention keys: deleted on time even on days no backup runs (docs/backup.md).
        register(Job(name="backup.prune", every=timedelta(days=1), run=prune_job))
