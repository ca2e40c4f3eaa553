"""The identity correction form: registration's fields and rules (PatientForm, patients.identity), without the contact
details, which have their own form."""

from __future__ import annotations

from typing import Any

from django import forms

from relais.patients.correction import CORRECTABLE
from relais.patients.forms import PatientForm
from relais.patients.models import Patient


class IdentityCorrectionForm(PatientForm):
    confirm = forms.BooleanField(required=False, widget=forms.HiddenInput())

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in [n for n in self.fields if n not in (*CORRECTABLE, "confirm")]:
            del self.fields[name]

    @classmethod
    def initial_from(cls, patient: Patient) -> dict[str, Any]:
        return {name: getattr(patient, name) for name in CORRECTABLE}

    def full_clean(self) -> None:
        super().full_clean()
        # Each error is read with its field by screen readers (form_fields.html gives the error its id).
        for name in self.errors:
            if name in self.fields:
                self.fields[name].widget.attrs.update({"aria-invalid": "true", "aria-describedby": f"id_{name}_error"})
