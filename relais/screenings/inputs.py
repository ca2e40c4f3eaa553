"""What a screening is recorded from, and the time limits every entry point applies to it. Pure: no database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

CLOCK_SKEW = timedelta(minutes=2)  # a device clock a little ahead of ours is not a test from the future
MAX_AGE = timedelta(days=30)  # older than this is a typo in the date, not a late entry


@dataclass(frozen=True)
class ScreeningInput:
    device_id: str
    specimen_type: str
    sampled_at: datetime
    results: dict[str, str]  # analyte code -> SNOMED result code
    information_notice_given: bool  # the pharmacist gave the patient the information notice: required to record


def sampling_time_problem(sampled_at: datetime, *, now: datetime) -> str:
    """Either "future", "too_old" or "" (fine); each entry point words the problem its own way."""
    if sampled_at > now + CLOCK_SKEW:
        return "future"
    if sampled_at < now - MAX_AGE:
        return "too_old"
    return ""
