"""Create development secrets under a folder (default var/secrets), mode 0600, never overwriting."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from relais.core.secrets import SECRET_NAMES, generate_secret

# Optional in production; made for development so /metrics can be tried with var/secrets/relais_metrics_token.
DEV_ONLY_SECRETS = ("RELAIS_METRICS_TOKEN",)


def ensure_dev_secrets(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    created = []
    for name in (*SECRET_NAMES, *DEV_ONLY_SECRETS):
        path = folder / name.lower()
        if path.exists():
            os.chmod(path, 0o600)
            continue
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(generate_secret(name) + "\n")
        created.append(path)
    return created


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "var/secrets")
    for path in ensure_dev_secrets(target):
        print(f"created {path} (mode 0600)")
