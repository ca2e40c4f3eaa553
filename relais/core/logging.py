"""Logging helpers: every line carries the request id; log files are private to the service user."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from relais.core.context import current_context

RESULT_LINK = re.compile(r"/r/[^/?\s\"']{8,}")


class RequestContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_context().request_id or "-"
        # A patient's result-link token is a credential: never written to a log (e.g. Django's "Gone: /r/<token>").
        if isinstance(record.args, tuple):
            record.args = tuple(RESULT_LINK.sub("/r/[link]", a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = RESULT_LINK.sub("/r/[link]", record.msg)
        return True


class PrivateFileHandler(logging.FileHandler):
    """A FileHandler that creates its folder and file with owner-only permissions."""

    def __init__(self, filename: str, **kwargs: object) -> None:
        path = Path(filename)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        super().__init__(filename, encoding="utf-8", delay=True)
