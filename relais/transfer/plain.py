"""Transport and receiver errors in plain words for pharmacists (French and English), the raw text kept for operators.

The outbox stores what went wrong as text: ``last_error`` for a failure Relais retries (written by the transports and
the reply readers), ``rejection_reason`` for a refusal (the receiver's own words, or one of Relais's reasons for not
sending). ``explain`` sorts such a text into a kind, each with a sentence saying what happened and what to do. Machine
codes (API, webhooks, metrics) are left as they are: this is only what a person reads.

tests/transfer/test_plain_errors.py reads every error text the transfer code can write and fails when one has no kind.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext_lazy as _

# Words a national platform uses when the identity is at fault: INS (identifiant national de santé) and its
# qualification, NIR, names, birth date, sex; HL7 PID and FHIR Patient locations. Accents are removed before matching.
_IDENTITY = re.compile(
    r"\b(ins|nir|matricule|identite|identity|patient\.|pid[-.]?\d*|nom|prenoms?|name|names|family|given"
    r"|naissance|birth|birthdate|date of birth|sexe|sex|gender)\b",
    re.IGNORECASE,
)

NO_REASON = "no reason given"  # what replies.http_rejection writes when the receiver gives none


def names_identity(reason: str) -> bool:
    """Whether a rejection reason points at the patient's identity ("INS non qualifiée", "PID-5: nom absent"...)."""
    plain = unicodedata.normalize("NFKD", reason or "").encode("ascii", "ignore").decode()
    plain = plain.replace(NO_REASON, "")  # Relais's own words for an empty refusal ("given" is a FHIR name part)
    return bool(_IDENTITY.search(plain))


@dataclass(frozen=True)
class ErrorKind:
    code: str  # stable, for tests and CSS; never shown alone
    sentence: Any  # lazy translation: what happened and what to do, for a pharmacist
    matches: Callable[[str], bool]
    outage: bool = False  # the platform cannot be reached: counts towards "unreachable since"
    action: str = "none"  # who acts: none (Relais retries) | pharmacy | operator
    show_raw: bool = False  # the raw text helps the pharmacist too (the receiver's own reason)


def _prefix(*patterns: str) -> Callable[[str], bool]:
    regex = re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)
    return lambda text: bool(regex.match(text))


# Failures Relais retries (OutboxMessage.last_error). First match wins.
RETRIED: tuple[ErrorKind, ...] = (
    ErrorKind(
        "unreachable",
        _("The national platform cannot be reached. Relais retries automatically; nothing to do."),
        _prefix(r"cannot connect to ", r"connection error: "),
        outage=True,
    ),
    ErrorKind(
        "no_answer",
        _("The national platform did not answer in time. Relais retries automatically; nothing to do."),
        _prefix(r"no (complete )?acknowledgement within ", r"no answer within ", r"exchange deadline passed"),
        outage=True,
    ),
    ErrorKind(
        "connection_lost",
        _("The connection to the national platform was cut before it answered. Relais retries automatically; nothing to do."),
        _prefix(r"connection closed without "),
        outage=True,
    ),
    ErrorKind(
        "platform_busy",
        _("The national platform is overloaded or out of order. Relais retries automatically; nothing to do."),
        _prefix(r"receiver answered \d+"),
        outage=True,
    ),
    ErrorKind(
        "certificate",
        _(
            "Relais could not check the national platform's security certificate, so nothing was sent. Relais retries "
            "automatically and the platform operators are alerted; nothing to do."
        ),
        _prefix(r"server certificate refused"),
        outage=True,
        action="operator",
    ),
    ErrorKind(
        "unreadable_answer",
        _("The national platform's answer could not be read. Relais sends the result again automatically; nothing to do."),
        _prefix(
            r"malformed (batch )?acknowledgement",
            r"malformed answer",
            r"acknowledgement too large",
            r"acknowledgement without MLLP start block",
            r"no acknowledgement in the batch reply",
            r"acknowledgement for another message",
        ),
    ),
    ErrorKind(
        "unexpected",
        _("Relais met an unexpected error while sending this result. It tries again automatically and the platform operators are alerted."),
        lambda text: "unexpected error" in text,
        action="operator",
    ),
)

# Refusals (OutboxMessage.rejection_reason): Relais's own reasons first, then the receiver's words. First match wins.
REFUSED: tuple[ErrorKind, ...] = (
    ErrorKind(
        "not_codable",
        _(
            "A value of this test cannot be coded for the national platform, so it was not sent. Correct the test or "
            "the patient's details, then send it again."
        ),
        _prefix(r"a value cannot be coded for the national platform"),
        action="pharmacy",
        show_raw=True,
    ),
    ErrorKind(
        "failed_validation",
        _(
            "The result could not be put into the national platform's format, so it was not sent. Check the test's "
            "details; if they are right, the platform operators must fix it."
        ),
        _prefix(r"the message failed validation before sending"),
        action="operator",
    ),
    ErrorKind(
        "gave_up",
        _(
            "Relais met unexpected errors while sending this result and stopped trying. The platform operators are "
            "alerted and will send it again."
        ),
        _prefix(r"gave up after errors"),
        action="operator",
    ),
    ErrorKind(
        "identity",
        _("The national platform refused the result: the patient's identity is not accepted (INS). Correct the identity."),
        names_identity,
        action="pharmacy",
        show_raw=True,
    ),
    ErrorKind(
        "http_refused",
        _("The national platform refused the result. Check the test and the patient's details, correct them, then send it again."),
        _prefix(r"HTTP \d+"),
        action="pharmacy",
        show_raw=True,
    ),
    ErrorKind(
        "refused_no_reason",
        _("The national platform refused the result without giving a reason. Check the test, then send it again."),
        _prefix(r"rejected( \(\w*\))?$"),
        action="pharmacy",
    ),
    ErrorKind(
        "refused",
        _("The national platform refused the result (its reason is below). Correct the test or the patient's details, then send it again."),
        lambda text: bool(text.strip()),
        action="pharmacy",
        show_raw=True,
    ),
)

UNKNOWN = ErrorKind(
    "unknown",
    _("An unexpected problem occurred with the national platform. Relais retries automatically; if it lasts, call the platform operators."),
    lambda text: True,
    action="operator",
    show_raw=True,
)
KINDS: dict[str, ErrorKind] = {kind.code: kind for kind in (*RETRIED, *REFUSED, UNKNOWN)}


@dataclass(frozen=True)
class PlainError:
    kind: ErrorKind
    raw: str  # kept for operators, and in a collapsed "details" for the pharmacist

    @property
    def code(self) -> str:
        return self.kind.code

    @property
    def sentence(self) -> str:
        return str(self.kind.sentence)

    def __str__(self) -> str:
        return self.sentence


def kind_of(text: str, *, refused: bool = False) -> ErrorKind:
    text = (text or "").strip()
    for kind in REFUSED if refused else RETRIED:
        if kind.matches(text):
            return kind
    return UNKNOWN


def explain(text: str, *, refused: bool = False) -> PlainError | None:
    """The plain version of a stored error text; None when there is none. ``refused``: a rejection_reason."""
    if not (text or "").strip():
        return None
    return PlainError(kind_of(text, refused=refused), text)


def is_outage(text: str) -> bool:
    """Whether a retried failure means the platform cannot be reached (connection, timeout, 5xx, certificate)."""
    return kind_of(text).outage
