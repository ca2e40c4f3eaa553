from django.apps import AppConfig


class TransferConfig(AppConfig):
    name = "relais.transfer"
    label = "transfer"
