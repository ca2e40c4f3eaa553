from django.apps import AppConfig


class BreachConfig(AppConfig):
    name = "relais.breach"
    label = "breach"
    default_auto_field = "django.db.models.BigAutoField"
