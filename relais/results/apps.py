from django.apps import AppConfig


class ResultsConfig(AppConfig):
    name = "relais.results"
    label = "results"
