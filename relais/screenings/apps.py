from django.apps import AppConfig


class ScreeningsConfig(AppConfig):
    name = "relais.screenings"
    label = "screenings"
