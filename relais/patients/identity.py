"""One identity normaliser for every road in: the web form, the API schema and the CSV parser all call identity_from.

Values come in as text (a date of birth may already be a date); what comes out is a PatientIdentity, or a
ValidationError whose error_dict names each field in error (codes kept: "required" lets the CSV parser say it its way)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext as _

from relais.core import blind_index, validators
from relais.patients.models import Sex
from relais.patients.services import PatientIdentity

DATE_FORMATS = ["%d/%m/%Y", "%Y-%m-%d", "%d-%m-%Y", "%d.%m.%Y"]
# The identity proper (what a pre-registration holds, the CSV's identity columns); PatientIdentity also carries
# identity_verified and the Latin spelling (OPTIONAL_FIELDS), given only by some roads.
OPTIONAL_FIELDS: tuple[str, ...] = ("identity_verified", "latin_last_name", "latin_first_names")
IDENTITY_FIELDS: tuple[str, ...] = tuple(name for name in PatientIdentity.__dataclass_fields__ if name not in OPTIONAL_FIELDS)
_YES = {"oui", "yes", "true", "1", "o", "y", "vrai"}
_NO = {"non", "no", "false", "0", "n", "faux"}
_LATIN = re.compile(r"[A-Za-z]+(?:[ '\-][A-Za-z]+)*")

# Presence, length, choice and date syntax, with Django's usual messages (the web form shows the same ones).
_SYNTAX: dict[str, forms.Field] = {
    "last_name": forms.CharField(max_length=100),
    "first_names": forms.CharField(max_length=150),
    "sex": forms.ChoiceField(choices=Sex.choices),
    "date_of_birth": forms.DateField(input_formats=DATE_FORMATS),
    "nir": forms.CharField(required=False, max_length=21),
    "address_line": forms.CharField(required=False, max_length=200),
    "postcode": forms.CharField(required=False, max_length=16),
    "city": forms.CharField(required=False, max_length=100),
    "country": forms.CharField(max_length=2),
    "phone": forms.CharField(required=False, max_length=32),
    "email": forms.CharField(required=False, max_length=254),
}


def check_birth_date(value: date) -> date:
    today = timezone.localdate()
    if value > today:
        raise ValidationError(_("The date of birth is in the future."))
    if value.year < today.year - 130:
        raise ValidationError(_("The date of birth is more than 130 years ago: check the year."))
    return value


def _with_letters(value: str, message: str) -> str:
    """Spaces collapsed; a name with no letter in any script ('-', '123', '?') would match every other such name."""
    value = " ".join(value.split())
    if not blind_index.normalise_name(value):
        raise ValidationError(message)
    return value


def normalise_phone(value: str) -> str:
    return validators.phone_normalise(value) if value.strip() else ""


def normalise_email(value: str) -> str:
    if not value.strip():
        return ""
    try:
        return validators.email_normalise(value)
    except ValidationError as exc:
        raise ValidationError(_("Enter an email address such as name@example.org.")) from exc


_NORMALISE: dict[str, Callable[[Any], Any]] = {
    "last_name": lambda v: _with_letters(v, _("The last name has no letter: type it as on the identity document.")),
    "first_names": lambda v: _with_letters(v, _("The first names have no letter: type them as on the identity document.")),
    "date_of_birth": check_birth_date,
    "nir": lambda v: validators.nir_normalise(v) if v.strip() else "",
    "country": validators.country_normalise,
    "phone": normalise_phone,
    "email": normalise_email,
}


def parse_verified(value: Any) -> bool | None:
    """identity_verified as given: a bool, or oui/non (yes/no, true/false, 1/0); None when absent or empty."""
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().casefold()
    if not text:
        return None
    if text in _YES:
        return True
    if text in _NO:
        return False
    raise ValidationError(_("Identity checked: answer yes or no (oui / non)."))


def latin_name(value: str, label: str) -> str:
    """The Latin spelling of a name as in a passport's machine-readable zone: letters A-Z, spaces, hyphens, apostrophes."""
    value = " ".join((value or "").split())
    if value and (len(value) > 150 or not _LATIN.fullmatch(value)):
        raise ValidationError(_("%(field)s: Latin letters A-Z only, as in the passport's machine-readable zone.") % {"field": label})
    return value


def identity_from(values: Mapping[str, Any]) -> PatientIdentity:
    """The normalised identity, or ValidationError({field: [errors]}) listing every field in error."""
    clean: dict[str, Any] = {}
    errors: dict[str, list[ValidationError]] = {}
    for name, syntax in _SYNTAX.items():
        raw = values.get(name)
        try:
            value = syntax.clean("" if raw is None else raw)
            normalise = _NORMALISE.get(name)
            clean[name] = normalise(value) if normalise is not None else value
        except ValidationError as exc:
            errors[name] = exc.error_list
    if clean.get("postcode") and "country" in clean:
        try:
            clean["postcode"] = validators.postcode_normalise(clean["postcode"], country=clean["country"])
        except ValidationError as exc:
            errors["postcode"] = exc.error_list
    if clean.get("nir") and "sex" in clean and "date_of_birth" in clean:
        try:
            validators.nir_matches_identity(clean["nir"], sex=clean["sex"], date_of_birth=clean["date_of_birth"])
        except ValidationError as exc:
            errors["nir"] = exc.error_list
    try:
        clean["identity_verified"] = parse_verified(values.get("identity_verified"))
    except ValidationError as exc:
        errors["identity_verified"] = exc.error_list
    for name, label in (("latin_last_name", _("Last name in Latin letters")), ("latin_first_names", _("First names in Latin letters"))):
        try:
            clean[name] = latin_name(str(values.get(name) or ""), label)
        except ValidationError as exc:
            errors[name] = exc.error_list
    if errors:
        raise ValidationError(errors)  # type: ignore[arg-type]
    return PatientIdentity(**clean)
