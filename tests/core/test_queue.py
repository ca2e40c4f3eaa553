"""The one Retry-After parser and the one backoff: every queue waits the same way."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from hypothesis import given
from hypothesis import strategies as st

from relais.core.queue import RETRY_AFTER_LIMIT, backoff_seconds, error_summary, parse_retry_after

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_retry_after_in_seconds() -> None:
    assert parse_retry_after("120", now=NOW) == 120.0
    assert parse_retry_after(" 0 ", now=NOW) == 0.0
    assert parse_retry_after("1.5", now=NOW) == 1.5


def test_retry_after_as_an_http_date() -> None:
    assert parse_retry_after("Mon, 30 Nov 2026 12:02:00 GMT", now=NOW) == 120.0
    assert parse_retry_after("Mon, 30 Nov 2026 11:00:00 GMT", now=NOW) == 0.0  # in the past: at once
    assert parse_retry_after("Mon, 30 Nov 2026 12:00:30 -0000", now=NOW) == 30.0  # no zone said: GMT


def test_retry_after_garbage_negative_and_huge() -> None:
    for value in (None, "", "  ", "soon", "-5", "1e3", "inf", "nan", "12 s", "Mon, 99 Nov 2026 12:00:00 GMT"):
        assert parse_retry_after(value, now=NOW) is None, value
    assert parse_retry_after("999999999", now=NOW) == RETRY_AFTER_LIMIT
    assert parse_retry_after("9" * 5000, now=NOW) == RETRY_AFTER_LIMIT  # longer than int() accepts
    assert parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now=NOW) == RETRY_AFTER_LIMIT


@given(st.text(max_size=60))
def test_retry_after_never_raises_and_stays_in_bounds(value: str) -> None:
    seconds = parse_retry_after(value, now=NOW)
    assert seconds is None or (math.isfinite(seconds) and 0 <= seconds <= RETRY_AFTER_LIMIT)


@given(st.integers(min_value=0, max_value=10**6))
def test_retry_after_seconds_round_trip(seconds: int) -> None:
    assert parse_retry_after(str(seconds), now=NOW) == min(seconds, RETRY_AFTER_LIMIT)


@given(st.integers(min_value=0, max_value=5 * 3600))
def test_retry_after_date_round_trip(seconds: int) -> None:
    assert parse_retry_after(format_datetime(NOW + timedelta(seconds=seconds), usegmt=True), now=NOW) == seconds


@given(
    st.integers(min_value=-5, max_value=10**6),
    st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
)
def test_backoff_grows_within_the_cap_and_honours_retry_after(attempts: int, retry_after: float | None) -> None:
    delay = backoff_seconds(attempts, base=2, cap=600, retry_after=retry_after)
    ceiling = min(600, 2 * 2 ** max(0, attempts - 1))
    assert math.isfinite(delay) and ceiling / 2 <= delay <= 600
    if retry_after is not None and math.isfinite(retry_after) and retry_after > 0:
        assert delay >= min(retry_after, 600)  # a receiver's Retry-After is a floor, never beyond our cap


def test_error_summary_names_the_class_and_place_never_the_message() -> None:
    try:
        raise ValueError("Dupont Jean, born 1985-03-12")
    except ValueError as exc:
        summary = error_summary(exc)
    assert summary.startswith("ValueError in test_error_summary_names_the_class_and_place_never_the_message (test_queue.py:")
    assert "Dupont" not in summary and "1985" not in summary
