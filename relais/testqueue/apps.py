from datetime import timedelta

from django.apps import AppConfig


class TestqueueConfig(AppConfig):
    name = "relais.testqueue"
    label = "testqueue"

    def ready(self) -> None:
        from relais.core.schedule import Job, register
        from relais.testqueue.services import purge_job

        register(Job(name="queue.purge", every=timedelta(days=1), run=purge_job))
