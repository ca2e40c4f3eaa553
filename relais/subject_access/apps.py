from django.apps import AppConfig


class SubjectAccessConfig(AppConfig):
    name = "relais.subject_access"
    label = "subject_access"
