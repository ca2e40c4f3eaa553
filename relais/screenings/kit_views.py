"""The kit pages: reading a scanned box for the record form (static/kit-search.js), and the pharmacy's kits (pins, boxes)."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from relais.accounts.access import staff_required
from relais.accounts.models import Role, User
from relais.screenings import kits
from relais.screenings.forms import DeviceSelect, device_choices
from relais.screenings.models import Device, KitBarcode


@require_POST
@staff_required(sees_patients=True)
def kit_scan(request: HttpRequest, user: User) -> JsonResponse:
    """What a scanned box says, for the record form: device (when this pharmacy knows the box), lot, expiry. POSTed:
    a scanner may read something else than a kit (an identity document), which must not land in a URL or a log."""
    try:
        scan = kits.parse_kit_barcode(request.POST.get("scan", ""))
    except ValidationError as exc:
        return JsonResponse({"ok": False, "error": exc.message_dict["scan"][0]})  # 200: the page shows it, nothing failed
    device = kits.gtin_device(actor=user, gtin=scan.gtin)
    expired = scan.expiry is not None and scan.expiry < timezone.localdate()
    if device is not None:
        message = _("Box recognised: %(device)s.") % {"device": f"{device.manufacturer} – {device.name}"}
    else:
        message = _(
            "New box (GTIN %(gtin)s): which catalogue device is this box? Find it here and choose it: "
            "it is remembered for this pharmacy when the test is recorded."
        ) % {"gtin": scan.gtin}
    return JsonResponse(
        {
            "ok": True,
            "gtin": scan.gtin,
            "lot": scan.lot,
            "expiry": scan.expiry.isoformat() if scan.expiry else "",
            "device": device.device_id if device else "",
            "message": message,
            "expired": kits.expired_message(scan.expiry) if expired and scan.expiry else "",
            "expiry_display": formats.date_format(scan.expiry, "SHORT_DATE_FORMAT") if scan.expiry else "",
        }
    )


class PinForm(forms.Form):
    device = forms.ChoiceField(label=gettext_lazy("Test device"), widget=DeviceSelect)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        devices = list(Device.objects.filter(active=True).only("device_id", "manufacturer", "name"))
        field = self.fields["device"]
        assert isinstance(field, forms.ChoiceField) and isinstance(field.widget, DeviceSelect)
        field.choices = device_choices(devices, [])
        field.widget.search_keys = {d.device_id: kits.search_keys(d) for d in devices}


@staff_required(Role.PHARMACY_ADMIN)
def kit_settings(request: HttpRequest, user: User) -> HttpResponse:
    """The pharmacy's kits: pinned ones (pin, unpin), the most used of the last 90 days, the boxes it scanned."""
    form = PinForm(request.POST if request.POST.get("action") == "pin" else None)
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "pin" and form.is_valid():
                kits.kit_pin(actor=user, device_id=form.cleaned_data["device"])
                messages.success(request, _("Kit pinned: it is shown first on the record form."))
                return redirect("screenings:kits")
            if action == "unpin":
                kits.kit_unpin(actor=user, device_id=request.POST.get("device", ""))
                messages.success(request, _("Kit unpinned."))
                return redirect("screenings:kits")
            if action == "forget":
                kits.gtin_forget(actor=user, mapping_id=request.POST.get("mapping", ""))
                messages.success(request, _("Box forgotten: its next scan asks which device it is."))
                return redirect("screenings:kits")
        except (KitBarcode.DoesNotExist, ValidationError, ValueError) as exc:
            if isinstance(exc, ValidationError) and hasattr(exc, "error_dict"):
                form.add_error(None, exc)
            else:
                raise Http404 from exc
    devices = {d.device_id: d for d in Device.objects.all()}
    pinned = [devices[i] for i in kits.pinned_devices(actor=user) if i in devices]
    used = [(devices[i], n) for i, n in kits.most_used_devices(actor=user) if i in devices]
    context = {
        "form": form,
        "pinned": pinned,
        "used": used,
        "boxes": kits.gtin_list(actor=user),
        "days": kits.SHORTLIST_DAYS,
    }
    return render(request, "screenings/kits.html", context)
