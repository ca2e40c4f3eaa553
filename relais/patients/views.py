from __future__ import annotations

import uuid

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _

from relais.accounts.access import staff_required
from relais.accounts.models import User
from relais.core.forms import apply_service_errors
from relais.notify.views import resend_after_contact_change
from relais.patients import search, selectors, services
from relais.patients.forms import ContactForm, PatientFindForm, PatientForm
from relais.patients.models import Patient, Sex
from relais.screenings.selectors import patient_screenings


def patient_or_404(user: User, patient_id: uuid.UUID | str, purpose: str = "view") -> Patient:
    try:
        return selectors.patient_get(actor=user, patient_id=patient_id, purpose=purpose)
    except Patient.DoesNotExist as exc:
        raise Http404 from exc


@staff_required(sees_patients=True)
def patient_search(request: HttpRequest, user: User) -> HttpResponse:
    # POST, never GET: a NIR or a name must not end up in a URL, a log or the browser history. GET shows the form and the
    # patients tested today and this week.
    form = PatientFindForm(request.POST or None)
    context: dict[str, object] = {"form": form, "results": None}
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            query = search.SearchQuery(
                last_name=data["last_name"],
                first_names=data["first_names"],
                date_of_birth=data["date_of_birth"],
                nir=data["nir"],
                phone=data["phone"],
            )
            context["results"] = search.patient_search(actor=user, query=query)
    else:
        week = selectors.patients_tested(actor=user, period="week")  # one read, one audit event: today's are among them
        since = selectors.period_start("day")
        context["today"] = [r for r in week if r.last_test_at >= since]
        context["week"] = week
    return render(request, "patients/search.html", context)


@staff_required(sees_patients=True)
def patient_register(request: HttpRequest, user: User) -> HttpResponse:
    form = PatientForm(request.POST or None)
    duplicates = None
    if request.method == "POST" and form.is_valid():
        try:
            patient = services.patient_register(
                actor=user, identity=form.identity(), allow_duplicate=form.cleaned_data["confirm_duplicate"]
            )
        except services.LikelyDuplicate as dup:
            identity = form.identity()
            duplicates = [{"patient": p, "same": services.same_person(p, identity)} for p in dup.matches]
            # Show the form again with the confirmation box ticked, so a second submit registers anyway.
            form = PatientForm({**request.POST.dict(), "confirm_duplicate": "on"})
            form.is_valid()
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, _("Patient registered."))
            return redirect("screenings:record", patient_id=patient.pk)
    return render(request, "patients/register.html", {"form": form, "duplicates": duplicates})


@staff_required(sees_patients=True)
def patient_detail(request: HttpRequest, user: User, patient_id: str) -> HttpResponse:
    patient = patient_or_404(user, patient_id)
    screenings = patient_screenings(actor=user, patient_id=patient.pk)
    return render(request, "patients/detail.html", {"patient": patient, "screenings": screenings})


@staff_required(sees_patients=True)
def patient_review_list(request: HttpRequest, user: User) -> HttpResponse:
    return render(request, "patients/review_list.html", {"patients": selectors.patients_to_review(actor=user)})


REVIEWED_FIELDS = ["last_name", "first_names", "sex", "date_of_birth", "nir", "address_line", "postcode", "city", "phone", "email"]


@staff_required(sees_patients=True)
def patient_review(request: HttpRequest, user: User, patient_id: str) -> HttpResponse:
    """Two look-alike records side by side: merge them (keeping either) or record that they are different people."""
    patient = patient_or_404(user, patient_id, purpose="review")
    if patient.possible_duplicate_of_id is None or patient.merged_into_id is not None:
        return redirect("patients:detail", patient_id=patient.pk)
    other = patient_or_404(user, patient.possible_duplicate_of_id, purpose="review")
    if request.method == "POST":
        keep = request.POST.get("keep", "")
        try:
            if request.POST.get("action") == "separate":
                services.patient_keep_separate(actor=user, patient_id=patient.pk)
                messages.success(request, _("Both records are kept: they are different people."))
                return redirect("patients:review_list")
            if keep not in (str(patient.pk), str(other.pk)):
                raise services.MergeRefused("choose the record to keep")
            duplicate = other if keep == str(patient.pk) else patient
            kept = services.patient_merge(actor=user, duplicate_id=duplicate.pk, into_id=keep)
        except (services.MergeRefused, Patient.DoesNotExist):
            messages.error(request, _("Choose which record to keep, then merge."))
        else:
            messages.success(request, _("Records merged: every test of both is now on this record."))
            return redirect("patients:detail", patient_id=kept.pk)
    rows: list[dict[str, object]] = []
    for name in REVIEWED_FIELDS:
        left, right = _shown(patient, name), _shown(other, name)
        rows.append({"label": PatientForm.base_fields[name].label, "left": left, "right": right, "differs": left != right})
    counts = {p.pk: p.screenings.count() for p in (patient, other)}  # type: ignore[attr-defined]
    context = {"patient": patient, "other": other, "rows": rows, "left_tests": counts[patient.pk], "right_tests": counts[other.pk]}
    return render(request, "patients/review.html", context)


@staff_required(sees_patients=True)
def patient_contact(request: HttpRequest, user: User, patient_id: str) -> HttpResponse:
    patient = patient_or_404(user, patient_id, purpose="view_contact")
    form = ContactForm(request.POST or None, initial={"phone": patient.phone, "email": patient.email})
    # Coming from a test's page: save, then send that test's result again to the corrected details.
    resend_for = _uuid_or_none(request.GET.get("screening", ""))
    if request.method == "POST" and form.is_valid():
        services.patient_update_contact(actor=user, patient=patient, phone=form.cleaned_data["phone"], email=form.cleaned_data["email"])
        messages.success(request, _("Contact details saved."))
        if resend_for is not None:
            return resend_after_contact_change(request, user=user, screening_id=resend_for, patient_id=patient.pk)
        return redirect("patients:detail", patient_id=patient.pk)
    return render(request, "patients/contact.html", {"form": form, "patient": patient, "resend_for": resend_for})


def _shown(patient: Patient, name: str) -> str:
    value = getattr(patient, name)
    if name == "sex":
        return str(Sex(value).label) if value in Sex.values else str(value)
    if name == "date_of_birth":
        return value.strftime("%d/%m/%Y") if value else ""
    return str(value or "")


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


# --- Identity correction (issue 15, item 1) --------------------------------------------------------------------


def _identity_shown(name: str, value: object) -> str:
    if name == "sex":
        return str(Sex(value).label) if value in Sex.values else str(value)
    if name == "date_of_birth":
        return value.strftime("%d/%m/%Y") if value else ""  # type: ignore[attr-defined]
    return str(value or "")


@staff_required(sees_patients=True)
def patient_identity(request: HttpRequest, user: User, patient_id: str) -> HttpResponse:
    """Correct the identity: the form, then what changes, then confirm. Tests within retention are sent again."""
    from relais.corrections.services import tests_within_retention
    from relais.patients import correction
    from relais.patients.forms_identity import IdentityCorrectionForm

    patient = patient_or_404(user, patient_id)
    if patient.merged_into_id is not None:
        return redirect("patients:detail", patient_id=patient.pk)
    form = IdentityCorrectionForm(request.POST or None, initial=IdentityCorrectionForm.initial_from(patient))
    changes: list[dict[str, str]] = []
    if request.method == "POST" and form.is_valid():
        identity = form.identity()
        names = correction.identity_changes(patient=patient, identity=identity)
        if not names:
            form.add_error(None, _("Nothing to correct: every field is as recorded."))
        elif form.cleaned_data.get("confirm") and "edit" not in request.POST:
            try:
                done = correction.patient_correct_identity(actor=user, patient_id=patient.pk, identity=identity)
            except ValidationError as exc:
                apply_service_errors(form, exc)
            else:
                resent = done.effects.get("tests_resent", 0)
                messages.success(
                    request,
                    _("Identity corrected. %(n)s test(s) will be sent again to the national platform with the new identity.")
                    % {"n": resent},
                )
                return redirect("patients:detail", patient_id=patient.pk)
        elif "edit" not in request.POST:
            labels = {name: str(field.label) for name, field in form.fields.items()}
            changes = [
                {
                    "name": name,
                    "label": labels[name],
                    "before": _identity_shown(name, getattr(patient, name)),
                    "after": _identity_shown(name, getattr(identity, name)),
                }
                for name in names
            ]
    tests = tests_within_retention(patient=patient, now=timezone.now(), lock=False)
    return render(request, "patients/identity_form.html", {"form": form, "patient": patient, "changes": changes, "tests": len(tests)})
