from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "relais.webhooks"
    label = "webhooks"

    def ready(self) -> None:
        # Transfer offers the hook and knows nothing of webhooks: a notification is queued in the outcome's transaction.
        from relais.transfer.hooks import on_outcomes
        from relais.webhooks.services import webhook_enqueue_for_outcomes

        on_outcomes(webhook_enqueue_for_outcomes)
