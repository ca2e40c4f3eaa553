from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from relais.accounts.access import staff_required
from relais.accounts.models import Role, User
from relais.notify.selectors import notify_summary
from relais.transfer import plain, selectors, services
from relais.transfer.models import OutboxMessage, TransferStatus

CHART_WIDTH, CHART_HEIGHT = 600, 80


def _bars(values: list[int]) -> list[dict[str, float]]:
    peak = max(values) or 1
    width = CHART_WIDTH / len(values)
    return [
        {"x": i * width, "w": max(1.0, width - 1), "h": CHART_HEIGHT * v / peak, "y": CHART_HEIGHT - CHART_HEIGHT * v / peak, "v": v}
        for i, v in enumerate(values)
    ]


@staff_required(Role.PLATFORM_OPERATOR)
def operator_queue(request: HttpRequest, user: User) -> HttpResponse:
    summary = selectors.queue_summary()
    messages_summary = notify_summary()
    groups = selectors.refused_by_reason()
    peak_group = max((g.count for g in groups), default=1)
    peak_failure = max((n for _r, n in messages_summary.failures_by_reason), default=1)
    return render(
        request,
        "transfer/operator_queue.html",
        {
            "summary": summary,
            "bars": _bars(summary.per_minute),
            "chart": {"w": CHART_WIDTH, "h": CHART_HEIGHT, "peak": max(summary.per_minute)},
            "groups": [(g, plain.explain(g.reason, refused=True), 100 * g.count / peak_group) for g in groups],
            "destinations": selectors.refused_by_destination(),
            "rejected": selectors.rejected_messages(),
            "stuck": selectors.stuck_messages(),
            "patient_messages": messages_summary,
            "message_failures": [(r, n, 100 * n / peak_failure) for r, n in messages_summary.failures_by_reason],
        },
    )


@staff_required(Role.PLATFORM_OPERATOR, Role.PHARMACIST, Role.PHARMACY_ADMIN)
@require_POST
def resend(request: HttpRequest, user: User, outbox_id: str) -> HttpResponse:
    try:
        message = services.outbox_resend(actor=user, message_id=outbox_id)
    except OutboxMessage.DoesNotExist as exc:
        raise Http404 from exc
    messages.success(request, _("The result is queued again for the national platform."))
    if user.role == Role.PLATFORM_OPERATOR:
        return redirect("transfer:operator_queue")
    return redirect("screenings:detail", screening_id=message.screening_id)


@staff_required(Role.PLATFORM_OPERATOR)
@require_POST
def resend_batch(request: HttpRequest, user: User) -> HttpResponse:
    """Resend all refused messages of a destination, or those refused for one reason: a confirmation page first
    (POST without ``confirm``), then the bulk action (POST with it)."""
    destination = request.POST.get("destination", "")
    reason = request.POST["reason"] if "reason" in request.POST else None
    if not destination:
        raise Http404
    if request.POST.get("confirm") != "1":
        rows = OutboxMessage.objects.filter(status=TransferStatus.REJECTED, destination=destination)
        if reason is not None:
            rows = rows.filter(rejection_reason=reason)
        count = rows.count()
        explained = plain.explain(reason, refused=True) if reason is not None else None
        return render(
            request,
            "transfer/resend_confirm.html",
            {"destination": destination, "reason": reason, "explained": explained, "count": count},
        )
    count = services.outbox_resend_batch(actor=user, destination=destination, reason=reason)
    text = ngettext(
        "%(count)d result queued again for the national platform.", "%(count)d results queued again for the national platform.", count
    )
    messages.success(request, text % {"count": count})
    return redirect("transfer:operator_queue")
