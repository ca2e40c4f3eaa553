from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from relais.core import blind_index, validators
from relais.core.forms import FocusFirstErrorMixin
from relais.patients.models import Sex
from relais.patients.services import PatientIdentity

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

DATE_FORMATS = ["%d/%m/%Y", "%Y-%m-%d", "%d-%m-%Y", "%d.%m.%Y"]


def check_birth_date(value: date) -> date:
    today = timezone.localdate()
    if value > today:
        raise ValidationError(_("The date of birth is in the future."))
    if value.year < today.year - 130:
        raise ValidationError(_("The date of birth is more than 130 years ago: check the year."))
    return value


def with_letters(value: str, message: StrOrPromise) -> str:
    """Spaces collapsed; a name with no letter in any script ('-', '123', '?') would match every other such name."""
    value = " ".join(value.split())
    if not blind_index.normalise_name(value):
        raise ValidationError(message)
    return value


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

    def clean_last_name(self) -> str:
        return with_letters(self.cleaned_data["last_name"], _("The last name has no letter: type it as on the identity document."))

    def clean_first_names(self) -> str:
        return with_letters(self.cleaned_data["first_names"], _("The first names have no letter: type them as on the identity document."))

    def clean_date_of_birth(self) -> date:
        return check_birth_date(self.cleaned_data["date_of_birth"])

    def clean_nir(self) -> str:
        value = self.cleaned_data["nir"]
        return validators.nir_normalise(value) if value.strip() else ""

    def clean_country(self) -> str:
        return validators.country_normalise(self.cleaned_data["country"])

    def clean_phone(self) -> str:
        value = self.cleaned_data["phone"]
        return validators.phone_normalise(value) if value.strip() else ""

    def clean_email(self) -> str:
        value = self.cleaned_data["email"]
        if not value.strip():
            return ""
        try:
            return validators.email_normalise(value)
        except ValidationError as exc:
            raise ValidationError(_("Enter an email address such as name@example.org.")) from exc

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("postcode") and "country" in data:
            try:
                data["postcode"] = validators.postcode_normalise(data["postcode"], country=data["country"])
            except ValidationError as exc:
                self.add_error("postcode", exc)
        if data.get("nir") and "sex" in data and "date_of_birth" in data:
            try:
                validators.nir_matches_identity(data["nir"], sex=data["sex"], date_of_birth=data["date_of_birth"])
            except ValidationError as exc:
                self.add_error("nir", exc)
        return data

    def identity(self) -> PatientIdentity:
        data = self.cleaned_data
        return PatientIdentity(**{k: data[k] for k in PatientIdentity.__dataclass_fields__})


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


class ContactForm(FocusFirstErrorMixin, forms.Form):
    phone = PatientForm.base_fields["phone"]
    email = PatientForm.base_fields["email"]
    clean_phone = PatientForm.clean_phone
    clean_email = PatientForm.clean_email
