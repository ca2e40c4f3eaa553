from __future__ import annotations

import functools
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from relais.certificates import icao_coverage_data
from relais.certificates.icao_coverage import regex_class
from relais.certificates.transliteration import untransliterable
from relais.core import validators
from relais.core.forms import FocusFirstErrorMixin
from relais.patients.identity import DATE_FORMATS, identity_from, normalise_email, normalise_phone
from relais.patients.models import Sex
from relais.patients.services import PatientIdentity

LATIN_FIELDS = ("latin_last_name", "latin_first_names")


class LatinNameField(forms.CharField):
    """A name's Latin spelling: rendered always, inside a ``hidden`` block while the name does not need it
    (form_fields.html); static/latin-reveal.js shows it as soon as the typed name does."""

    hidden_until_needed = False


@functools.cache
def _latin_rule_attrs() -> dict[str, str]:
    """The Python rule as data for the browser (see relais.certificates.icao_coverage)."""
    return {
        "data-latin-uncovered": regex_class(icao_coverage_data.UNCOVERED),
        "data-latin-producing": regex_class(icao_coverage_data.PRODUCING),
        "data-latin-blank": regex_class(icao_coverage_data.BLANK),
    }


class PatientForm(FocusFirstErrorMixin, forms.Form):
    last_name = forms.CharField(
        label=_("Last name"), max_length=100, widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "off"})
    )
    first_names = forms.CharField(label=_("First names"), max_length=150, widget=forms.TextInput(attrs={"autocomplete": "off"}))
    sex = forms.ChoiceField(label=_("Sex"), choices=Sex.choices)
    date_of_birth = forms.DateField(
        label=_("Date of birth"), input_formats=DATE_FORMATS, widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )
    nir = forms.CharField(label=_("Social security number (NIR)"), required=False, max_length=21, help_text=_("15 characters, optional"))
    address_line = forms.CharField(label=_("Address"), required=False, max_length=200)
    postcode = forms.CharField(label=_("Postcode"), required=False, max_length=16)
    city = forms.CharField(label=_("City"), required=False, max_length=100)
    country = forms.CharField(label=_("Country"), initial="FR", max_length=2)
    phone = forms.CharField(label=_("Mobile phone"), required=False, max_length=32, widget=forms.TextInput(attrs={"type": "tel"}))
    email = forms.CharField(label=_("Email"), required=False, max_length=254, widget=forms.EmailInput())
    # Shown only when the name has letters no ICAO 9303 table transliterates (CJK, Hebrew...): the EU certificate needs
    # the Latin spelling, which the pharmacist copies from the passport's machine-readable zone. The server shows them
    # after a submit; static/latin-reveal.js while typing, with the same rule (data-latin-* attributes).
    latin_last_name = LatinNameField(
        label=_("Last name in Latin letters"),
        required=False,
        max_length=150,
        help_text=_("As in the passport's machine-readable zone (the lines with <<<): the certificate prints it."),
        widget=forms.TextInput(attrs={"autocomplete": "off", "lang": "en"}),
    )
    latin_first_names = LatinNameField(
        label=_("First names in Latin letters"),
        required=False,
        max_length=150,
        widget=forms.TextInput(attrs={"autocomplete": "off", "lang": "en"}),
    )
    identity_verified = forms.BooleanField(
        label=_("I checked the identity on an identity document (ID card, passport, residence permit)"), required=False
    )
    confirm_duplicate = forms.BooleanField(required=False, widget=forms.HiddenInput())

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "latin_last_name" in self.fields:
            hidden = not self.needs_latin()
            for name in LATIN_FIELDS:
                field = self.fields[name]
                assert isinstance(field, LatinNameField)
                field.hidden_until_needed = hidden
            self.fields["last_name"].widget.attrs.update({"data-latin-source": "", **_latin_rule_attrs()})
            self.fields["first_names"].widget.attrs["data-latin-source"] = ""
            self.fields["latin_last_name"].widget.attrs["data-latin-revealed"] = _(
                "This name has letters the EU certificate cannot spell in Latin: the Latin spelling fields are now shown."
            )

    def needs_latin(self) -> bool:
        """The name (as submitted, or as recorded for a correction) needs a Latin spelling, or one was given."""
        source = self.data if self.is_bound else self.initial
        names = [str(source.get(name) or "") for name in ("last_name", "first_names")]
        return any(name.strip() and untransliterable(name) for name in names) or any(source.get(name) for name in LATIN_FIELDS)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        try:  # the rules every road shares (API, CSV): see patients.identity
            self._identity = identity_from(data)
        except ValidationError as exc:
            for name, errors in exc.error_dict.items():
                if name in self.fields and name not in self.errors:  # a field that did not parse already says why
                    self.add_error(name, errors)
                elif name not in self.fields:
                    self.add_error(None, errors)
        else:
            data.update(vars(self._identity))
            if "latin_last_name" in self.fields:
                self._require_latin(data)
        return data

    def _require_latin(self, data: dict[str, Any]) -> None:
        """A name in a script no table covers needs its Latin spelling: a certificate is never issued without one."""
        for name, latin in (("last_name", "latin_last_name"), ("first_names", "latin_first_names")):
            if untransliterable(data.get(name) or "") and not data.get(latin):
                field = self.fields[latin]
                assert isinstance(field, LatinNameField)
                field.hidden_until_needed = False
                self.add_error(
                    latin,
                    _(
                        "This name has letters the EU certificate cannot spell in Latin: "
                        "enter the Latin spelling from the passport's machine-readable zone."
                    ),
                )

    def identity(self) -> PatientIdentity:
        return self._identity


class PatientSearchForm(FocusFirstErrorMixin, forms.Form):
    nir = forms.CharField(
        label=_("NIR"), required=False, max_length=21, widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "off"})
    )
    last_name = forms.CharField(label=_("Last name"), required=False, max_length=100, widget=forms.TextInput(attrs={"autocomplete": "off"}))
    date_of_birth = forms.DateField(
        label=_("Date of birth"),
        required=False,
        input_formats=DATE_FORMATS,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )

    def clean_nir(self) -> str:
        value = self.cleaned_data["nir"]
        return validators.nir_normalise(value) if value.strip() else ""

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not data.get("nir") and not (data.get("last_name") and data.get("date_of_birth")) and not self.errors:
            raise ValidationError(_("Search by NIR, or by last name and date of birth."))
        return data


class PatientFindForm(FocusFirstErrorMixin, forms.Form):
    """Any of: last name (alone or with first name), date of birth, NIR, phone. Accents, case and hyphens do not matter."""

    last_name = forms.CharField(
        label=_("Last name"), required=False, max_length=100, widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "off"})
    )
    first_names = forms.CharField(
        label=_("First name"), required=False, max_length=150, widget=forms.TextInput(attrs={"autocomplete": "off"})
    )
    date_of_birth = forms.DateField(
        label=_("Date of birth"),
        required=False,
        input_formats=DATE_FORMATS,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    nir = forms.CharField(label=_("NIR"), required=False, max_length=21, widget=forms.TextInput(attrs={"autocomplete": "off"}))
    phone = forms.CharField(
        label=_("Phone"), required=False, max_length=32, widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "off"})
    )

    def clean_nir(self) -> str:
        value = self.cleaned_data["nir"]
        return validators.nir_normalise(value) if value.strip() else ""

    def clean_phone(self) -> str:
        return normalise_phone(self.cleaned_data["phone"])

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        if data.get("first_names") and not data.get("last_name"):
            self.add_error("last_name", _("Give the last name with the first name."))
        elif not any(data.get(name) for name in ("last_name", "date_of_birth", "nir", "phone")):
            raise ValidationError(_("Search by last name, date of birth, NIR or phone."))
        return data


class ContactForm(FocusFirstErrorMixin, forms.Form):
    phone = PatientForm.base_fields["phone"]
    email = PatientForm.base_fields["email"]

    def clean_phone(self) -> str:
        return normalise_phone(self.cleaned_data["phone"])

    def clean_email(self) -> str:
        return normalise_email(self.cleaned_data["email"])
