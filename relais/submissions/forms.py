from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from relais.core.forms import FocusFirstErrorMixin
from relais.screenings.csv_import import MAX_BYTES


class UploadForm(FocusFirstErrorMixin, forms.Form):
    file = forms.FileField(
        label=_("CSV file"),
        help_text=_("UTF-8 or Windows-1252, comma or semicolon separated, up to 10,000 rows."),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
    )

    def clean_file(self) -> object:
        upload = self.cleaned_data["file"]
        if upload.size > MAX_BYTES:
            raise forms.ValidationError(_("The file is larger than 20 MB: split it into several files."))
        return upload
