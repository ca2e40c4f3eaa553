from django.apps import AppConfig


class PatientsConfig(AppConfig):
    name = "relais.patients"
    label = "patients"
