"""Envelope encryption for personal data: AES-256-GCM, associated data, key ids, wrapped data keys.

A stored value looks like ``v1.<key_id>.<base64(nonce || ciphertext+tag)>``. The associated data
binds it to its table, column and row, so a ciphertext copied to another row fails to decrypt.

Retention keys (``DataKey.expires_on`` set) encrypt the personal data whose retention ends that day. They are wrapped
by a key derived from the master key AND a random secret in a file of ``RELAIS_KEY_DIR`` (outside the database), so
destroying that file (``destroy_key``) makes every copy of the database, backups included, unable to decrypt them.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from relais.core.models import DataKey
from relais.core.secrets import decode_key

PREFIX = "v1"
_ACTIVE_KEY_TTL_SECONDS = 60
_lock = threading.Lock()
_unwrapped: dict[str, bytes] = {}
_active: tuple[str, float] | None = None
_retention_ids: dict[date, str] = {}


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


def key_dir() -> Path:
    """Where retention-key secrets live (mode 0700, files 0600); never inside the database or a served folder."""
    path = Path(settings.RELAIS_KEY_DIR)
    if not path.is_dir():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def _secret_path(key_id: str) -> Path:
    return key_dir() / f"{key_id}.secret"


def _kek(key_id: str, master: bytes, expires_on: date | None) -> bytes:
    """The key that wraps a data key: the master key, or for a retention key the master key mixed with its secret."""
    if expires_on is None:
        return master
    try:
        secret = _secret_path(key_id).read_bytes()
    except FileNotFoundError as exc:
        raise DecryptionError(f"data key {key_id} was destroyed (its secret is gone)") from exc
    return HKDF(algorithm=SHA256(), length=32, salt=secret, info=f"relais-retention-kek|{key_id}".encode()).derive(master)


def retention_key_id(day: date) -> str:
    """The retention key of ``day`` (never before tomorrow: past days' keys are the purge's to destroy), created once."""
    day = max(day, timezone.localdate() + timedelta(days=1))
    with _lock:
        cached = _retention_ids.get(day)
    if cached is not None:
        return cached
    key_id = DataKey.objects.filter(expires_on=day).values_list("key_id", flat=True).first()
    if key_id is not None:
        with _lock:
            _retention_ids[day] = key_id
        return key_id
    key_id = _create_retention_key(day)
    # Cache only once committed: a rolled-back key must never be handed out again.
    transaction.on_commit(lambda: _retention_ids.__setitem__(day, key_id))
    return key_id


def _create_retention_key(day: date) -> str:
    key_id = "dk" + uuid.uuid4().hex[:16]  # same shape as any data key: tools read ids, not kinds
    data_key = AESGCM.generate_key(bit_length=256)
    path = _secret_path(key_id)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, os.urandom(32))
        os.fsync(fd)
    finally:
        os.close(fd)
    masters = master_keys()
    current_id = next(iter(masters))
    wrapped = _wrap(data_key, key_id, _kek(key_id, masters[current_id], day))
    try:
        with transaction.atomic():
            DataKey.objects.create(key_id=key_id, wrapped_key=wrapped, master_key_id=current_id, expires_on=day)
    except IntegrityError:
        # Another process created this day's key first: use theirs, so the day has one key.
        path.unlink(missing_ok=True)
        return DataKey.objects.get(expires_on=day).key_id
    with _lock:
        _unwrapped[key_id] = data_key
    return key_id


def retention_day_of(key_id: str) -> date | None:
    """The day a retention key expires (None for an ordinary key or an unknown one)."""
    with _lock:
        for day, known in _retention_ids.items():
            if known == key_id:
                return day
    return DataKey.objects.filter(key_id=key_id).values_list("expires_on", flat=True).first()


def destroy_key(key_id: str) -> None:
    """Crypto-shred a retention key: overwrite and remove its secret, then delete its row. Secret first: a run killed
    in between leaves a row nobody can unwrap, which the next purge deletes."""
    path = _secret_path(key_id)
    if path.exists():
        with open(path, "r+b") as handle:
            handle.write(os.urandom(32))
            handle.flush()
            os.fsync(handle.fileno())
        path.unlink()
    DataKey.objects.filter(key_id=key_id).delete()
    with _lock:
        _unwrapped.pop(key_id, None)
        for day in [d for d, k in _retention_ids.items() if k == key_id]:
            del _retention_ids[day]


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
    row.wrapped_key = _wrap(data_key, key_id, _kek(key_id, masters[current_id], row.expires_on))
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
    try:
        data_key = _unwrap(row.wrapped_key, key_id, _kek(key_id, master, row.expires_on))
    except InvalidTag as exc:
        raise DecryptionError(f"data key {key_id} cannot be unwrapped (wrong master key or secret)") from exc
    with _lock:
        _unwrapped[key_id] = data_key
    return data_key


def active_key_id() -> str:
    """The newest unretired data key under the current master key, created on first use."""
    global _active
    now = time.monotonic()
    if _active is not None and _active[1] > now:
        return _active[0]
    key_id = (
        DataKey.objects.filter(retired_at__isnull=True, master_key_id=current_master_key_id(), expires_on__isnull=True)
        .values_list("key_id", flat=True)
        .first()
    )
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
        _retention_ids.clear()
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
    # Retention keys are never "active", so never retired: the purge destroys them on their day.
    ordinary = DataKey.objects.filter(retired_at__isnull=True, expires_on__isnull=True)
    retired = list(ordinary.exclude(key_id__in=in_use).values_list("key_id", flat=True))
    DataKey.objects.filter(key_id__in=retired).update(retired_at=timezone.now())
    return retired
