"""Model fields whose values are encrypted before they reach the database.

The attribute holds plaintext for code; the column holds ``crypto.encrypt`` output bound to
(table, column, primary key). Decryption is lazy and cached per instance.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from django.db import models
from django.db.models.query_utils import DeferredAttribute

from relais.core import crypto


class Ciphertext(str):
    """A column value as read from the database, not yet decrypted."""


class EncryptedAttribute(DeferredAttribute):
    field: EncryptedTextField

    def __get__(self, instance: Any, cls: Any = None) -> Any:
        if instance is None:
            return self
        raw = super().__get__(instance, cls)
        if not isinstance(raw, Ciphertext):
            return raw
        cache: dict[str, tuple[str, Any]] = instance.__dict__.setdefault("_relais_plain", {})
        hit = cache.get(self.field.attname)
        if hit is not None and hit[0] is raw:
            return hit[1]
        plain = self.field.from_plain(crypto.decrypt(raw, aad=self.field.aad(instance)))
        cache[self.field.attname] = (raw, plain)
        return plain

    def __set__(self, instance: Any, value: Any) -> None:
        instance.__dict__[self.field.attname] = value


class EncryptedTextField(models.TextField):
    descriptor_class = EncryptedAttribute

    def from_plain(self, plain: str) -> Any:
        return plain

    def to_plain(self, value: Any) -> str:
        return str(value)

    def aad(self, instance: Any) -> bytes:
        return crypto.aad_for(instance._meta.db_table, str(self.column), instance.pk)

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if value is None or value == "":
            return value  # emptied in place by an update (e.g. a processed upload): nothing to decrypt
        return Ciphertext(value)

    def pre_save(self, model_instance: Any, add: bool) -> Any:
        raw = model_instance.__dict__.get(self.attname)
        if raw is None or isinstance(raw, Ciphertext):
            return raw
        if model_instance.pk is None:
            raise ValueError("encrypted fields need the primary key before saving (use a UUID default)")
        # A row with a retention key (patients, notifications) is encrypted under it, so the purge can shred it.
        token = crypto.encrypt(
            self.to_plain(raw), aad=self.aad(model_instance), key_id=getattr(model_instance, "retention_key", "") or None
        )
        model_instance.__dict__[self.attname] = Ciphertext(token)
        model_instance.__dict__.setdefault("_relais_plain", {})[self.attname] = (model_instance.__dict__[self.attname], raw)
        return token

    def get_prep_value(self, value: Any) -> Any:
        return None if value is None else str(value)

    def value_to_string(self, obj: Any) -> str:
        raise TypeError("encrypted fields are never serialised in clear")


class EncryptedDateField(EncryptedTextField):
    def from_plain(self, plain: str) -> date | None:
        return date.fromisoformat(plain) if plain else None

    def to_plain(self, value: Any) -> str:
        return value.isoformat() if value else ""


def encrypted_field_names(model: type[models.Model]) -> list[str]:
    return [f.attname for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField)]
