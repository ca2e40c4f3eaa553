"""Envelope encryption for personal data: AES-256-GCM, associated data, key ids, wrapped data keys.

A stored value looks like ``v1.<key_id>.<base64(nonce || ciphertext+tag)>``. The associated data
binds it to its table, column and row, so a ciphertext copied to another row fails to decrypt.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time
import uuid

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from relais.core.models import DataKey
from relais.core.secrets import decode_key

PREFIX = "v1"
_ACTIVE_KEY_TTL_SECONDS = 60
_lock = threading.Lock()
_unwrapped: dict[str, bytes] = {}
_active: tuple[str, float] | None = None


class DecryptionError(Exception):
    """A value cannot be decrypted: wrong key, wrong row or tampered ciphertext."""


def master_key_id(master_key: bytes) -> str:
    return hashlib.sha256(b"relais-master-key-id" + master_key).hexdigest()[:16]


def master_keys() -> dict[str, bytes]:
    """Current master key first, then former ones kept only for rewrapping."""
    keys: dict[str, bytes] = {}
    for encoded in [settings.RELAIS_MASTER_KEY, *settings.RELAIS_OLD_MASTER_KEYS]:
        raw = decode_key("RELAIS_MASTER_KEY", encoded)
        keys[master_key_id(raw)] = raw
    return keys


def current_master_key_id() -> str:
    return next(iter(master_keys()))


def aad_for(table: str, column: str, row_id: object) -> bytes:
    return f"{table}|{column}|{row_id}".encode()


def _wrap(data_key: bytes, key_id: str, master: bytes) -> str:
    nonce = os.urandom(12)
    return base64.b64encode(nonce + AESGCM(master).encrypt(nonce, data_key, f"datakey|{key_id}".encode())).decode()


def _unwrap(wrapped: str, key_id: str, master: bytes) -> bytes:
    blob = base64.b64decode(wrapped)
    return AESGCM(master).decrypt(blob[:12], blob[12:], f"datakey|{key_id}".encode())


def create_data_key() -> str:
    """Create a new data key wrapped by the current master key and return its id."""
    key_id = "dk" + uuid.uuid4().hex[:16]
    data_key = AESGCM.generate_key(bit_length=256)
    masters = master_keys()
    current_id = next(iter(masters))
    DataKey.objects.create(key_id=key_id, wrapped_key=_wrap(data_key, key_id, masters[current_id]), master_key_id=current_id)
    return key_id


def rewrap_data_key(key_id: str) -> bool:
    """Rewrap a data key under the current master key; True when it changed."""
    row = DataKey.objects.select_for_update().get(key_id=key_id)
    masters = master_keys()
    current_id = next(iter(masters))
    if row.master_key_id == current_id:
        return False
    data_key = _data_key(key_id)
    row.wrapped_key = _wrap(data_key, key_id, masters[current_id])
    row.master_key_id = current_id
    row.save(update_fields=["wrapped_key", "master_key_id"])
    return True


def _data_key(key_id: str) -> bytes:
    with _lock:
        cached = _unwrapped.get(key_id)
    if cached is not None:
        return cached
    try:
        row = DataKey.objects.get(key_id=key_id)
    except DataKey.DoesNotExist as exc:
        raise DecryptionError(f"unknown data key {key_id}") from exc
    master = master_keys().get(row.master_key_id)
    if master is None:
        raise DecryptionError(f"data key {key_id} is wrapped by master key {row.master_key_id}, which is not configured")
    data_key = _unwrap(row.wrapped_key, key_id, master)
    with _lock:
        _unwrapped[key_id] = data_key
    return data_key


def active_key_id() -> str:
    """The newest unretired data key under the current master key, created on first use."""
    global _active
    now = time.monotonic()
    if _active is not None and _active[1] > now:
        return _active[0]
    key_id = DataKey.objects.filter(retired_at__isnull=True, master_key_id=current_master_key_id()).values_list("key_id", flat=True).first()
    if key_id is None:
        with transaction.atomic():
            key_id = create_data_key()
        # Cache only once committed: a rolled-back key must never become the active one.
        transaction.on_commit(lambda: set_active_key(key_id))
        return key_id
    _active = (key_id, now + _ACTIVE_KEY_TTL_SECONDS)
    return key_id


def set_active_key(key_id: str) -> None:
    global _active
    _active = (key_id, time.monotonic() + _ACTIVE_KEY_TTL_SECONDS)


def forget_keys() -> None:
    """Drop cached keys (tests, rotation)."""
    global _active
    with _lock:
        _unwrapped.clear()
    _active = None


def encrypt(plaintext: str, *, aad: bytes, key_id: str | None = None) -> str:
    key_id = key_id or active_key_id()
    nonce = os.urandom(12)
    blob = AESGCM(_data_key(key_id)).encrypt(nonce, plaintext.encode(), aad)
    return f"{PREFIX}.{key_id}.{base64.b64encode(nonce + blob).decode()}"


def key_id_of(token: str) -> str:
    return token.split(".", 2)[1]


def decrypt(token: str, *, aad: bytes) -> str:
    try:
        prefix, key_id, payload = token.split(".", 2)
    except ValueError as exc:
        raise DecryptionError("malformed ciphertext") from exc
    if prefix != PREFIX:
        raise DecryptionError(f"unknown ciphertext version {prefix}")
    blob = base64.b64decode(payload)
    try:
        return AESGCM(_data_key(key_id)).decrypt(blob[:12], blob[12:], aad).decode()
    except InvalidTag as exc:
        raise DecryptionError("ciphertext does not match its key or its row") from exc


def retire_unused_keys(*, in_use: set[str]) -> list[str]:
    retired = list(DataKey.objects.filter(retired_at__isnull=True).exclude(key_id__in=in_use).values_list("key_id", flat=True))
    DataKey.objects.filter(key_id__in=retired).update(retired_at=timezone.now())
    return retired
