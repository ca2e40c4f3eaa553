"""Why a patient message failed, in plain words for the pharmacist (French and English); the raw text stays beside it
in a details block. The texts come from relais/notify/channels.py and services.py (tests/notify/test_plain_errors.py
reads them all and fails when one has no sentence here)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext_lazy as _

from relais.notify.services import IN_DOUBT


@dataclass(frozen=True)
class NotifyErrorKind:
    code: str
    sentence: Any  # lazy translation
    pattern: re.Pattern[str]


def _kind(code: str, sentence: Any, pattern: str) -> NotifyErrorKind:
    return NotifyErrorKind(code, sentence, re.compile(pattern))


KINDS: tuple[NotifyErrorKind, ...] = (
    _kind(
        "in_doubt", _("Relais stopped while sending this message; it is sent again and the patient receives it once."), re.escape(IN_DOUBT)
    ),
    _kind("sms_busy", _("The SMS provider is busy. Relais tries again automatically; nothing to do."), r"SMS gateway answered (429|5\d\d)"),
    _kind(
        "sms_refused",
        _("The SMS provider refused the message, often because of a wrong number. Check the phone number, then send a new link."),
        r"SMS gateway answered \d+",
    ),
    _kind(
        "sms_unreachable",
        _("The SMS provider cannot be reached. Relais tries again automatically; nothing to do."),
        r"SMS gateway unreachable",
    ),
    _kind(
        "mail_address_refused",
        _("The email address was refused by the patient's mail server. Check the address, then send a new link."),
        r"mail server refused the address",
    ),
    _kind(
        "mail_deferred",
        _("The patient's mail server postponed the message. Relais tries again automatically; nothing to do."),
        r"mail server (deferred the address|answered 4\d\d|answered 554)",
    ),
    _kind(
        "mail_refused",
        _("The mail server refused the message. Check the email address, then send a new link."),
        r"mail server answered \d+",
    ),
    _kind(
        "mail_unreachable",
        _("The mail server cannot be reached. Relais tries again automatically; nothing to do."),
        r"mail server unreachable",
    ),
    _kind(
        "unexpected",
        _("An unexpected error occurred while sending this message. Relais tries again and the platform operators are alerted."),
        r".*unexpected error",
    ),
)
UNKNOWN = NotifyErrorKind(
    "unknown", _("The message could not be sent yet. Relais tries again; if it lasts, send a new link."), re.compile("")
)


@dataclass(frozen=True)
class PlainNotifyError:
    kind: NotifyErrorKind
    raw: str

    @property
    def code(self) -> str:
        return self.kind.code

    @property
    def sentence(self) -> str:
        return str(self.kind.sentence)

    def __str__(self) -> str:
        return self.sentence


def kind_of(text: str) -> NotifyErrorKind:
    for kind in KINDS:
        if kind.pattern.match(text or ""):
            return kind
    return UNKNOWN


def explain(text: str) -> PlainNotifyError | None:
    if not (text or "").strip():
        return None
    return PlainNotifyError(kind_of(text), text)
