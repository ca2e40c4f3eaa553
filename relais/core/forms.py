from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError


def focus_first_error(form: forms.Form) -> None:
    """After a failed submit, put the keyboard focus on the first field in error."""
    errors = form._errors or {}  # type: ignore[attr-defined]
    first = next((name for name in form.fields if name in errors), None)
    if first is None:
        return
    for field in form.fields.values():
        field.widget.attrs.pop("autofocus", None)
    form.fields[first].widget.attrs["autofocus"] = True


class FocusFirstErrorMixin:
    def full_clean(self) -> None:
        super().full_clean()  # type: ignore[misc]
        focus_first_error(self)  # type: ignore[arg-type]


def apply_service_errors(form: forms.Form, exc: ValidationError) -> None:
    """Place a service's field errors next to the matching form fields (others at the top)."""
    for field, messages in exc.message_dict.items():
        target = field if field in form.fields else None
        for message in messages:
            form.add_error(target, message)
    focus_first_error(form)
