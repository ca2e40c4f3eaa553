from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from relais.core.forms import FocusFirstErrorMixin
from relais.screenings.forms import _result_fields, result_field_name
from relais.testqueue.services import CANCEL_REASON_MAX


class QueueResultForm(FocusFirstErrorMixin, forms.Form):
    """The results of one pending test: one radio group per analyte of its device, each required."""

    def __init__(self, *args: object, analytes: list[str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.analytes = list(analytes)
        _result_fields(self, self.analytes, required=True)
        if self.analytes:
            self.fields[result_field_name(self.analytes[0])].widget.attrs["autofocus"] = True

    def results(self) -> dict[str, str]:
        return {a: self.cleaned_data[result_field_name(a)] for a in self.analytes if self.cleaned_data.get(result_field_name(a))}


class CancelForm(FocusFirstErrorMixin, forms.Form):
    reason = forms.CharField(
        label=_("Why is this test cancelled?"),
        max_length=CANCEL_REASON_MAX,
        help_text=_("For example: invalid test (no control line), patient left. Nothing is sent to the national platform."),
        widget=forms.Textarea(attrs={"rows": 2}),
    )
