from django.apps import AppConfig


class CorrectionsConfig(AppConfig):
    name = "relais.corrections"
    label = "corrections"

    def ready(self) -> None:
        # Patients offers the hook and knows nothing of the tests built on an identity: they follow in its transaction.
        from relais.corrections.services import tests_after_identity_correction
        from relais.patients.correction import on_identity_corrected

        on_identity_corrected(tests_after_identity_correction)
