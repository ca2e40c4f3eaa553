"""Load secrets from the environment or from ``*_FILE`` paths, refusing unsafe ones in production."""

from __future__ import annotations

import base64
import os
import secrets as pysecrets
import stat
from pathlib import Path

SECRET_NAMES = (
    "DJANGO_SECRET_KEY",
    "RELAIS_MASTER_KEY",
    "RELAIS_BLIND_INDEX_KEY",
    "RELAIS_WEBHOOK_SIGNING_KEY",
    "RELAIS_AUDIT_SIGNING_KEY",
    "RELAIS_BACKUP_KEY",
)
# Values that must never protect real data: documentation examples and framework defaults.
KNOWN_DEFAULTS = {"", "changeme", "change-me", "secret", "password", "dev", "development", "test"}
# RELAIS_AUDIT_SIGNING_KEY is the 32-byte Ed25519 seed that signs audit checkpoints.
# RELAIS_BACKUP_KEY encrypts and authenticates backup files (relais/backup/); it must differ from every other key.
KEY_NAMES = (
    "RELAIS_MASTER_KEY",
    "RELAIS_BLIND_INDEX_KEY",
    "RELAIS_WEBHOOK_SIGNING_KEY",
    "RELAIS_AUDIT_SIGNING_KEY",
    "RELAIS_BACKUP_KEY",
)


class SecretError(Exception):
    """A secret is missing or unsafe; the message names it and says how to fix it."""


def generate_secret(name: str) -> str:
    if name in KEY_NAMES:
        return base64.urlsafe_b64encode(pysecrets.token_bytes(32)).decode()
    return pysecrets.token_urlsafe(50)


def decode_key(name: str, value: str) -> bytes:
    """Keys are 32 random bytes, urlsafe-base64 encoded."""
    try:
        raw = base64.urlsafe_b64decode(value.strip().encode())
    except (ValueError, TypeError) as exc:
        raise SecretError(f"{name} is not valid base64: generate one with `python -m relais.core.devsecrets`") from exc
    if len(raw) != 32:
        raise SecretError(f"{name} must decode to 32 bytes, got {len(raw)}")
    return raw


def _is_inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def _check_value(name: str, value: str) -> None:
    lowered = value.strip().lower()
    if lowered in KNOWN_DEFAULTS or lowered.startswith(("django-insecure", "changeme", "insecure")):
        raise SecretError(f"{name} is left at a default value; set a random one")
    if name in KEY_NAMES:
        decode_key(name, value)
    elif name == "DJANGO_SECRET_KEY" and (len(value) < 50 or len(set(value)) < 5):
        raise SecretError(f"{name} is too short or too simple (need 50+ random characters)")
    elif len(value) < 12:
        raise SecretError(f"{name} is too short (a provider's password or token has 12+ characters)")


def read_secret(
    name: str,
    *,
    production: bool,
    served_dirs: tuple[Path, ...] = (),
    dev_dir: Path | None = None,
    generate_missing: bool = False,
) -> str:
    """Return secret ``name`` from $NAME, $NAME_FILE or (development only) ``dev_dir/name``."""
    value = os.environ.get(name)
    file_path = os.environ.get(f"{name}_FILE")
    if value is not None and file_path:
        raise SecretError(f"set either {name} or {name}_FILE, not both")
    if value is None and not file_path and not production and dev_dir is not None:
        candidate = dev_dir / name.lower()
        if candidate.exists():
            file_path = str(candidate)
    if file_path:
        path = Path(file_path)
        if not path.is_file():
            raise SecretError(f"{name}_FILE points to {path}, which is not a readable file")
        if production:
            mode = path.stat().st_mode
            if mode & (stat.S_IROTH | stat.S_IWOTH):
                raise SecretError(f"{name}_FILE {path} is world-readable; run chmod 600 on it")
            for folder in served_dirs:
                if _is_inside(path, folder):
                    raise SecretError(f"{name}_FILE {path} is inside the served folder {folder}; move it out")
        value = path.read_text().strip()
    if value is None:
        if generate_missing:
            return generate_secret(name)
        raise SecretError(
            f"{name} is missing: set {name} or {name}_FILE"
            + ("" if production else " (or run `make secrets` to create development secrets in var/)")
        )
    if production:
        _check_value(name, value)
    elif name in KEY_NAMES:
        decode_key(name, value)
    return value
