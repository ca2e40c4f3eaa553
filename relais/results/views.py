"""Patient result pages (no account: a link plus the date of birth), and the result PDF for the patient and the counter."""

from __future__ import annotations

import time
from typing import Any

from django import forms
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from relais.accounts.access import staff_required
from relais.accounts.models import User
from relais.certificates.services import certificate_for_screening
from relais.results import services
from relais.results.pdf import result_pdf as render_pdf
from relais.results.services import LinkUnusable
from relais.screenings import selectors
from relais.screenings.models import Screening

SESSION_LINK = "relais_result_link"
SESSION_VERIFIED = "relais_result_verified"
VERIFIED_SECONDS = 15 * 60


class BirthDateForm(forms.Form):
    date_of_birth = forms.DateField(
        label=gettext_lazy("Your date of birth"),
        help_text=gettext_lazy("As on your identity card, for example 31/12/1980."),
        input_formats=["%d/%m/%Y", "%Y-%m-%d", "%d-%m-%Y", "%d.%m.%Y"],
        widget=forms.DateInput(attrs={"autocomplete": "bday", "inputmode": "numeric", "placeholder": "jj/mm/aaaa"}),
        error_messages={"invalid": gettext_lazy("Enter the date as day/month/year, for example 31/12/1980.")},
    )


def _private(response: HttpResponse, *, referrer: str = "same-origin") -> HttpResponse:
    # "no-referrer" on pages with forms would make browsers send "Origin: null", which CSRF protection refuses.
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Referrer-Policy"] = referrer
    return response


def _unusable(request: HttpRequest, reason: str, *, forget: bool = True) -> HttpResponse:
    if forget:
        request.session.pop(SESSION_LINK, None)
        request.session.pop(SESSION_VERIFIED, None)
    status = 404 if reason == "unknown" else 410
    return _private(render(request, "results/link_unusable.html", {"reason": reason}, status=status))


def _pdf_response(screening: Screening) -> HttpResponse:
    response = HttpResponse(render_pdf(screening=screening), content_type="application/pdf")
    response["Content-Disposition"] = 'attachment; filename="resultat-test.pdf"'
    return response


@never_cache
def result_open(request: HttpRequest, token: str) -> HttpResponse:
    """The link from the message: remember it in the session and move to an address without the token."""
    try:
        link = services.link_open(token=token)
    except LinkUnusable as exc:
        # Another site can make a browser fetch any /r/ address: a bad one must not end the patient's open session.
        return _unusable(request, exc.reason, forget=False)
    request.session.cycle_key()
    request.session[SESSION_LINK] = str(link.pk)
    request.session.pop(SESSION_VERIFIED, None)
    return _private(redirect("results:result"), referrer="no-referrer")  # the token never leaves in a Referer


def _verified(request: HttpRequest, link_id: str) -> bool:
    verified = request.session.get(SESSION_VERIFIED) or {}
    return bool(verified.get("link") == link_id and verified.get("until", 0) > time.time())


def verified_link(request: HttpRequest) -> str | None:
    """The session's result link once its date of birth was checked (and not yet expired), else None."""
    link_id = request.session.get(SESSION_LINK)
    return link_id if link_id and _verified(request, link_id) else None


def _result_context(screening: Screening) -> dict[str, Any]:
    results = list(screening.results.all())
    guidance = services.result_guidance({r.result for r in results})
    certificate = certificate_for_screening(screening=screening)
    return {"screening": screening, "results": results, "guidance": guidance, "certificate": certificate}


@never_cache
def result_page(request: HttpRequest) -> HttpResponse:
    link_id = request.session.get(SESSION_LINK)
    if not link_id:
        return _unusable(request, "unknown")
    try:
        link = services.link_get(link_id=link_id)
    except LinkUnusable as exc:
        return _unusable(request, exc.reason)
    if not _verified(request, link_id):
        form = BirthDateForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                matches = services.link_check_birth_date(link_id=link_id, date_of_birth=form.cleaned_data["date_of_birth"])
            except LinkUnusable as exc:
                return _unusable(request, exc.reason)
            if matches:
                request.session.cycle_key()
                request.session[SESSION_VERIFIED] = {"link": link_id, "until": time.time() + VERIFIED_SECONDS}
                return _private(redirect("results:result"))
            link.refresh_from_db()
            if link.locked_at is not None:
                return _unusable(request, "locked")
            left = services.MAX_DOB_ATTEMPTS - link.failed_attempts
            form.add_error(
                "date_of_birth",
                _("This date does not match. %(left)s attempts left before the link is locked.") % {"left": left},
            )
        status = 400 if request.method == "POST" else 200
        return _private(render(request, "results/birth_date.html", {"form": form}, status=status))
    try:
        screening = services.link_result(link_id=link_id, purpose="view")
    except LinkUnusable as exc:
        return _unusable(request, exc.reason)
    return _private(render(request, "results/result.html", _result_context(screening)))


@never_cache
def result_pdf(request: HttpRequest) -> HttpResponse:
    link_id = request.session.get(SESSION_LINK)
    if not link_id or not _verified(request, link_id):
        return _private(redirect("results:result"))
    try:
        screening = services.link_result(link_id=link_id, purpose="pdf")
    except LinkUnusable as exc:
        return _unusable(request, exc.reason)
    return _private(_pdf_response(screening))


@require_POST
def result_leave(request: HttpRequest) -> HttpResponse:
    request.session.pop(SESSION_LINK, None)
    request.session.pop(SESSION_VERIFIED, None)
    return _private(render(request, "results/left.html"))


# --- Pharmacist side ---------------------------------------------------------------------------------------------


@never_cache
@staff_required(sees_patients=True)
def staff_pdf(request: HttpRequest, user: User, screening_id: str) -> HttpResponse:
    """The same document, printed at the counter for a patient without email or phone."""
    try:
        screening = selectors.screening_get(actor=user, screening_id=screening_id, purpose="pdf")
    except Screening.DoesNotExist as exc:
        raise Http404 from exc
    return _pdf_response(screening)
