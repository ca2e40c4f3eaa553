from __future__ import annotations

import uuid
from datetime import datetime, time, timedelta
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from relais.audit.labels import action_choices
from relais.audit.selectors import EventFilters
from relais.patients.forms import PatientSearchForm


class EventFilterForm(forms.Form):
    """The auditor's filters (a GET form: ids and dates only, never a patient's identity)."""

    account = forms.ChoiceField(label=_("Account"), required=False)
    pharmacy = forms.ChoiceField(label=_("Pharmacy"), required=False)
    action = forms.ChoiceField(label=_("Action"), required=False)
    since = forms.DateField(label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))
    until = forms.DateField(label=_("To (inclusive)"), required=False, widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))
    after = forms.UUIDField(required=False, widget=forms.HiddenInput())

    def __init__(self, *args: Any, accounts: list[tuple[Any, str]], pharmacies: list[tuple[Any, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        everyone: list[tuple[str, Any]] = [("", _("All"))]
        choices = {
            "account": [(str(pk), label) for pk, label in accounts],
            "pharmacy": [(str(pk), label) for pk, label in pharmacies],
            "action": action_choices(),
        }
        for name, options in choices.items():
            field = self.fields[name]
            assert isinstance(field, forms.ChoiceField)
            field.choices = everyone + options

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("since") and data.get("until") and data["until"] < data["since"]:
            raise forms.ValidationError(_("The end date is before the start date."))
        return data

    def filters(self) -> EventFilters:
        data = self.cleaned_data
        tz = timezone.get_current_timezone()

        def at(day: Any, shift: int = 0) -> datetime | None:
            return datetime.combine(day + timedelta(days=shift), time(), tz) if day else None

        return EventFilters(
            actor_id=uuid.UUID(data["account"]) if data.get("account") else None,
            pharmacy_id=uuid.UUID(data["pharmacy"]) if data.get("pharmacy") else None,
            action=data.get("action") or "",
            since=at(data.get("since")),
            until=at(data.get("until"), 1),
        )


class PatientLookupForm(PatientSearchForm):
    """Posted, never in a URL: NIR, or last name and date of birth, with the patients app's own checks."""
