from datetime import timedelta

from django.apps import AppConfig


class RetentionConfig(AppConfig):
    name = "relais.retention"
    label = "retention"

    def ready(self) -> None:
        from django.db.models.signals import post_save, pre_save

        from relais.core.schedule import Job, register
        from relais.notify.models import Notification
        from relais.retention import keys
        from relais.retention.services import purge_job
        from relais.screenings.models import Screening

        register(Job(name="retention.purge", every=timedelta(days=1), run=purge_job))
        post_save.connect(keys.screening_saved, sender=Screening, dispatch_uid="retention.screening_saved")
        pre_save.connect(keys.notification_saving, sender=Notification, dispatch_uid="retention.notification_saving")
