"""What a screening is recorded from, and the time limits every entry point applies to it. Pure: no database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

CLOCK_SKEW = timedelta(minutes=2)  # a device clock a little ahead of ours is not a test from the future
MAX_AGE = timedelta(days=30)  # older than this is a typo in the date, not a late entry


@dataclass(frozen=True)
class ScreeningInput:
    device_id: str
    specimen_type: str
    sampled_at: datetime
    results: dict[str, str]  # analyte code -> SNOMED result code
    information_notice_given: bool  # the pharmacist gave the patient the information notice: required to record
    kit_lot: str = ""  # GS1 AI 10, as printed on the box
    kit_expiry: date | None = None  # GS1 AI 17; an expired kit is refused
    symptoms: str = ""  # a key of vocab.SYMPTOMS, or "" when not asked
    symptom_onset: date | None = None  # only with symptoms == "yes"

    def recorded_fields(self) -> dict[str, object]:
        """The columns a screening and a pending test (relais.testqueue) store as given."""
        return {
            "specimen_type": self.specimen_type,
            "sampled_at": self.sampled_at,
            "kit_lot": self.kit_lot,
            "kit_expiry": self.kit_expiry,
            "symptoms": self.symptoms,
            "symptom_onset": self.symptom_onset,
        }


def sampling_time_problem(sampled_at: datetime, *, now: datetime) -> str:
    """Either "future", "too_old" or "" (fine); each entry point words the problem its own way."""
    if sampled_at > now + CLOCK_SKEW:
        return "future"
    if sampled_at < now - MAX_AGE:
        return "too_old"
    return ""


KIT_LOT_MAX = 20
# GS1 "character set 82" (General Specifications, figure 7.11-1): what AI 10 may hold.
_GS1_CSET82 = frozenset("!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz")
MAX_SYMPTOM_DAYS = 365  # an onset longer ago is a typo in the year


def kit_lot_problem(lot: str) -> str:
    """Either "too_long", "characters" or "" (fine)."""
    if len(lot) > KIT_LOT_MAX:
        return "too_long"
    if any(ch not in _GS1_CSET82 for ch in lot):
        return "characters"
    return ""
