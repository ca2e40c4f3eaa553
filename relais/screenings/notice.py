"""Where the patient information notice lives (public page, no personal data)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.urls import reverse

if TYPE_CHECKING:
    from relais.accounts.models import Pharmacy


def notice_url(pharmacy: Pharmacy | None = None, *, absolute: bool = False) -> str:
    """The notice, naming the pharmacy as the contact by its FINESS (a public registry number, not personal data)."""
    url = reverse("screenings:notice") + (f"?pharmacy={pharmacy.finess}" if pharmacy is not None else "")
    return settings.RELAIS_PUBLIC_URL.rstrip("/") + url if absolute else url
