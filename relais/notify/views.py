"""The pharmacist's side of patient messages: send a new link (the patient's pages are in relais.results)."""

from __future__ import annotations

from typing import Any, cast

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from relais.accounts.access import staff_required
from relais.accounts.models import User
from relais.notify import services
from relais.screenings.models import Screening


@require_POST
@staff_required(sees_patients=True)
def resend(request: HttpRequest, user: User, screening_id: str) -> HttpResponse:
    try:
        sent = services.notify_resend(actor=user, screening_id=screening_id)
    except Screening.DoesNotExist as exc:
        raise Http404 from exc
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, message)
    else:
        messages.success(
            request, _("A new link was queued for %(count)s address(es); earlier links no longer work.") % {"count": len(sent)}
        )
    return redirect("screenings:detail", screening_id=screening_id)


def resend_after_contact_change(request: HttpRequest, *, user: Any, screening_id: Any, patient_id: Any) -> HttpResponse:
    screening = Screening.objects.filter(pk=screening_id, patient_id=patient_id, pharmacy_id=user.tenant_id).first()
    if screening is None:
        raise Http404
    return cast(HttpResponse, resend(request, str(screening.pk)))  # a redirect to the screening
