from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from relais.core.forms import FocusFirstErrorMixin
from relais.frontdesk.exports import FORMATS, check_period

DATE = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


class ExportForm(FocusFirstErrorMixin, forms.Form):
    first_day = forms.DateField(label=_("From"), input_formats=["%Y-%m-%d", "%d/%m/%Y"], widget=DATE)
    last_day = forms.DateField(label=_("To (included)"), input_formats=["%Y-%m-%d", "%d/%m/%Y"], widget=DATE)
    fmt = forms.ChoiceField(choices=[(f, f) for f in FORMATS], widget=forms.HiddenInput)  # the button pressed

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if "first_day" in data and "last_day" in data:
            try:
                check_period(first_day=data["first_day"], last_day=data["last_day"])
            except ValidationError as exc:
                for name, errors in exc.error_dict.items():
                    self.add_error(name, errors)
        return data

    def full_clean(self) -> None:
        super().full_clean()
        for name in self.errors:  # tie each error text to its field for screen readers
            if name in self.fields:
                self.fields[name].widget.attrs.update({"aria-invalid": "true", "aria-describedby": f"id_{name}_error"})
