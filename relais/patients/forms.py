from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from relais.core import validators
from relais.core.forms import FocusFirstErrorMixin
from relais.patients.identity import DATE_FORMATS, identity_from, normalise_email, normalise_phone
from relais.patients.models import Sex
from relais.patients.services import PatientIdentity


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
    confirm_duplicate = forms.BooleanField(required=False, widget=forms.HiddenInput())

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        try:  # the rules every road shares (API, CSV): see patients.identity
            self._identity = identity_from(data)
        except ValidationError as exc:
            for name, errors in exc.error_dict.items():
                if name not in self.errors:  # a field that did not parse already says why
                    self.add_error(name, errors)
        else:
            data.update(vars(self._identity))
        return data

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
