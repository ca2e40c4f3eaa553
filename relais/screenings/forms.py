from __future__ import annotations

from django import forms
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from relais.core.forms import FocusFirstErrorMixin
from relais.screenings.inputs import ScreeningInput
from relais.screenings.models import Device
from relais.screenings.vocab import ANALYTES, DEFAULT_SPECIMEN, RESULTS, SPECIMENS, SYMPTOMS

DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%d/%m/%Y %H:%M", "%Y-%m-%d %H:%M"]


def result_field_name(analyte: str) -> str:
    return f"result_{analyte}"


def _result_fields(form: forms.Form, analytes: list[str], *, required: bool) -> None:
    for analyte in analytes:
        form.fields[result_field_name(analyte)] = forms.ChoiceField(
            label=_("Result: %(analyte)s") % {"analyte": ANALYTES[analyte].label},
            choices=list(RESULTS.items()),
            widget=forms.RadioSelect,
            required=required,
        )


def catalogue_analytes() -> list[str]:
    seen: dict[str, None] = {}
    for analytes in Device.objects.filter(active=True).values_list("analytes", flat=True):
        for analyte in analytes:
            seen.setdefault(analyte)
    return list(seen)


class ScreeningForm(FocusFirstErrorMixin, forms.Form):
    device = forms.ChoiceField(label=_("Test device"), widget=forms.Select(attrs={"autofocus": True}))
    specimen_type = forms.ChoiceField(label=_("Specimen"), choices=list(SPECIMENS.items()), initial=DEFAULT_SPECIMEN)
    sampled_at = forms.DateTimeField(
        label=_("Sampling date and time"),
        input_formats=DATETIME_FORMATS,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    kit_lot = forms.CharField(label=_("Kit lot"), max_length=20, required=False, help_text=_("As printed on the box (LOT)."))
    kit_expiry = forms.DateField(
        label=_("Kit expiry date"), required=False, widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )
    symptoms = forms.ChoiceField(
        label=_("Symptoms"),
        help_text=_("Does the patient have symptoms of the illness tested for?"),
        choices=list(SYMPTOMS.items()),
        widget=forms.RadioSelect,
        required=False,
    )
    symptom_onset = forms.DateField(
        label=_("Symptoms began on"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    # Not consent: the law sends identity to SI-DEP for every test; the patient must be informed (loi n° 2020-546, art. 11).
    information_notice_given = forms.BooleanField(
        label=_("I gave the patient the information notice (result and identity are sent to the national screening platform SI-DEP)"),
        error_messages={"required": _("Give the patient the information notice, then tick this box.")},
    )

    def __init__(self, *args: object, last_device: str | None = None, notice_url: str = "", **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        if notice_url:
            self.fields["information_notice_given"].help_text = format_html(
                '<a href="{}" target="_blank" rel="noopener">{}</a>', notice_url, _("Information notice to print or show (French, English)")
            )
        devices = Device.objects.filter(active=True).only("device_id", "manufacturer", "name")
        device_field = self.fields["device"]
        assert isinstance(device_field, forms.ChoiceField)
        device_field.choices = [("", _("Choose the test device…"))] + [
            (d.device_id, f"{d.manufacturer} – {d.name} ({d.device_id})") for d in devices
        ]
        if last_device:
            self.fields["device"].initial = last_device
        self.fields["sampled_at"].initial = timezone.localtime().replace(second=0, microsecond=0)
        # Which analytes are required depends on the device; the service checks that.
        analytes = catalogue_analytes()
        _result_fields(self, analytes, required=False)
        self.order_fields(
            [
                "device",
                "kit_lot",
                "kit_expiry",
                "specimen_type",
                "sampled_at",
                "symptoms",
                "symptom_onset",
                *(result_field_name(a) for a in analytes),
            ]
        )

    def results(self) -> dict[str, str]:
        return {name.removeprefix("result_"): value for name, value in self.cleaned_data.items() if name.startswith("result_") and value}

    def screening_input(self) -> ScreeningInput:
        data = self.cleaned_data
        return ScreeningInput(
            device_id=data["device"],
            specimen_type=data["specimen_type"],
            sampled_at=data["sampled_at"],
            results=self.results(),
            information_notice_given=data["information_notice_given"],
            kit_lot=data.get("kit_lot", "").strip(),
            kit_expiry=data.get("kit_expiry"),
            symptoms=data.get("symptoms", ""),
            symptom_onset=data.get("symptom_onset"),
        )


class CorrectionForm(FocusFirstErrorMixin, forms.Form):
    action = forms.ChoiceField(
        label=_("Correction"),
        choices=[("correct", _("Correct the result")), ("remove", _("Remove this test (recorded in error)"))],
        widget=forms.RadioSelect,
        initial="correct",
    )
    reason = forms.CharField(label=_("Reason"), max_length=500, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args: object, analytes: list[str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        _result_fields(self, analytes, required=False)

    def results(self) -> dict[str, str]:
        return {name.removeprefix("result_"): v for name, v in self.cleaned_data.items() if name.startswith("result_") and v}
