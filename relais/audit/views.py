from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from relais.accounts.access import staff_required
from relais.accounts.models import Role, User
from relais.audit.models import AuditEvent


@staff_required(Role.AUDITOR, Role.PHARMACY_ADMIN)
def events(request: HttpRequest, user: User) -> HttpResponse:
    """Auditors see events (ids, never identity): their pharmacy's, or all when attached to none."""
    query = AuditEvent.objects.all()
    if user.pharmacy_id is not None:
        query = query.filter(pharmacy_id=user.pharmacy_id)
    return render(request, "audit/events.html", {"events": query.order_by("-id")[:200]})
