"""Auditor pages: the audit log by account, pharmacy, action and time, "who accessed this patient", CSV exports.

Auditors read every pharmacy's events (or their own pharmacy's when attached to one), pharmacy admins their pharmacy's;
each page and export writes its own audit event (relais/oversight/auditlog.py)."""

from __future__ import annotations

import csv
import uuid
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from relais.accounts.access import staff_required
from relais.accounts.models import Role, User
from relais.audit.forms import EventFilterForm, PatientLookupForm
from relais.audit.seal import seal_status
from relais.audit.selectors import EventFilters
from relais.oversight import auditlog
from relais.patients.models import Patient

AUDIT_ROLES = (Role.AUDITOR, Role.PHARMACY_ADMIN)


def page_context(user: User, **extra: Any) -> dict[str, Any]:
    """What every audit page shows: the seal status and the last signed checkpoint."""
    return {"seal": seal_status(), "audit_scope_all": auditlog.audit_scope(user) is None, **extra}


def _form(request: HttpRequest, user: User) -> EventFilterForm:
    form = EventFilterForm(request.GET or None, accounts=auditlog.accounts_in_scope(user), pharmacies=auditlog.pharmacies_in_scope(user))
    if form.is_bound:
        form.is_valid()
    return form


def _filters(form: EventFilterForm) -> EventFilters:
    return form.filters() if form.is_bound and form.is_valid() else EventFilters()


def _after(form: EventFilterForm) -> uuid.UUID | None:
    return form.cleaned_data.get("after") if form.is_bound and form.is_valid() else None


def _csv(rows: list[list[str]], name: str) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}-{timezone.now():%Y%m%d-%H%M%S}.csv"'
    response.write("\ufeff")  # spreadsheets read UTF-8 with a byte-order mark
    csv.writer(response).writerows(rows)
    return response


def _query(request: HttpRequest) -> str:
    params = request.GET.copy()
    params.pop("after", None)
    return params.urlencode()


@staff_required(*AUDIT_ROLES)
@require_GET
def events(request: HttpRequest, user: User) -> HttpResponse:
    form = _form(request, user)
    page = auditlog.events_page(actor=user, filters=_filters(form), after=_after(form))
    return render(request, "audit/events.html", page_context(user, form=form, page=page, query=_query(request)))


@staff_required(*AUDIT_ROLES)
@require_GET
def events_export(request: HttpRequest, user: User) -> HttpResponse:
    form = _form(request, user)
    rows, _ = auditlog.events_export(actor=user, filters=_filters(form))
    return _csv(rows, "audit-events")


@staff_required(*AUDIT_ROLES)
@require_http_methods(["GET", "POST"])
def patient_find(request: HttpRequest, user: User) -> HttpResponse:
    """Posted so the NIR or name never reaches a URL or a log; the answer is record ids and pharmacies only."""
    results = None
    form = PatientLookupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        results = auditlog.patients_find(
            actor=user, nir=data.get("nir") or "", last_name=data.get("last_name") or "", date_of_birth=data.get("date_of_birth")
        )
        form = PatientLookupForm()  # the searched identity is not sent back in the page
    return render(request, "audit/patient_find.html", page_context(user, form=form, results=results))


def _patient(user: User, patient_id: uuid.UUID) -> auditlog.PatientRef:
    try:
        return auditlog.patient_in_scope(actor=user, patient_id=patient_id)
    except Patient.DoesNotExist as exc:
        raise Http404 from exc


@staff_required(*AUDIT_ROLES)
@require_GET
def patient_events(request: HttpRequest, user: User, patient_id: uuid.UUID) -> HttpResponse:
    patient = _patient(user, patient_id)
    form = _form(request, user)
    page = auditlog.events_page(
        actor=user,
        filters=auditlog.patient_filters(patient.id, _filters(form)),
        after=_after(form),
        audit_action="audit.patient_view",
        audit_ids=[patient.id],
        scoped=False,
    )
    return render(request, "audit/patient.html", page_context(user, form=form, page=page, patient=patient, query=_query(request)))


@staff_required(*AUDIT_ROLES)
@require_GET
def patient_export(request: HttpRequest, user: User, patient_id: uuid.UUID) -> HttpResponse:
    patient = _patient(user, patient_id)
    form = _form(request, user)
    rows, _ = auditlog.events_export(
        actor=user, filters=auditlog.patient_filters(patient.id, _filters(form)), audit_ids=[patient.id], scoped=False
    )
    return _csv(rows, "audit-patient")
