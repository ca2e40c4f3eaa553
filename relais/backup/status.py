"""When the newest backup was made: read from the plaintext headers of the files in RELAIS_BACKUP_DIR (no key needed).

Cheap enough for the doctor and readiness checks: one small read per file, no decryption. A file counts when its
header parses and names the backup key configured here (a file made with a retired key cannot be restored by this
installation). Files appear only complete (written to a temporary name, then renamed), so a present file is whole.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from django.conf import settings

from relais.backup.fileformat import SUFFIX, BackupFileError, decode_backup_key, key_id, read_header


def backup_dir() -> Path | None:
    """RELAIS_BACKUP_DIR, or None when it is not configured (production without one: backups refuse to run)."""
    value = getattr(settings, "RELAIS_BACKUP_DIR", None)
    return Path(value) if value else None


def backup_files(folder: Path | None = None) -> list[tuple[datetime, Path]]:
    """Backups of this installation's key in ``folder`` (default RELAIS_BACKUP_DIR), oldest first, by header time."""
    folder = folder or backup_dir()
    if folder is None or not folder.is_dir():
        return []
    wanted = key_id(decode_backup_key(settings.RELAIS_BACKUP_KEY))
    found = []
    for path in folder.glob(f"*{SUFFIX}"):
        if not path.is_file() or path.is_symlink():
            continue
        try:
            with path.open("rb") as handle:
                header = read_header(handle)
        except (OSError, BackupFileError):
            continue
        if header.key_id == wanted:
            found.append((header.created_at, path))
    return sorted(found)


def last_backup_at() -> datetime | None:
    """Creation time (aware, UTC) of the newest backup in RELAIS_BACKUP_DIR, or None if there is none."""
    files = backup_files()
    return files[-1][0] if files else None
