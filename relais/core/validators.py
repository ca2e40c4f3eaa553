"""Validators for French identifiers and contact details. Each returns the normalised value or raises."""

from __future__ import annotations

import json
import re
from datetime import date
from functools import cache
from pathlib import Path

import phonenumbers
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils.translation import gettext as _
from stdnum import luhn
from stdnum.exceptions import InvalidChecksum
from stdnum.exceptions import ValidationError as StdnumError
from stdnum.fr import nir as stdnum_nir


def finess_normalise(value: str) -> str:
    """FINESS: 9 characters (2A/2B allowed for Corsica), the last a Luhn key over the others."""
    compact = re.sub(r"[\s.-]", "", value or "").upper()
    if not re.fullmatch(r"(\d{2}|2A|2B)\d{7}", compact):
        raise ValidationError(_("A FINESS number has 9 characters: 2 for the department (2A/2B for Corsica) then 7 digits."))
    # Corsican departments count as 20 in the key computation.
    digits = compact.replace("2A", "20", 1).replace("2B", "20", 1) if compact[:2] in {"2A", "2B"} else compact
    if not luhn.is_valid(digits):
        raise ValidationError(_("This FINESS number's check digit is wrong: check the number on the licence."))
    return compact


def nir_normalise(value: str) -> str:
    compact = re.sub(r"[\s.-]", "", value or "").upper()
    if len(compact) != 15:
        raise ValidationError(_("A NIR has 15 characters (13 plus the 2-digit key); this one has %(n)s.") % {"n": len(compact)})
    try:
        return str(stdnum_nir.validate(compact))
    except StdnumError as exc:
        if isinstance(exc, InvalidChecksum):
            raise ValidationError(_("The NIR key (last 2 digits) does not match: check for a typing error.")) from exc
        raise ValidationError(_("This is not a valid NIR: 13 digits (2A/2B allowed for Corsica) and a 2-digit key.")) from exc


def nir_matches_identity(nir: str, *, sex: str, date_of_birth: date | None) -> None:
    """The NIR encodes sex (1 male, 2 female) and the year of birth; a mismatch is a typing error."""
    if sex in {"M", "F"} and nir[0] in "12" and {"M": "1", "F": "2"}[sex] != nir[0]:
        raise ValidationError(_("The NIR starts with %(d)s, which does not match the sex entered.") % {"d": nir[0]})
    if date_of_birth is not None and nir[1:3] != f"{date_of_birth.year % 100:02d}":
        raise ValidationError(_("The NIR's year digits (%(y)s) do not match the date of birth.") % {"y": nir[1:3]})


def phone_normalise(value: str, *, region: str = "FR") -> str:
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        raise ValidationError(_("Enter a phone number such as 06 12 34 56 78 or +33 6 12 34 56 78.")) from exc
    if not phonenumbers.is_valid_number(number):
        raise ValidationError(_("This phone number is not valid: check the number of digits."))
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def email_normalise(value: str) -> str:
    value = (value or "").strip()
    validate_email(value)
    local, _sep, domain = value.rpartition("@")
    return f"{local}@{domain.lower()}"


@cache
def country_codes() -> frozenset[str]:
    data = json.loads((Path(__file__).parent / "country-2-codes.json").read_text())
    return frozenset(data["valueSetValues"])


def country_normalise(value: str) -> str:
    code = (value or "").strip().upper()
    if code not in country_codes():
        raise ValidationError(_("Use a two-letter ISO country code, such as FR."))
    return code


def postcode_normalise(value: str, *, country: str) -> str:
    value = (value or "").strip()
    if country == "FR" and not re.fullmatch(r"\d{5}", value):
        raise ValidationError(_("A French postcode has 5 digits."))
    if len(value) > 16:
        raise ValidationError(_("This postcode is too long."))
    return value
