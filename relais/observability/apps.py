from django.apps import AppConfig


class ObservabilityConfig(AppConfig):
    """/metrics (Prometheus text format) and the request figures behind it; no personal data in any label."""

    name = "relais.observability"
    label = "observability"

    def ready(self) -> None:
        from relais.observability.access import allowed_networks

        allowed_networks()  # an address list that does not parse refuses to start, rather than locking everyone out
