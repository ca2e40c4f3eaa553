"""Per-request context (request id, client IP, actor) that the audit layer reads."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class RequestContext:
    request_id: str = ""
    client_ip: str = ""
    channel: str = "system"


_context: contextvars.ContextVar[RequestContext] = contextvars.ContextVar("relais_request", default=RequestContext())  # noqa: B039 (frozen)


def current_context() -> RequestContext:
    return _context.get()


@contextmanager
def request_context(**values: str) -> Iterator[RequestContext]:
    token = _context.set(replace(_context.get(), **values))
    try:
        yield _context.get()
    finally:
        _context.reset(token)
