from __future__ import annotations

import json
from typing import Any, cast

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from relais.accounts.models import User
from relais.core.forms import FocusFirstErrorMixin
from relais.screenings import kits
from relais.screenings.inputs import ScreeningInput
from relais.screenings.models import Device
from relais.screenings.vocab import (
    ANALYTES,
    DEFAULT_SPECIMEN,
    RESULT_DETECTED,
    RESULT_INVALID,
    RESULT_NOT_DETECTED,
    RESULTS,
    SPECIMENS,
    SYMPTOMS,
)

DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%d/%m/%Y %H:%M", "%Y-%m-%d %H:%M"]


def result_field_name(analyte: str) -> str:
    return f"result_{analyte}"


# One key per result on the record and queue forms (static/form-shortcuts.js), the same letter in French and English.
RESULT_KEYS = {RESULT_NOT_DETECTED: "N", RESULT_DETECTED: "P", RESULT_INVALID: "I"}


def _result_fields(form: forms.Form, analytes: list[str], *, required: bool) -> None:
    keys = json.dumps({key: code for code, key in RESULT_KEYS.items()})
    choices = [
        (code, format_html("{} <kbd>{}</kbd>", label, RESULT_KEYS[code]) if code in RESULT_KEYS else label)
        for code, label in RESULTS.items()
    ]
    for analyte in analytes:
        form.fields[result_field_name(analyte)] = forms.ChoiceField(
            label=_("Result: %(analyte)s") % {"analyte": ANALYTES[analyte].label},
            choices=choices,
            widget=forms.RadioSelect(attrs={"data-keys": keys}),
            required=required,
        )


def catalogue_analytes() -> list[str]:
    seen: dict[str, None] = {}
    for analytes in Device.objects.filter(active=True).values_list("analytes", flat=True):
        for analyte in analytes:
            seen.setdefault(analyte)
    return list(seen)


class DeviceSelect(forms.Select):
    """The device list, each option carrying its search words (static/kit-search.js filters and ranks on them)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.search_keys: dict[str, tuple[str, str]] = {}

    def create_option(self, name: str, value: Any, label: Any, selected: Any, index: Any, subindex: Any = None, attrs: Any = None) -> Any:
        option = super().create_option(name, value, label, selected, index, subindex=subindex, attrs=attrs)
        keys = self.search_keys.get(str(value))
        if keys:
            option["attrs"]["data-name"], option["attrs"]["data-other"] = keys
        return option


def device_choices(devices: list[Device], shortlist: list[str]) -> list[Any]:
    """The pharmacy's kits first ("Your kits"), then the rest of the catalogue."""

    def label(d: Device) -> str:
        return f"{d.manufacturer} – {d.name} ({d.device_id})"

    by_id = {d.device_id: d for d in devices}
    first = [by_id[i] for i in shortlist if i in by_id]
    empty: list[Any] = [("", _("Choose the test device…"))]
    if not first:
        return [*empty, *((d.device_id, label(d)) for d in devices)]
    chosen = {d.device_id for d in first}
    rest = [(d.device_id, label(d)) for d in devices if d.device_id not in chosen]
    return [*empty, (_("Your kits"), [(d.device_id, label(d)) for d in first]), (_("All devices"), rest)]


class DeviceChoiceField(forms.ChoiceField):
    """Checked against the active catalogue's ids: the grouped list (with the pharmacy's shortlist, two queries) is built
    only when the form is shown, not when a valid POST is checked."""

    valid_ids: frozenset[str] = frozenset()

    def valid_value(self, value: Any) -> bool:
        return str(value) in self.valid_ids


class ScreeningForm(FocusFirstErrorMixin, forms.Form):
    device = DeviceChoiceField(label=_("Test device"), widget=DeviceSelect(attrs={"autofocus": True}), required=False)
    # A keyboard-wedge scanner types the box's barcode here (or, with JavaScript, into the device search box): read on
    # the server, so a scan works without JavaScript too.
    scan = forms.CharField(
        label=_("Barcode of the kit box"),
        required=False,
        max_length=kits.MAX_SCAN,
        strip=False,
        help_text=_("Scan the box (DataMatrix or EAN): device, lot and expiry are filled in."),
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "off"}),
    )
    # The GTIN of a new box the pharmacist was asked about: with a device chosen, the answer is remembered.
    scan_gtin = forms.CharField(required=False, max_length=14, widget=forms.HiddenInput)
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

    def __init__(
        self, *args: object, last_device: str | None = None, notice_url: str = "", actor: User | None = None, **kwargs: object
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.actor = actor
        self.kit_to_remember: tuple[str, str] | None = None  # (GTIN, device id) the pharmacist just answered for
        if notice_url:
            self.fields["information_notice_given"].help_text = format_html(
                '<a href="{}" target="_blank" rel="noopener">{}</a>', notice_url, _("Information notice to print or show (French, English)")
            )
        devices = list(Device.objects.filter(active=True).only("device_id", "manufacturer", "name"))
        device_field = self.fields["device"]
        assert isinstance(device_field, DeviceChoiceField)
        device_field.valid_ids = frozenset(d.device_id for d in devices)
        # A callable: evaluated when the list is rendered (Django's CallableChoiceIterator), never for a valid POST.
        device_field.choices = lambda: device_choices(
            devices, kits.kit_shortlist(actor=actor) if actor is not None and actor.pharmacy_id else []
        )
        assert isinstance(device_field.widget, DeviceSelect)
        device_field.widget.search_keys = {d.device_id: kits.search_keys(d) for d in devices}
        if last_device:
            self.fields["device"].initial = last_device
        self.fields["sampled_at"].initial = timezone.localtime().replace(second=0, microsecond=0)
        # Which analytes are required depends on the device; the service checks that.
        analytes = catalogue_analytes()
        _result_fields(self, analytes, required=False)
        self.order_fields(
            [
                "scan",
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

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if (data.get("scan") or "").strip():
            self._read_scan(data)
        if not data.get("device") and "device" not in self.errors:
            self.add_error("device", _("Choose the test device, or scan the kit box."))
        return data

    def _read_scan(self, data: dict[str, Any]) -> None:
        """Device, lot and expiry from the box's barcode; typed lot and expiry win (the pharmacist corrects a misread)."""
        try:
            scan = kits.parse_kit_barcode(data["scan"])
        except ValidationError as exc:
            self.add_error("scan", exc.message_dict["scan"])
            return
        shown: Any = cast(Any, self.data).copy()  # the page shown again says what the scan read (a QueryDict: copy() is mutable)
        if not data.get("kit_lot") and "kit_lot" not in self.errors:
            data["kit_lot"] = shown["kit_lot"] = scan.lot
        if data.get("kit_expiry") is None and "kit_expiry" not in self.errors:
            data["kit_expiry"] = scan.expiry
            shown["kit_expiry"] = scan.expiry.isoformat() if scan.expiry else ""
        mapped = kits.gtin_device(actor=self.actor, gtin=scan.gtin) if self.actor is not None else None
        if mapped is not None:
            data["device"] = shown["device"] = mapped.device_id
        elif data.get("scan_gtin") == scan.gtin and data.get("device"):
            self.kit_to_remember = (scan.gtin, data["device"])
        else:
            shown["scan_gtin"], shown["device"] = scan.gtin, ""
            data["device"] = ""
            self.add_error(
                "device",
                _(
                    "New box (GTIN %(gtin)s): which catalogue device is this box? Choose it in the list and record the test: "
                    "it is remembered for this pharmacy."
                )
                % {"gtin": scan.gtin},
            )
        self.data = shown

    def remember_kit(self, *, actor: User) -> None:
        """Keep the pharmacist's answer for a new box (see clean): the next scan of it picks the device."""
        if self.kit_to_remember is not None:
            gtin, device_id = self.kit_to_remember
            kits.gtin_remember(actor=actor, gtin=gtin, device_id=device_id)

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
