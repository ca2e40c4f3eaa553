from django.apps import AppConfig


class SubmissionsConfig(AppConfig):
    name = "relais.submissions"
    label = "submissions"
