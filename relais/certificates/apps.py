from django.apps import AppConfig


class CertificatesConfig(AppConfig):
    name = "relais.certificates"
    label = "certificates"
