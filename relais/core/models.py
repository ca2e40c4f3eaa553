from __future__ import annotations

from django.db import models


class DataKey(models.Model):
    """A data-encryption key, stored only wrapped (AES-GCM) by a master key from the environment."""

    key_id = models.CharField(max_length=32, primary_key=True)
    wrapped_key = models.CharField(max_length=200)
    master_key_id = models.CharField(max_length=16)
    created_at = models.DateTimeField(auto_now_add=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.key_id
