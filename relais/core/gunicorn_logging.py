"""Gunicorn access log without secrets in paths: a patient's result-link token is replaced before the line is written."""

from __future__ import annotations

import re
from typing import Any

from gunicorn.glogging import Logger

RESULT_LINK = re.compile(r"^/r/[^/?]{8,}")


def redact_path(path: str) -> str:
    return RESULT_LINK.sub("/r/[link]", path)


class RedactingLogger(Logger):
    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        if isinstance(atoms.get("U"), str):
            atoms["U"] = redact_path(atoms["U"])
        if isinstance(atoms.get("r"), str):  # the request line: "GET /r/<token> HTTP/1.1"
            method, _, rest = atoms["r"].partition(" ")
            atoms["r"] = f"{method} {redact_path(rest)}"
        return atoms
