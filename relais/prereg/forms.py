from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from relais.core.forms import FocusFirstErrorMixin
from relais.patients.forms import PatientForm

# The browser fills these in from the patient's saved details (WCAG 1.3.5: input purpose).
AUTOCOMPLETE = {
    "last_name": "family-name",
    "first_names": "given-name",
    "sex": "sex",
    "date_of_birth": "bday",
    "nir": "off",
    "address_line": "street-address",
    "postcode": "postal-code",
    "city": "address-level2",
    "country": "country",
    "phone": "tel",
    "email": "email",
}


def describe_errors(form: forms.Form) -> None:
    """Tie each field's error text to the field (aria-describedby, aria-invalid): screen readers read it with the field."""
    for name, field in form.fields.items():
        if name in (form._errors or {}):  # type: ignore[attr-defined]
            field.widget.attrs["aria-invalid"] = "true"
            # The error first, then the help text Django ties to the field by default (id_<name>_helptext).
            field.widget.attrs["aria-describedby"] = f"id_{name}_error" + (f" id_{name}_helptext" if field.help_text else "")


class PreRegistrationForm(PatientForm):
    """The patient's own form: the same fields and validation as registration at the counter (patients.identity)."""

    confirm_duplicate = None  # type: ignore[assignment]  # the counter decides on look-alikes, not the patient
    # The pharmacist checks the identity document and copies a passport's Latin spelling at the counter, not the patient.
    identity_verified = None  # type: ignore[assignment]
    latin_last_name = None  # type: ignore[assignment]
    latin_first_names = None  # type: ignore[assignment]
    send_result = forms.BooleanField(
        label=_("Send me the link to my result at this mobile phone number or email address"),
        required=False,
        help_text=_("Leave the phone and email empty if you do not want to receive it: the pharmacy will give you the result."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, purpose in AUTOCOMPLETE.items():
            field = self.fields[name]
            field.widget.attrs.pop("autofocus", None)  # the page opens on its explanation, not in a field
            field.widget.attrs["autocomplete"] = purpose
        for name in ("last_name", "first_names"):
            self.fields[name].help_text = _("As on your identity document.")
        # A text field, not a calendar: a birth year is quicker typed than scrolled to on a phone.
        self.fields["date_of_birth"].widget = forms.DateInput(
            attrs={"autocomplete": "bday", "inputmode": "numeric", "placeholder": "jj/mm/aaaa"}, format="%d/%m/%Y"
        )
        self.fields["date_of_birth"].help_text = _("Day/month/year, for example 31/12/1980.")
        self.fields["nir"].widget.attrs["inputmode"] = "numeric"
        self.fields["country"].help_text = _("Two letters, FR for France.")
        self.fields["email"].widget.attrs["autocapitalize"] = "none"

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        contact = bool(data.get("phone") or data.get("email"))
        if data.get("send_result") and not contact and "phone" not in self.errors and "email" not in self.errors:
            self.add_error("phone", _("Give a mobile phone number or an email address to receive your result."))
        elif contact and not data.get("send_result"):
            self.add_error("send_result", _("Tick this box to receive your result at the details you gave, or leave them empty."))
        return data

    def full_clean(self) -> None:
        super().full_clean()
        describe_errors(self)


class CodeForm(FocusFirstErrorMixin, forms.Form):
    code = forms.CharField(
        label=_("Pre-registration code"),
        max_length=12,
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "characters", "spellcheck": "false", "autofocus": True}),
    )
