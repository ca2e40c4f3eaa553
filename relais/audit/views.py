from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from relais.accounts.models import Role, User
from relais.audit.models import AuditEvent


def events(request: HttpRequest) -> HttpResponse:
    """Auditors see events (ids, never identity): their pharmacy's, or all when attached to none."""
    user = request.user
    if not isinstance(user, User) or user.role not in {Role.AUDITOR, Role.PHARMACY_ADMIN}:
        raise PermissionDenied
    query = AuditEvent.objects.all()
    if user.pharmacy_id is not None:
        query = query.filter(pharmacy_id=user.pharmacy_id)
    return render(request, "audit/events.html", {"events": query.order_by("-id")[:200]})
