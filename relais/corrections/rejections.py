"""Which receiver rejections are about the patient's identity, so the pharmacist is sent straight to its correction.

The words live in relais.transfer.plain, which also says these rejections in plain language (one list for both)."""

from __future__ import annotations

from relais.transfer.plain import names_identity

__all__ = ["names_identity"]
