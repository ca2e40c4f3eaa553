from django.apps import AppConfig


class FrontdeskConfig(AppConfig):
    name = "relais.frontdesk"
    label = "frontdesk"
