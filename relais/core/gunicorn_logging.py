"""Gunicorn access log without secrets in paths and without forged lines: result-link and invitation tokens are
replaced, and control characters in any field are escaped, before the line is written."""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from relais.core.logging import escape_controls, redact_secrets


def redact_path(path: str) -> str:
    return redact_secrets(path)


class RedactingLogger(Logger):
    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        # Every string atom: the path is decoded (%0a is a real newline there), headers and environ come from the client;
        # gunicorn's SafeAtoms escapes double quotes afterwards.
        return {key: escape_controls(redact_secrets(value)) if isinstance(value, str) else value for key, value in atoms.items()}
