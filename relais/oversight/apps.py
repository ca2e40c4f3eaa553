from datetime import timedelta

from django.apps import AppConfig


class OversightConfig(AppConfig):
    name = "relais.oversight"
    label = "oversight"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from relais.core.schedule import Job, register
        from relais.oversight.rules import run_job

        register(Job(name="oversight.rules", every=timedelta(hours=1), run=run_job))
