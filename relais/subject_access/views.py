"""Subject access exports: POST only (no identity in an address), file names without identity, never cached."""

from __future__ import annotations

import json
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from relais.accounts.access import staff_required
from relais.accounts.models import User
from relais.patients.models import Patient
from relais.results.views import verified_link
from relais.subject_access import services
from relais.subject_access.pdf import subject_access_pdf


def _download(export: dict[str, Any], fmt: str) -> HttpResponse:
    if fmt == "pdf":
        response = HttpResponse(subject_access_pdf(export=export), content_type="application/pdf")
    else:
        body = json.dumps(export, ensure_ascii=False, indent=2).encode("utf-8")
        response = HttpResponse(body, content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="relais-donnees-personnelles.{fmt}"'
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


@never_cache
@staff_required(sees_patients=True)
@require_POST
def staff_export(request: HttpRequest, user: User, patient_id: str, fmt: str) -> HttpResponse:
    if fmt not in services.FORMATS:
        raise Http404
    try:
        export = services.export_for_staff(actor=user, patient_id=patient_id, fmt=fmt)
    except Patient.DoesNotExist as exc:
        raise Http404 from exc
    return _download(export, fmt)


@never_cache
@require_POST
def patient_export(request: HttpRequest, fmt: str) -> HttpResponse:
    """The patient's own export, from the result page, only after the date-of-birth check (same session rule as the PDF)."""
    if fmt not in services.FORMATS:
        raise Http404
    link_id = verified_link(request)
    if link_id is None:
        return redirect("results:result")
    try:
        export = services.export_for_link(link_id=link_id, fmt=fmt)
    except services.ExportRefused:
        return redirect("results:result")  # which says why the link no longer works
    return _download(export, fmt)
