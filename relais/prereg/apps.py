from datetime import timedelta

from django.apps import AppConfig


class PreregConfig(AppConfig):
    name = "relais.prereg"
    label = "prereg"

    def ready(self) -> None:
        from relais.core.schedule import Job, register
        from relais.prereg.services import purge_job

        register(Job(name="prereg.purge", every=timedelta(hours=1), run=purge_job))
