from django.apps import AppConfig


class NotifyConfig(AppConfig):
    name = "relais.notify"
    label = "notify"
