from __future__ import annotations

import uuid

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _

from relais.accounts.access import public, staff_required
from relais.accounts.models import Pharmacy, Role, User
from relais.certificates.services import certificate_for_screening
from relais.core.forms import apply_service_errors
from relais.core.tenancy import for_actor
from relais.frontdesk.selectors import today_list_version
from relais.intake import services as intake
from relais.notify.services import notifications_for
from relais.patients.forms import PatientSearchForm
from relais.patients.selectors import patients_to_review_count
from relais.patients.views import patient_or_404
from relais.screenings import selectors
from relais.screenings.forms import CorrectionForm, ScreeningForm
from relais.screenings.models import Screening
from relais.screenings.notice import notice_url
from relais.testqueue.services import queue_start


@staff_required()
def home(request: HttpRequest, user: User) -> HttpResponse:
    if user.role == Role.PLATFORM_OPERATOR:
        return redirect("accounts:operator_pharmacies")
    if user.role == Role.AUDITOR:
        return redirect("audit:events")
    version = today_list_version(actor=user)  # what day-refresh.js compares before fetching the list again
    screenings = selectors.screenings_today(actor=user)  # refuses anyone who sees no patients
    context = {
        "screenings": screenings,
        "refreshed_at": timezone.localtime(),
        "list_version": version,
        "search_form": PatientSearchForm(),
        "to_review": patients_to_review_count(actor=user),
    }
    return render(request, "screenings/today.html", context)


def _screening_or_404(user: User, screening_id: uuid.UUID | str) -> Screening:
    try:
        return selectors.screening_get(actor=user, screening_id=screening_id)
    except Screening.DoesNotExist as exc:
        raise Http404 from exc


@staff_required(sees_patients=True)
def screening_record(request: HttpRequest, user: User, patient_id: str) -> HttpResponse:
    patient = patient_or_404(user, patient_id, purpose="view_for_screening")
    last_device = for_actor(Screening, user).order_by("-recorded_at").values_list("device_id", flat=True).first()
    form = ScreeningForm(request.POST or None, last_device=last_device, notice_url=notice_url(user.pharmacy), actor=user)
    duplicate = None
    if request.method == "POST" and form.is_valid():
        form.remember_kit(actor=user)  # a new box's device, answered once, result now or later (relais/screenings/kits.py)
    if request.method == "POST" and form.is_valid() and request.POST.get("queue") == "later" and form.results():
        # A result chosen and "later" pressed: dropping the result silently would lose what the pharmacist entered.
        form.add_error(None, _("You chose a result: press “Record the test” to record it now, or clear the result to enter it later."))
    elif request.method == "POST" and form.is_valid() and request.POST.get("queue") == "later":
        # Swab taken, result later: a pending test in the queue, not a screening (nothing is sent before the result).
        try:
            queue_start(actor=user, patient_id=patient.pk, data=form.screening_input())
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, _("Swab in the queue: enter the result when its timer rings."))
            return redirect("testqueue:list")
    elif request.method == "POST" and form.is_valid():
        try:
            outcome = intake.screening_intake(actor=user, data=form.screening_input(), patient_id=patient.pk)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            if not outcome.is_duplicate:
                messages.success(request, _("Test recorded."))
                return redirect("screenings:detail", screening_id=outcome.screening.pk)
            duplicate = outcome  # nothing recorded: the pharmacist is shown the test already there
    return render(request, "screenings/record.html", {"form": form, "patient": patient, "duplicate": duplicate})


@public
def information_notice(request: HttpRequest) -> HttpResponse:
    """Public page, no login, no personal data: what happens to the patient's data, in French and in English, printable."""
    finess = request.GET.get("pharmacy", "")
    pharmacy = Pharmacy.objects.filter(finess=finess, is_active=True).first() if finess.isdigit() and len(finess) == 9 else None
    return render(request, "screenings/notice.html", {"pharmacy": pharmacy, "languages": ["fr", "en"]})


@staff_required(sees_patients=True)
def screening_detail(request: HttpRequest, user: User, screening_id: str) -> HttpResponse:
    screening = _screening_or_404(user, screening_id)
    history = selectors.screening_history(actor=user, screening=screening)
    notifications = notifications_for(actor=user, series_id=screening.series_id)
    certificate = certificate_for_screening(screening=screening)
    context = {"screening": screening, "history": history, "notifications": notifications, "certificate": certificate}
    return render(request, "screenings/detail.html", context)


@staff_required(sees_patients=True)
def screening_correct(request: HttpRequest, user: User, screening_id: str) -> HttpResponse:
    screening = _screening_or_404(user, screening_id)
    form = CorrectionForm(request.POST or None, analytes=screening.device.analytes)
    if request.method == "POST" and form.is_valid():
        try:
            correction = intake.screening_correct(
                actor=user,
                screening_id=screening.pk,
                reason=form.cleaned_data["reason"],
                results=form.results(),
                remove=form.cleaned_data["action"] == "remove",
            )
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, _("Correction recorded; the original result is kept in the history."))
            return redirect("screenings:detail", screening_id=correction.pk)
    return render(request, "screenings/correct.html", {"form": form, "screening": screening})
