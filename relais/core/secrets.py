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
    """Inside ``folder`` as given or once links are followed, on either side: a link placed in a served folder that
    points elsewhere is served all the same."""
    given = Path(os.path.abspath(path))
    for candidate in {given, path.resolve()}:
        for base in {Path(os.path.abspath(folder)), folder.resolve()}:
            if candidate.is_relative_to(base):
                return True
    return False


def _periodic(data: bytes) -> bool:
    """The value is a shorter pattern repeated (a period of at most half its length)."""
    return any(data == (data[:p] * (len(data) // p + 1))[: len(data)] for p in range(1, len(data) // 2 + 1))


def _repeats_window(data: bytes, width: int) -> bool:
    seen: set[bytes] = set()
    for i in range(len(data) - width + 1):
        window = data[i : i + width]
        if window in seen:
            return True
        seen.add(window)
    return False


def _weak_bytes(data: bytes, *, window: int) -> str | None:
    """Why random bytes (or characters) cannot be random, or None. Random values of the sizes we use pass these with
    odds of failure below one in ten million (a repeated 4-byte window in 32 bytes: about 1e-7)."""
    if not data:
        return "is empty"
    if len(set(data)) == 1:
        return "is all zero bytes" if data[0] == 0 else "is one character or byte repeated"
    if _periodic(data):
        return "is a short pattern repeated"
    if len(set(data)) < min(16, len(data) // 3):
        return "has too few distinct characters to be random"
    if _repeats_window(data, window):
        return "repeats a sequence inside it"
    if any(len({data[i + 1] - data[i] for i in range(j, j + 5)}) == 1 for j in range(len(data) - 5)):
        return "holds a run like abcdef"
    return None


def secret_weakness(name: str, value: str) -> str | None:
    """Why ``value`` is unsafe as secret ``name``, or None; the reason never quotes the value."""
    stripped = value.strip()
    lowered = stripped.lower()
    if lowered in KNOWN_DEFAULTS or lowered.startswith(("django-insecure", "changeme", "insecure")):
        return "is left at a default value; set a random one"
    if name in KEY_NAMES:
        try:
            raw = decode_key(name, value)
        except SecretError as exc:
            return str(exc).removeprefix(f"{name} ")
        return _weak_bytes(raw, window=4)
    minimum = 50 if name == "DJANGO_SECRET_KEY" else 12
    if len(stripped) < minimum:
        return f"is too short (need {minimum}+ random characters)"
    reason = _weak_bytes(stripped.encode(), window=8)
    return f"is too simple: it {reason}" if reason else None


def _forms(name: str, value: str) -> set[str]:
    """The ways a value may appear inside another: as given, and for a key its raw bytes in hex and in base64."""
    forms = {value.strip()}
    if name in KEY_NAMES:
        try:
            raw = decode_key(name, value)
        except SecretError:
            return forms
        forms |= {raw.hex(), base64.b64encode(raw).decode().rstrip("="), base64.urlsafe_b64encode(raw).decode().rstrip("=")}
    return {f for f in forms if len(f) >= 16}


def secret_conflicts(values: dict[str, str]) -> list[str]:
    """Pairs of secrets that are the same or where one holds the other: one leak would give both."""
    problems = []
    names = sorted(values)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            a, b = values[first].strip(), values[second].strip()
            if not a or not b:
                continue
            if a == b:
                problems.append(f"{first} and {second} must differ (they are the same)")
            elif any(f in b for f in _forms(first, a)):
                problems.append(f"{second} contains {first}: they must differ entirely")
            elif any(f in a for f in _forms(second, b)):
                problems.append(f"{first} contains {second}: they must differ entirely")
    return problems


def file_problem(name: str, path: Path, *, served_dirs: tuple[Path, ...] = (), uid: int | None = None) -> str | None:
    """Why the file holding secret ``name`` is unsafe (production), or None: a link, inside a served folder (as given
    or resolved), readable or writable by anyone but its owner, or owned by another user than the service's."""
    for folder in served_dirs:
        if _is_inside(path, folder):
            return f"{name} file {path} is inside the served folder {folder}; move it out"
    if path.is_symlink():
        return f"{name} file {path} is a symbolic link; give the path of the file itself"
    try:
        info = path.stat()
    except OSError:
        return f"{name} file {path} is not a readable file"
    if not stat.S_ISREG(info.st_mode):
        return f"{name} file {path} is not a regular file"
    if info.st_mode & (stat.S_IROTH | stat.S_IWOTH):
        return f"{name} file {path} is world-readable; run chmod 600 on it"
    if info.st_mode & 0o077:
        return f"{name} file {path} is readable or writable by its group; run chmod 600 on it"
    owner = os.geteuid() if uid is None else uid
    if info.st_uid != owner:
        return f"{name} file {path} belongs to uid {info.st_uid}, not the service user (uid {owner}); chown it"
    return None


def _check_value(name: str, value: str) -> None:
    reason = secret_weakness(name, value)
    if reason:
        raise SecretError(f"{name} {reason}")


# Every secret read in this process, with the file it came from (None: the environment or generated): the production
# start-up check compares them pairwise and doctor re-checks them.
_READ: dict[str, tuple[str, Path | None]] = {}


def secrets_read() -> dict[str, tuple[str, Path | None]]:
    return dict(_READ)


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
    path: Path | None = None
    if file_path:
        path = Path(file_path)
        if production:
            problem = file_problem(name, path, served_dirs=served_dirs)
            if problem:
                raise SecretError(problem)
        if not path.is_file():
            raise SecretError(f"{name}_FILE points to {path}, which is not a readable file")
        value = path.read_text().strip()
    if value is None:
        if generate_missing:
            value = generate_secret(name)
            _READ[name] = (value, None)
            return value
        raise SecretError(
            f"{name} is missing: set {name} or {name}_FILE"
            + ("" if production else " (or run `make secrets` to create development secrets in var/)")
        )
    if production:
        _check_value(name, value)
    elif name in KEY_NAMES:
        decode_key(name, value)
    _READ[name] = (value, path)
    return value
