"""Breach case pages: review the figures, preview a letter (no identity anywhere), approve and send the letters.

Operators and auditors attached to no pharmacy see every case; a pharmacy admin or an auditor attached to a pharmacy
sees only that pharmacy's figures and letters (another pharmacy's answer 404). Approving and sending is for pharmacy
admins (their letters) and operators (any)."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.core.exceptions import ObjectDoesNotExist
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from relais.accounts.access import staff_required
from relais.accounts.models import Pharmacy, Role, User
from relais.breach import drafts, services
from relais.breach.models import BreachCase, LetterStatus

READERS = (Role.PHARMACY_ADMIN, Role.PLATFORM_OPERATOR, Role.AUDITOR)
REVIEWERS = (Role.PHARMACY_ADMIN, Role.PLATFORM_OPERATOR)


def _case(user: User, case_id: uuid.UUID) -> BreachCase:
    try:
        return services.case_for(user, case_id)
    except BreachCase.DoesNotExist as exc:
        raise Http404 from exc


@staff_required(*READERS)
def cases(request: HttpRequest, user: User) -> HttpResponse:
    return render(request, "breach/cases.html", {"cases": services.cases_for(user)[:100], "whole": services.sees_whole_cases(user)})


@staff_required(*READERS)
def case(request: HttpRequest, user: User, case_id: uuid.UUID) -> HttpResponse:
    found = _case(user, case_id)
    letters = services.letters_for(user, found)
    counts = services.letter_status_counts(letters)
    pharmacies = Pharmacy.objects.in_bulk(list(counts))
    rows = [
        {
            "pharmacy": pharmacies.get(pharmacy_id),
            "pharmacy_id": pharmacy_id,
            "total": sum(c.values()),
            "counts": {status: c.get(status, 0) for status in LetterStatus.values},
            "queued": letters.filter(pharmacy_id=pharmacy_id, status=LetterStatus.APPROVED, send_requested_at__isnull=False).count(),
            # One letter to preview per pharmacy (all of a pharmacy's letters read the same), found through the index.
            "sample": letters.filter(pharmacy_id=pharmacy_id).values_list("id", flat=True).first(),
        }
        for pharmacy_id, c in sorted(counts.items(), key=lambda item: -sum(item[1].values()))[:200]
    ]
    language = "fr" if request.LANGUAGE_CODE == "fr" else "en"
    whole = services.sees_whole_cases(user)  # a pharmacy admin or a local auditor sees their own pharmacy's figures only
    context = {
        "case": found,
        "report": found.report,
        "whole": whole,
        "rows": rows,
        "statuses": LetterStatus.choices,
        "can_review": user.role in REVIEWERS,
        "categories": [drafts.CATEGORY_LABELS[c][language] for c in found.report.get("categories", [])],
        "art33": drafts.art33(found, found.report, language) if whole else "",
    }
    return render(request, "breach/case.html", context)


@staff_required(*READERS)
def letter(request: HttpRequest, user: User, case_id: uuid.UUID, letter_id: uuid.UUID) -> HttpResponse:
    """The letter as the patient would receive it: the same text for every patient of the pharmacy, no identity."""
    found = _case(user, case_id)
    try:
        item = services.letters_for(user, found).select_related("pharmacy").get(pk=letter_id)
    except ObjectDoesNotExist as exc:
        raise Http404 from exc
    context = {
        "case": found,
        "letter": item,
        "subject": drafts.letter_subject(),
        "text": drafts.letter_text(found, item.pharmacy),
        "sms": drafts.letter_text(found, item.pharmacy, short=True),
    }
    return render(request, "breach/letter.html", context)


def _act(request: HttpRequest, user: User, case_id: uuid.UUID, pharmacy_id: uuid.UUID | None, *, send: bool) -> HttpResponse:
    try:
        if send:
            count = services.letters_send(actor=user, case_id=case_id, pharmacy_id=pharmacy_id)
            messages.success(request, _("%(count)d letter(s) queued for sending.") % {"count": count})
        else:
            count = services.letters_approve(actor=user, case_id=case_id, pharmacy_id=pharmacy_id)
            messages.success(request, _("%(count)d letter(s) approved.") % {"count": count})
    except ObjectDoesNotExist as exc:
        raise Http404 from exc
    return redirect("breach:case", case_id=case_id)


@staff_required(*REVIEWERS)
@require_POST
def approve(request: HttpRequest, user: User, case_id: uuid.UUID, pharmacy_id: uuid.UUID | None = None) -> HttpResponse:
    return _act(request, user, case_id, pharmacy_id, send=False)


@staff_required(*REVIEWERS)
@require_POST
def send(request: HttpRequest, user: User, case_id: uuid.UUID, pharmacy_id: uuid.UUID | None = None) -> HttpResponse:
    return _act(request, user, case_id, pharmacy_id, send=True)
