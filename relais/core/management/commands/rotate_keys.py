"""Re-encrypt every encrypted field under a fresh data key, rewrapping keys under the current master key."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from tqdm import tqdm

from relais.audit.services import audit_record
from relais.core import crypto
from relais.core.fields import encrypted_field_names
from relais.core.models import DataKey


def _encrypted_models() -> list[tuple[Any, list[str]]]:
    found = []
    for model in apps.get_models():
        names = encrypted_field_names(model)
        if names:
            found.append((model, names))
    return found


class Command(BaseCommand):
    help = "Rotate data keys: new data key, re-encrypt all personal data in batches, retire unused keys."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=500)
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        crypto.forget_keys()
        rewrapped = 0
        with transaction.atomic():
            for key_id in DataKey.objects.values_list("key_id", flat=True):
                rewrapped += crypto.rewrap_data_key(key_id)
            new_key = crypto.create_data_key()
        crypto.set_active_key(new_key)
        models = _encrypted_models()
        total = sum(model.objects.count() for model, _ in models)
        bar = tqdm(total=total, unit="row", desc="re-encrypting", disable=options["no_progress"], file=self.stderr)
        counts: dict[str, int] = {}
        for model, names in models:
            last_pk = None
            while True:
                with transaction.atomic():
                    query = model.objects.order_by("pk")
                    if last_pk is not None:
                        query = query.filter(pk__gt=last_pk)
                    batch = list(query.select_for_update()[: options["batch_size"]])
                    if not batch:
                        break
                    for row in batch:
                        for name in names:
                            setattr(row, name, getattr(row, name))  # plaintext in, so save() encrypts anew
                        row.save(update_fields=names)
                    audit_record(
                        actor=None,
                        action="crypto.reencrypt",
                        object_type=model._meta.label_lower,
                        object_ids=[row.pk for row in batch],
                        detail={"key_id": new_key},
                    )
                last_pk = batch[-1].pk
                counts[model._meta.label] = counts.get(model._meta.label, 0) + len(batch)
                bar.update(len(batch))
        bar.close()
        in_use = {new_key}
        retired = crypto.retire_unused_keys(in_use=in_use)
        self.stdout.write(f"new data key: {new_key}")
        self.stdout.write(f"data keys rewrapped under the current master key: {rewrapped}")
        for label, count in counts.items():
            self.stdout.write(f"re-encrypted {count} {label} rows")
        self.stdout.write(f"retired data keys: {len(retired)} ({', '.join(retired) or 'none'})")
