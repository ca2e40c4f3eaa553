"""Webhooks moved from the api app to their own without losing a row: the tables keep their names, only Django's state
moves (webhooks.0001 creates the models in state, api.0005 removes them). Migrating a real database forward from the
previous schema is exercised on SQLite and PostgreSQL by hand (see the issue's closing note); here, the states."""

from __future__ import annotations

from typing import Any

import pytest
from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.db.migrations.loader import MigrationLoader

from relais.api.models import ApiClient
from relais.webhooks.models import Webhook, WebhookDelivery

BEFORE = ("api", "0004_webhookdelivery_error_count")


def states() -> tuple[Any, Any]:
    loader = MigrationLoader(None)
    return loader.project_state([BEFORE]).apps, loader.project_state(loader.graph.leaf_nodes()).apps


def shape(model: Any) -> tuple[str, list[tuple[str, str, str | None]], list[str | None]]:
    fields = sorted(
        (f.column, f.get_internal_type(), f.related_model._meta.db_table if f.related_model else None) for f in model._meta.fields
    )
    return model._meta.db_table, fields, sorted(i.name for i in model._meta.indexes)


def test_the_move_keeps_tables_columns_and_indexes() -> None:
    old, new = states()
    with_api_app = [old.get_model("api", "Webhook"), old.get_model("api", "WebhookDelivery")]
    assert [shape(m) for m in with_api_app] == [shape(new.get_model("webhooks", name)) for name in ("Webhook", "WebhookDelivery")]
    assert [shape(m) for m in with_api_app] == [shape(Webhook), shape(WebhookDelivery)]
    assert {m._meta.model_name for m in new.get_app_config("api").get_models()} == {
        "apiclient",
        "apiclientkey",
        "usedassertion",
        "accesstoken",
        "idempotentresponse",
    }


def test_rows_written_now_are_the_rows_of_the_previous_schema(api_client: ApiClient, admin: Any) -> None:
    hook = Webhook.objects.create(client=api_client, url="https://hooks.example.org/relais", created_by=admin)
    old, _ = states()
    assert list(old.get_model("api", "Webhook").objects.values_list("pk", "url")) == [(hook.pk, hook.url)]


@pytest.mark.django_db
def test_content_types_follow_the_models_and_back() -> None:
    migration = MigrationLoader(None).get_migration("webhooks", "0001_initial")
    run_python = migration.operations[-1]
    ContentType.objects.filter(app_label="webhooks").delete()
    ContentType.objects.create(app_label="api", model="webhook")
    run_python.code(apps, None)
    assert ContentType.objects.filter(app_label="webhooks", model="webhook").exists()
    assert not ContentType.objects.filter(app_label="api", model="webhook").exists()
    run_python.reverse_code(apps, None)
    assert ContentType.objects.filter(app_label="api", model="webhook").exists()
