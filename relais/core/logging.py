"""Logging helpers: every line carries the request id; log files are private to the service user."""

from __future__ import annotations

import json
import logging
import os
import re
import traceback
from datetime import UTC, datetime
from pathlib import Path

from relais.core.context import current_context

# Credentials that travel in a path: a patient's result link (/r/<token>) and a staff invitation (/invite/<token>/).
SECRET_PATHS = (
    (re.compile(r"/r/[^/?\s\"'\\]{8,}"), "/r/[link]"),
    (re.compile(r"/invite/[^/?\s\"'\\]{8,}"), "/invite/[token]"),
)
# C0 and C1 controls, DEL, the Unicode line and paragraph separators (any of them can start a forged log line), the
# bidirectional overrides (which make a line read differently from what it holds), and the backslash itself, so that
# an escape in the log always stands for a character that was escaped.
CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\\]")


def redact_secrets(text: str) -> str:
    for pattern, replacement in SECRET_PATHS:
        text = pattern.sub(replacement, text)
    return text


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char == "\\":
        return "\\\\"
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def escape_controls(text: str) -> str:
    """``text`` on one line: a control character becomes its escape (\\x0a, \\x1b, \\u2028), a backslash \\\\."""
    return CONTROLS.sub(_escape, text)


# Where a request keeps its id for log lines written after the middleware that set the context has returned (Django
# logs "Not Found" and "Internal Server Error" there, passing the request); not an HTTP_* key, so no client sets it.
REQUEST_ID_KEY = "RELAIS_REQUEST_ID"


def _request_id(record: logging.LogRecord) -> str:
    meta = getattr(getattr(record, "request", None), "META", None)
    if isinstance(meta, dict) and meta.get(REQUEST_ID_KEY):
        return str(meta[REQUEST_ID_KEY])
    return current_context().request_id


class RequestContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "relais_filtered", False):
            return True  # each handler runs the filter: escaping twice would double every backslash in the second log
        record.relais_filtered = True
        record.request_id = _request_id(record) or "-"
        # Values put into a message come from requests (Django's "Not Found: <path>", runserver's request line): a
        # token there is a credential, and a decoded %0a there would forge a second line. The message text is ours.
        if isinstance(record.args, tuple):
            record.args = tuple(escape_controls(redact_secrets(a)) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: escape_controls(redact_secrets(v)) if isinstance(v, str) else v for k, v in record.args.items()}
        if isinstance(record.msg, str):
            record.msg = redact_secrets(record.msg)
        return True


class PrivateFileHandler(logging.FileHandler):
    """A FileHandler that creates its folder and file with owner-only permissions."""

    def __init__(self, filename: str, **kwargs: object) -> None:
        path = Path(filename)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        super().__init__(filename, encoding="utf-8", delay=True)


class JsonFormatter(logging.Formatter):
    """One JSON object per line (production): ts, level, logger, message, request_id, and nothing else.

    No extra attribute of the record is written (a caller's ``extra=`` could carry request data), and an exception
    gives its class and the places of its frames, never its message, which may quote a value (see core.queue)."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            # The filter redacted tokens and escaped controls in the values; the message text around them is ours.
            "message": redact_secrets(record.getMessage()),
            "request_id": getattr(record, "request_id", None) or _request_id(record) or "-",
        }
        if record.exc_info and record.exc_info[0] is not None:
            payload["exc_type"] = record.exc_info[0].__name__
            payload["stack"] = [f"{Path(f.filename).name}:{f.lineno} in {f.name}" for f in traceback.extract_tb(record.exc_info[2])]
        # ASCII only: a U+2028 in a message stays an escape, so no log reader splits the line.
        return json.dumps(payload, ensure_ascii=True)
