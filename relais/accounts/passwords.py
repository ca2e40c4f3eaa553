"""Refuse passwords that are common ones in disguise: leetspeak, capitals, years and symbols added."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from django.contrib.auth.password_validation import CommonPasswordValidator
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i", "8": "b"})
SEQUENCES = ("abcdefghijklmnopqrstuvwxyz", "qwertyuiopasdfghjklzxcvbnm", "azertyuiopqsdfghjklmwxcvbn", "01234567890")
EXTRA_WORDS = {"relais", "pharmacie", "pharmacy", "covid", "sidep", "motdepasse", "bonjour", "soleil"}


@cache
def _common() -> frozenset[str]:
    return frozenset(CommonPasswordValidator().passwords) | EXTRA_WORDS


def _core(password: str) -> set[str]:
    lowered = password.lower()
    stripped = re.sub(r"[\d\W_]+$", "", re.sub(r"^[\d\W_]+", "", lowered))
    candidates = {lowered, stripped, lowered.translate(LEET), stripped.translate(LEET)}
    candidates |= {re.sub(r"[^a-z]", "", c) for c in set(candidates)}
    return {c for c in candidates if c}


class BreachedPatternValidator:
    def validate(self, password: str, user: Any = None) -> None:
        common = _common()
        if any(core in common for core in _core(password)):
            raise ValidationError(
                _("This password is a common password with small changes; choose a passphrase of unrelated words."),
                code="password_breached_pattern",
            )
        lowered = password.lower()
        if len(set(lowered)) < 5:
            raise ValidationError(_("This password repeats too few characters."), code="password_repetitive")
        for sequence in SEQUENCES:
            for start in range(len(sequence) - 5):
                if sequence[start : start + 6] in lowered:
                    raise ValidationError(_("This password contains a keyboard or alphabet sequence."), code="password_sequence")

    def get_help_text(self) -> str:
        return _("Your password can't be a common password with letters swapped for digits or a year added.")
