"""The test queue's pages: the list with its countdowns (and the fragment queue-timer.js reloads), the result page, the
cancel form. Starting a test is a button of the record form (relais.screenings.views.screening_record)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from relais.accounts.access import staff_required
from relais.accounts.models import User
from relais.core.forms import apply_service_errors
from relais.testqueue import services
from relais.testqueue.forms import CancelForm, QueueResultForm
from relais.testqueue.models import PendingTest


def _context(user: User) -> dict[str, object]:
    now = timezone.now()
    return {
        "entries": services.queue_list(actor=user, now=now),
        "now": now,
        "list_version": services.queue_version(actor=user),
        "overdue_limit": services.overdue_minutes(),
    }


@never_cache
@staff_required(sees_patients=True)
@require_GET
def queue(request: HttpRequest, user: User) -> HttpResponse:
    return render(request, "testqueue/queue.html", _context(user))


@never_cache
@staff_required(sees_patients=True)
@require_GET
def queue_fragment(request: HttpRequest, user: User) -> HttpResponse:
    """The list alone, for queue-timer.js: 204 while the same tests wait (``v``, a fingerprint of ids), otherwise read
    and audited as the page."""
    if request.GET.get("v") == services.queue_version(actor=user):
        return HttpResponse(status=204)
    return render(request, "testqueue/_list.html", _context(user))


class _LeftTheQueue(Exception):
    pass


def _entry_or_404(user: User, pending_id: object) -> services.QueueEntry:
    try:
        return services.queue_get(actor=user, pending_id=str(pending_id))
    except PendingTest.DoesNotExist as exc:
        if services.queue_closed(actor=user, pending_id=str(pending_id)):
            raise _LeftTheQueue from exc  # a double click, or another desk was quicker: back to the queue
        raise Http404 from exc


def _back_to_the_queue(request: HttpRequest) -> HttpResponse:
    messages.info(request, _("This test is no longer in the queue: its result was entered or it was cancelled."))
    return redirect("testqueue:list")


@never_cache
@staff_required(sees_patients=True)
def result(request: HttpRequest, user: User, pending_id: object) -> HttpResponse:
    try:
        entry = _entry_or_404(user, pending_id)
    except _LeftTheQueue:
        return _back_to_the_queue(request)
    form = QueueResultForm(request.POST if request.method == "POST" else None, analytes=list(entry.test.device.analytes))
    if request.method == "POST" and form.is_valid():
        try:
            services.queue_result(actor=user, pending_id=entry.test.pk, results=form.results())
        except PendingTest.DoesNotExist:  # entered or cancelled at another desk meanwhile
            return _back_to_the_queue(request)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            # Back to the queue: with several tests running, the next one to read is what the pharmacist needs.
            messages.success(request, _("Result recorded: the test is sent to the national platform and the patient."))
            return redirect("testqueue:list")
    return render(request, "testqueue/result.html", {"entry": entry, "form": form, "cancel_form": CancelForm()})


@never_cache
@staff_required(sees_patients=True)
def cancel(request: HttpRequest, user: User, pending_id: object) -> HttpResponse:
    try:
        entry = _entry_or_404(user, pending_id)
    except _LeftTheQueue:
        return _back_to_the_queue(request)
    form = CancelForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            services.queue_cancel(actor=user, pending_id=entry.test.pk, reason=form.cleaned_data["reason"])
        except PendingTest.DoesNotExist:
            return _back_to_the_queue(request)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, _("Test cancelled: nothing was sent."))
            return redirect("testqueue:list")
    analytes = list(entry.test.device.analytes)
    return render(request, "testqueue/result.html", {"entry": entry, "form": QueueResultForm(analytes=analytes), "cancel_form": form})
