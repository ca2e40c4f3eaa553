"""The RPPS number of a health professional (Répertoire partagé des professionnels de santé)."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from stdnum import luhn


def rpps_normalise(value: str) -> str:
    """11 digits, the last a Luhn check digit over the first 10 (python-stdnum has no RPPS module: its luhn does the
    key). Spaces, dots and dashes are dropped; "" stays "" (the number is optional on an account)."""
    compact = re.sub(r"[\s.-]", "", value or "")
    if not compact:
        return ""
    if not re.fullmatch(r"\d{11}", compact):
        raise ValidationError(_("RPPS number: 11 digits, as on the CPS card (this one has %(n)s characters).") % {"n": len(compact)})
    if not luhn.is_valid(compact):
        raise ValidationError(_("RPPS number: the last digit (the key) does not match: check for a typing error."))
    return compact
