"""Unusual-access alerts for auditors and pharmacy admins (their pharmacy's only), with the events behind each."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from relais.accounts.access import staff_required
from relais.accounts.models import Role, User
from relais.audit.selectors import EventFilters
from relais.audit.views import page_context
from relais.oversight import auditlog, services
from relais.oversight.models import Alert

AUDIT_ROLES = (Role.AUDITOR, Role.PHARMACY_ADMIN)


@staff_required(*AUDIT_ROLES)
@require_GET
def alerts(request: HttpRequest, user: User) -> HttpResponse:
    acknowledged = request.GET.get("acknowledged") == "1"
    found = services.alerts_for(actor=user, acknowledged=acknowledged)
    return render(request, "oversight/alerts.html", page_context(user, alerts=found, acknowledged=acknowledged))


@staff_required(*AUDIT_ROLES)
@require_GET
def alert(request: HttpRequest, user: User, alert_id: uuid.UUID) -> HttpResponse:
    try:
        found = services.alert_get(actor=user, alert_id=alert_id)
    except Alert.DoesNotExist as exc:
        raise Http404 from exc
    after = request.GET.get("after")
    try:
        cursor = uuid.UUID(after) if after else None
    except ValueError:
        cursor = None
    page = auditlog.events_page(
        actor=user,
        filters=EventFilters(event_ids=tuple(found.event_ids)),
        after=cursor,
        audit_action="audit.alert_view",
        audit_ids=[found.pk],
    )
    return render(request, "oversight/alert.html", page_context(user, alert=found, page=page, query=""))


@staff_required(*AUDIT_ROLES)
@require_POST
def acknowledge(request: HttpRequest, user: User, alert_id: uuid.UUID) -> HttpResponse:
    try:
        services.alert_acknowledge(actor=user, alert_id=alert_id)
    except Alert.DoesNotExist as exc:
        raise Http404 from exc
    messages.success(request, _("Alert acknowledged."))
    return redirect("oversight:alert", alert_id=alert_id)
