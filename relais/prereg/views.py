"""Pre-registration pages: the patient's public form (/pre/) and the counter's list, lookup and confirm (/prereg/)."""

from __future__ import annotations

import uuid

import qrcode
import qrcode.image.svg
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST
from qrcode.constants import ERROR_CORRECT_M

from relais.accounts.access import public, staff_required
from relais.accounts.models import Role, User
from relais.core.forms import apply_service_errors
from relais.core.proxy import client_address
from relais.patients.forms import PatientForm
from relais.patients.models import Sex
from relais.prereg import services
from relais.prereg.forms import CodeForm, PreRegistrationForm, describe_errors
from relais.prereg.models import PreRegistration

SESSION_DONE = "relais_prereg_done"


def _private(response: HttpResponse) -> HttpResponse:
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


# --- public: the patient's phone -----------------------------------------------------------------------------------


@public
@never_cache
def public_form(request: HttpRequest, token: str) -> HttpResponse:
    link = services.link_by_token(token=token)
    if link is None:  # unknown, replaced by a newer link, or the pharmacy is closed on Relais
        return _private(render(request, "prereg/public_unknown.html", status=404))
    form = PreRegistrationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            row = services.prereg_submit(link=link, identity=form.identity(), client_address=client_address(request))
        except services.RateLimited as exc:
            context = {"pharmacy": link.pharmacy, "scope": exc.scope}
            return _private(render(request, "prereg/public_limited.html", context, status=429))
        request.session.cycle_key()
        request.session[SESSION_DONE] = str(row.pk)
        return redirect("prereg:done")
    context = {"form": form, "pharmacy": link.pharmacy, "lifetime": services.config.limit("lifetime_hours")}
    return _private(render(request, "prereg/public_form.html", context))


@public
@never_cache
def public_done(request: HttpRequest) -> HttpResponse:
    """The code to show at the counter, read from the session (never from the address)."""
    prereg_id = request.session.get(SESSION_DONE, "")
    row = services.public_status(prereg_id=prereg_id) if prereg_id else None
    if request.method == "POST" and row is not None and request.POST.get("action") == "withdraw":
        services.public_withdraw(prereg_id=prereg_id)
        request.session.pop(SESSION_DONE, None)
        return _private(render(request, "prereg/public_withdrawn.html"))
    if row is None:
        request.session.pop(SESSION_DONE, None)
    return _private(render(request, "prereg/public_done.html", {"row": row}, status=200 if row else 404))


# --- staff: the counter --------------------------------------------------------------------------------------------


def _public_url(request: HttpRequest, user: User) -> str:
    link = services.link_for(pharmacy=user.pharmacy)  # type: ignore[arg-type]  # staff with a pharmacy (sees_patients)
    return request.build_absolute_uri(reverse("prereg:form", kwargs={"token": link.token}))


@staff_required(sees_patients=True)
def prereg_list(request: HttpRequest, user: User) -> HttpResponse:
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        row = services.prereg_find(actor=user, code=form.cleaned_data["code"])
        if row is not None:
            return redirect("prereg:confirm", prereg_id=row.pk)
        form.add_error("code", _("No pre-registration with this code: check it with the patient (it expires after 24 hours)."))
    describe_errors(form)
    rows = services.prereg_list(actor=user)
    return render(request, "prereg/list.html", {"form": form, "rows": rows})


@staff_required(sees_patients=True)
def prereg_confirm(request: HttpRequest, user: User, prereg_id: uuid.UUID) -> HttpResponse:
    try:
        row = services.prereg_get(actor=user, prereg_id=prereg_id)
    except PreRegistration.DoesNotExist as exc:
        raise Http404 from exc
    action = request.POST.get("action", "") if request.method == "POST" else ""
    editing = request.GET.get("edit") == "1" or action == "correct"
    form = PatientForm(request.POST if action == "correct" else None, initial=_initial(row))
    if action == "discard":
        try:
            services.prereg_discard(actor=user, prereg_id=row.pk)
        except PreRegistration.DoesNotExist:
            pass  # discarded or confirmed meanwhile at another desk
        messages.success(request, _("Pre-registration discarded."))
        return redirect("prereg:list")
    if action == "confirm" or (action == "correct" and form.is_valid()):
        try:
            identity = form.identity() if action == "correct" else None
            verified = None if action == "correct" else request.POST.get("identity_verified") == "on"
            resolution = services.prereg_confirm(actor=user, prereg_id=row.pk, identity=identity, identity_verified=verified)
        except PreRegistration.DoesNotExist:
            messages.error(request, _("This pre-registration was already confirmed or discarded."))
            return redirect("prereg:list")
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            if resolution.created and resolution.needs_review:
                messages.warning(request, _("Patient registered; a look-alike record exists: compare them in Possible duplicates."))
            elif resolution.created:
                messages.success(request, _("Patient registered."))
            else:
                messages.success(request, _("Already registered: the existing record is used."))
            return redirect("screenings:record", patient_id=resolution.patient.pk)
    describe_errors(form)
    sex = Sex(row.sex).label if row.sex in Sex.values else row.sex
    return render(request, "prereg/confirm.html", {"row": row, "form": form, "editing": editing, "sex_label": sex})


def _initial(row: PreRegistration) -> dict[str, object]:
    values = row.identity_values()
    values["date_of_birth"] = values["date_of_birth"].isoformat() if values["date_of_birth"] else ""
    return values


@staff_required(Role.PHARMACIST, Role.PHARMACY_ADMIN)
def link_page(request: HttpRequest, user: User) -> HttpResponse:
    """The poster to print: the pharmacy's link and its QR code (no personal data)."""
    if user.pharmacy is None:
        raise Http404
    url = _public_url(request, user)
    context = {"url": url, "pharmacy": user.pharmacy, "can_rotate": user.role == Role.PHARMACY_ADMIN}
    return render(request, "prereg/link.html", context)


@staff_required(Role.PHARMACIST, Role.PHARMACY_ADMIN)
def link_qr(request: HttpRequest, user: User) -> HttpResponse:
    if user.pharmacy is None:
        raise Http404
    image = qrcode.make(
        _public_url(request, user), image_factory=qrcode.image.svg.SvgPathImage, box_size=10, error_correction=ERROR_CORRECT_M
    )
    response = HttpResponse(image.to_string(encoding="unicode"), content_type="image/svg+xml")
    response["Cache-Control"] = "no-store"
    return response


@staff_required(Role.PHARMACY_ADMIN)
@require_POST
def link_rotate(request: HttpRequest, user: User) -> HttpResponse:
    services.link_rotate(actor=user)
    messages.success(request, _("New link created: the previous link and QR code no longer work. Print the new poster."))
    return redirect("prereg:link")
