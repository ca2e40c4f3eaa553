"""The test kit at the counter: reading the box's barcode (GS1), the pharmacy's GTIN -> device answers, its shortlist of
kits (pinned and most used) and the device list's type-to-search. No personal data here: kits, not patients."""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from biip import BiipException
from biip.gs1_messages import GS1Message
from biip.gtin import Gtin
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count
from django.utils import formats, timezone
from django.utils.translation import gettext as _

from relais.accounts.models import Role, User
from relais.audit.services import audit_record
from relais.core.tenancy import for_actor
from relais.screenings.inputs import kit_lot_problem
from relais.screenings.models import Device, KitBarcode, PinnedKit, Screening

SHORTLIST_DAYS = 90
SHORTLIST_USED = 5  # the most used kits shown first, besides the pinned ones
MAX_SCAN = 200  # a GS1 DataMatrix on a kit box holds far less; longer is not a kit's barcode

# Group separator (FNC1 inside a message) and what keyboard wedges are set to type for it; none of these can appear in a
# GS1 lot (character set 82), so reading them as a separator never cuts a value.
GS = "\x1d"
_GS_STAND_INS = ("<GS>", "{GS}", "[GS]", "^]", "|", "~", "\u241d")
# Symbology identifiers a scanner may put first: GS1 DataMatrix, GS1-128, GS1 QR, EAN/UPC.
_SYMBOLOGY = re.compile(r"^\](d2|C1|Q3|e0|E0|E4)")


@dataclass(frozen=True)
class KitScan:
    """What a kit box's barcode says: its GTIN (14 digits), and, from a GS1 element string, lot (AI 10) and expiry (AI 17)."""

    gtin: str
    lot: str = ""
    expiry: date | None = None


def _scan_error(message: str) -> ValidationError:
    return ValidationError({"scan": [message]})


def _field_name(ai: str) -> str:
    return {
        "01": _("the GTIN (01)"),
        "17": _("the expiry date (17)"),
        "10": _("the lot (10)"),
    }.get(ai, _("element (%(ai)s)") % {"ai": ai})


def _biip_problem(exc: Exception) -> ValidationError:
    """biip's English message turned into a sentence naming the field it failed on (its AI, when it says one)."""
    found = re.search(r"AI \((\d{2,4})\)", str(exc))
    if found:
        return _scan_error(
            _("The barcode could not be read at %(field)s: scan the box again, or choose the device and type lot and expiry.")
            % {"field": _field_name(found.group(1))}
        )
    if "check digit" in str(exc):
        return _scan_error(_("The barcode's GTIN (01) has a wrong check digit: scan the box again, or choose the device."))
    return _scan_error(_("This barcode is not a kit box's GS1 code or EAN: scan the box's DataMatrix, or choose the device."))


def _clean(raw: str) -> str:
    text = raw.strip()
    text = _SYMBOLOGY.sub("", text)
    for stand_in in _GS_STAND_INS:
        text = text.replace(stand_in, GS)
    return text.strip(GS)


def parse_kit_barcode(raw: str) -> KitScan:
    """A kit box's barcode read: a GS1 element string (with or without group separators, or in the "(01)…(17)…(10)…"
    printed form) or a bare EAN-13 / GTIN-14. Anything else: ValidationError on "scan" with a sentence, never another
    exception."""
    if len(raw) > MAX_SCAN:
        return _raise(_("This barcode is too long for a kit box's: scan the box's DataMatrix, or choose the device."))
    text = _clean(raw)
    if not text:
        return _raise(_("Nothing was scanned: scan the box's barcode, or choose the device."))
    try:
        if text.isdigit() and len(text) in (8, 12, 13, 14):
            return KitScan(gtin=Gtin.parse(text).as_gtin_14())
        message = GS1Message.parse_hri(text) if text.startswith("(") else GS1Message.parse(text)
    except BiipException as exc:
        raise _biip_problem(exc) from exc
    except ValueError as exc:  # a malformed value biip leaves to the standard library (a date, a number)
        raise _biip_problem(exc) from exc
    values: dict[str, str] = {}
    expiry: date | None = None
    gtin = ""
    for element in message.element_strings:
        ai = element.ai.ai
        if ai in values:
            return _raise(_("The barcode holds %(field)s twice: scan the box again.") % {"field": _field_name(ai)})
        values[ai] = element.value
        if ai in ("01", "02"):
            if element.gtin is None:
                return _raise(_("The barcode's GTIN (01) has a wrong check digit: scan the box again, or choose the device."))
            gtin = element.gtin.as_gtin_14()
        elif ai == "17":
            if element.date is None:
                return _raise(_("The barcode's expiry date (17) is not a date: check the box."))
            expiry = element.date  # biip reads day 00 as the month's last day, as GS1 says
    if not gtin:
        return _raise(_("The barcode holds no GTIN (01): scan the box's DataMatrix or EAN, or choose the device."))
    lot = values.get("10", "")
    if kit_lot_problem(lot):
        return _raise(_("The barcode's lot (10) is not a lot number a kit can have: type the lot as printed on the box."))
    return KitScan(gtin=gtin, lot=lot, expiry=expiry)


def _raise(message: str) -> KitScan:
    raise _scan_error(message)


def expired_message(expiry: date) -> str:
    """The refusal the screening check gives for an expired kit, word for word (one msgid)."""
    return _("This kit expired on %(date)s: use a kit that has not expired (an expired kit's result is not valid).") % {
        "date": formats.date_format(expiry, "SHORT_DATE_FORMAT")
    }


# --- the pharmacy's answers: GTIN -> catalogue device -------------------------------------------------------------


def gtin_device(*, actor: User, gtin: str) -> Device | None:
    """The device this pharmacy said a box with ``gtin`` is, or None when it was never asked (other pharmacies' answers
    are never used: each pharmacy vouches for its own)."""
    mapping = for_actor(KitBarcode, actor, patient_data=False).filter(gtin=gtin, device__active=True).select_related("device").first()
    return mapping.device if mapping else None


def gtin_remember(*, actor: User, gtin: str, device_id: str) -> KitBarcode:
    """Record (or change) which catalogue device a box with ``gtin`` is, for the actor's pharmacy; audited."""
    if not actor.sees_patients or actor.pharmacy_id is None:
        raise PermissionDenied
    if not (gtin.isdigit() and len(gtin) == 14):
        raise ValidationError({"scan": [_("The barcode's GTIN (01) has a wrong check digit: scan the box again, or choose the device.")]})
    device = Device.objects.filter(device_id=device_id, active=True).first()
    if device is None:
        raise ValidationError({"device": [_("Choose a device from the list.")]})
    with transaction.atomic():
        mapping = for_actor(KitBarcode, actor, patient_data=False).select_for_update().filter(gtin=gtin).first()
        before = mapping.device_id if mapping else None
        if mapping is None:
            try:
                with transaction.atomic():
                    mapping = KitBarcode.objects.create(pharmacy_id=actor.pharmacy_id, gtin=gtin, device=device, created_by=actor)
            except IntegrityError:  # a colleague answered for the same box at the same moment: theirs stands
                return for_actor(KitBarcode, actor, patient_data=False).get(gtin=gtin)
        elif mapping.device_id != device.device_id:
            mapping.device = device
            mapping.created_by = actor
            mapping.save(update_fields=["device", "created_by"])
        else:
            return mapping
        audit_record(
            actor=actor,
            action="kit.gtin_map",
            object_type="kit_barcode",
            object_ids=[mapping.pk],
            detail={"gtin": gtin, "device": device.device_id, "before": before},
        )
    return mapping


def _require_admin(actor: User) -> uuid.UUID:
    if actor.role != Role.PHARMACY_ADMIN or actor.pharmacy_id is None:
        raise PermissionDenied
    return actor.pharmacy_id


def gtin_forget(*, actor: User, mapping_id: uuid.UUID | str) -> None:
    """Forget a box's answer (a wrong one): the next scan of that GTIN asks again. Pharmacy administrators; audited."""
    _require_admin(actor)
    with transaction.atomic():
        mapping = for_actor(KitBarcode, actor, patient_data=False).get(pk=mapping_id)
        audit_record(
            actor=actor,
            action="kit.gtin_forget",
            object_type="kit_barcode",
            object_ids=[mapping.pk],
            detail={"gtin": mapping.gtin, "device": mapping.device_id},
        )
        mapping.delete()


def gtin_list(*, actor: User) -> list[KitBarcode]:
    return list(for_actor(KitBarcode, actor, patient_data=False).select_related("device").order_by("device__manufacturer", "gtin"))


# --- the shortlist: pinned kits and the most used ---------------------------------------------------------------


def kit_pin(*, actor: User, device_id: str) -> None:
    pharmacy_id = _require_admin(actor)
    device = Device.objects.filter(device_id=device_id, active=True).first()
    if device is None:
        raise ValidationError({"device": [_("Choose a device from the list.")]})
    with transaction.atomic():
        if for_actor(PinnedKit, actor, patient_data=False).filter(device=device).exists():
            return
        try:
            with transaction.atomic():
                pin = PinnedKit.objects.create(pharmacy_id=pharmacy_id, device=device, pinned_by=actor)
        except IntegrityError:  # pinned by a colleague at the same moment
            return
        audit_record(actor=actor, action="kit.pin", object_type="pinned_kit", object_ids=[pin.pk], detail={"device": device.device_id})


def kit_unpin(*, actor: User, device_id: str) -> None:
    _require_admin(actor)
    with transaction.atomic():
        pin = for_actor(PinnedKit, actor, patient_data=False).filter(device_id=device_id).first()
        if pin is None:
            return
        audit_record(actor=actor, action="kit.unpin", object_type="pinned_kit", object_ids=[pin.pk], detail={"device": device_id})
        pin.delete()


def pinned_devices(*, actor: User) -> list[str]:
    return list(for_actor(PinnedKit, actor, patient_data=False).order_by("pinned_at", "device_id").values_list("device_id", flat=True))


def most_used_devices(*, actor: User, days: int = SHORTLIST_DAYS, limit: int = SHORTLIST_USED) -> list[tuple[str, int]]:
    """(device id, tests) of the kits this pharmacy used most over the last ``days``: one query, on the (pharmacy,
    recorded_at) index."""
    since = timezone.now() - timedelta(days=days)
    rows = (
        for_actor(Screening, actor, patient_data=False)
        .filter(recorded_at__gte=since, version=1)  # a test counts once, not once per correction
        .values("device_id")
        .annotate(tests=Count("pk"))
        .order_by("-tests", "device_id")[:limit]
    )
    return [(row["device_id"], row["tests"]) for row in rows]


def kit_shortlist(*, actor: User) -> list[str]:
    """The device ids shown first ("Your kits"): the most used in the last 90 days, most used first, then the pinned
    ones not among them, in the order they were pinned."""
    used = [device_id for device_id, _tests in most_used_devices(actor=actor)]
    pinned = pinned_devices(actor=actor)
    return list(dict.fromkeys([*used, *pinned]))


# --- type-to-search ------------------------------------------------------------------------------------------------

_WORD = re.compile(r"[^\W_]+")


def fold(text: str) -> str:
    """Lower case without accents: what the search compares (static/kit-search.js folds the query the same way)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()


def search_keys(device: Device) -> tuple[str, str]:
    """(the device name's words, the maker's words and the device id), folded, space separated."""
    return " ".join(_WORD.findall(fold(device.name))), " ".join(_WORD.findall(fold(f"{device.manufacturer} {device.device_id}")))


def _score(words: Sequence[str], name_key: str, other_key: str) -> int | None:
    """0 per word that starts a word of the name, 1 per word that starts the maker's or the id, 2 per word found
    inside; None when a word is found nowhere."""
    name_words, other_words = name_key.split(), other_key.split()
    whole = f"{name_key} {other_key}"
    total = 0
    for word in words:
        if any(w.startswith(word) for w in name_words):
            continue
        if any(w.startswith(word) for w in other_words):
            total += 1
        elif word in whole:
            total += 2
        else:
            return None
    return total


def search_devices(query: str, devices: Iterable[Device], *, shortlist: Sequence[str] = ()) -> list[Device]:
    """The devices every word of ``query`` matches, best first: words starting the device name before the maker's,
    before words found inside; then the pharmacy's shortlist order, then the catalogue's. An empty query: all, in that
    order. static/kit-search.js ranks the list the same way (tests/e2e/test_kit_scan.py compares the two)."""
    words = _WORD.findall(fold(query))
    rank = {device_id: n for n, device_id in enumerate(shortlist)}
    found = []
    for index, device in enumerate(devices):
        score = _score(words, *search_keys(device))
        if score is not None:
            found.append((score, rank.get(device.device_id, len(rank)), index, device))
    found.sort(key=lambda entry: entry[:3])
    return [entry[3] for entry in found]
