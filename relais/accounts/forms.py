from __future__ import annotations

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.utils.translation import gettext_lazy as _

from relais.accounts.models import Role
from relais.accounts.validators import rpps_normalise
from relais.core.forms import FocusFirstErrorMixin


class EmailAuthenticationForm(AuthenticationForm):
    username = forms.EmailField(label=_("Email"), widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "username"}))


class TokenForm(FocusFirstErrorMixin, forms.Form):
    token = forms.RegexField(
        label=_("6-digit code"),
        regex=r"^\s*\d{6}\s*$",
        error_messages={"invalid": _("Enter the 6 digits shown by your authenticator app.")},
        widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


class AcceptInvitationForm(FocusFirstErrorMixin, forms.Form):
    full_name = forms.CharField(label=_("Full name"), max_length=200, widget=forms.TextInput(attrs={"autofocus": True}))
    rpps = forms.CharField(
        label=_("RPPS number"),
        required=False,
        max_length=20,
        help_text=_("Pharmacists: the 11 digits on your CPS card. It identifies you in the results sent to the national platform."),
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off"}),
    )
    password1 = forms.CharField(label=_("Password"), widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))
    password2 = forms.CharField(label=_("Password again"), widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))

    def clean_rpps(self) -> str:
        return rpps_normalise(self.cleaned_data.get("rpps", ""))

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if data.get("password1") and data.get("password1") != data.get("password2"):
            self.add_error("password2", _("The two passwords differ."))
        return data


class RppsForm(forms.Form):
    rpps = forms.CharField(label=_("RPPS number"), required=False, max_length=20)

    def clean_rpps(self) -> str:
        return rpps_normalise(self.cleaned_data.get("rpps", ""))


class MyRppsForm(FocusFirstErrorMixin, forms.Form):
    """The signed-in staff member's own RPPS number ("My account")."""

    rpps = forms.CharField(
        label=_("RPPS number"),
        required=False,
        max_length=20,
        help_text=_(
            "The 11 digits on your CPS card. It identifies you in the results sent to the national platform. Leave empty to remove it."
        ),
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off"}),
    )

    def clean_rpps(self) -> str:
        return rpps_normalise(self.cleaned_data.get("rpps", ""))


class InviteForm(FocusFirstErrorMixin, forms.Form):
    email = forms.EmailField(label=_("Email"), widget=forms.EmailInput(attrs={"autofocus": True}))
    role = forms.ChoiceField(
        label=_("Role"), choices=[(Role.PHARMACIST.value, Role.PHARMACIST.label), (Role.PHARMACY_ADMIN.value, Role.PHARMACY_ADMIN.label)]
    )


class PharmacyForm(FocusFirstErrorMixin, forms.Form):
    name = forms.CharField(label=_("Pharmacy name"), max_length=200, widget=forms.TextInput(attrs={"autofocus": True}))
    finess = forms.CharField(label=_("FINESS number"), max_length=12)
    address_line = forms.CharField(label=_("Address"), max_length=200)
    postcode = forms.CharField(label=_("Postcode"), max_length=10)
    city = forms.CharField(label=_("City"), max_length=100)
    phone = forms.CharField(
        label=_("Pharmacy phone"),
        required=False,
        max_length=30,
        help_text=_("Optional. Sent to the national platform as the pharmacy's phone number."),
        widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "off"}),
    )
    admin_email = forms.EmailField(label=_("Administrator's email"))


class PharmacyPhoneForm(forms.Form):
    """A pharmacy's phone on the operator's list (validated by services.pharmacy_phone_set)."""

    phone = forms.CharField(label=_("Pharmacy phone"), required=False, max_length=30)
