from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Operations: queue health, the doctor command's checks and the outside probe, readiness."""

    name = "relais.ops"
    label = "ops"
    default_auto_field = "django.db.models.BigAutoField"
