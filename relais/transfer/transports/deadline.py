"""One deadline per exchange (connect, send, acknowledgement): socket timeouts alone bound each read,
so a peer trickling one byte at a time could hold a connection, and the worker, forever."""

from __future__ import annotations

import time

CLOCK_SLACK = 0.01  # a timer may fire a hair early; that is still the deadline


def next_timeout(until: float, idle: float) -> float:
    """Timeout for the next socket operation: the idle timeout, cut to what is left before ``until`` (monotonic)."""
    remaining = until - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("exchange deadline passed")
    return min(idle, remaining)


def timeout_reason(*, until: float, deadline: float, idle_reason: str) -> str:
    """Why a timed-out exchange was abandoned, as recorded on the outbox row."""
    if time.monotonic() >= until - CLOCK_SLACK:
        return f"no complete acknowledgement within {deadline:g} s"
    return idle_reason
