"""The pharmacy's day: counts and chart, the today list as a fragment for the self-refreshing home page, exports."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.utils import formats, timezone
from django.utils.translation import get_language, override
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from relais.accounts.access import staff_required
from relais.accounts.models import Role, User
from relais.core.forms import apply_service_errors
from relais.frontdesk import csvfile, exports
from relais.frontdesk.forms import ExportForm
from relais.frontdesk.pdf import register_pdf
from relais.frontdesk.selectors import DayFigures, day_figures, today_list_version
from relais.screenings import selectors as screening_selectors

CHART_W, CHART_H, CHART_TOP = 560, 160, 10  # the plot area; labels sit below it


def chart(figures: DayFigures) -> dict[str, Any]:
    """Stacked bars (positives on top of the other tests) for the inline SVG, scaled to the busiest day."""
    peak = max((d.tests for d in figures.days), default=0) or 1
    slot = CHART_W / len(figures.days)
    scale = (CHART_H - CHART_TOP) / peak
    bars = []
    for i, d in enumerate(figures.days):
        others_h, positives_h = d.others * scale, d.positives * scale
        bars.append(
            {
                "day": d,
                "x": i * slot + 3,
                "w": slot - 6,
                "label_x": i * slot + slot / 2,
                "others_y": CHART_H - others_h,
                "others_h": others_h,
                "positives_y": CHART_H - others_h - positives_h,
                "positives_h": positives_h,
            }
        )
    return {"bars": bars, "w": CHART_W, "h": CHART_H + 20, "base": CHART_H, "peak": peak if any(d.tests for d in figures.days) else 0}


def _dashboard(request: HttpRequest, user: User, form: ExportForm, *, status: int = 200) -> HttpResponse:
    figures = day_figures(actor=user)
    today = figures.days[-1].day
    periods = [
        (_("Today, %(day)s") % {"day": formats.date_format(today, "l j F")}, figures.today, "today"),
        (_("This week, since %(day)s") % {"day": formats.date_format(figures.week_start, "l j F")}, figures.week, "week"),
    ]
    context = {"periods": periods, "chart": chart(figures), "form": form, "max_days": exports.MAX_DAYS}
    return render(request, "frontdesk/dashboard.html", context, status=status)


@never_cache
@staff_required(Role.PHARMACIST, Role.PHARMACY_ADMIN)
@require_GET
def dashboard(request: HttpRequest, user: User) -> HttpResponse:
    today = timezone.localdate()
    return _dashboard(request, user, ExportForm(initial={"first_day": today, "last_day": today}))


@never_cache
@staff_required(sees_patients=True)
@require_GET
def today_fragment(request: HttpRequest, user: User) -> HttpResponse:
    """The home page's list of today's tests alone, fetched by day-refresh.js every 30 s: 204 while the list is the one
    the page shows (``v``, a fingerprint of ids and statuses), otherwise read and audited as the page."""
    version = today_list_version(actor=user)  # before the read: a change in between only brings one more refresh
    if request.GET.get("v") == version:
        return HttpResponse(status=204)
    screenings = screening_selectors.screenings_today(actor=user)
    context = {"screenings": screenings, "refreshed_at": timezone.localtime(), "list_version": version}
    return render(request, "frontdesk/_today_list.html", context)


def _filename(export: exports.Export) -> str:
    period = export.first_day.isoformat()
    if export.last_day != export.first_day:
        period += f"_{export.last_day.isoformat()}"
    return f"relais-registre-{period}.{export.fmt}"  # dates only: no identity in a file name


@never_cache
@staff_required(sees_patients=True)  # the role is checked before the method
@require_POST
def export(request: HttpRequest, user: User) -> HttpResponseBase:
    form = ExportForm(request.POST)
    if not form.is_valid():
        return _dashboard(request, user, form, status=400)
    try:
        opened = exports.export_open(
            actor=user, first_day=form.cleaned_data["first_day"], last_day=form.cleaned_data["last_day"], fmt=form.cleaned_data["fmt"]
        )
    except ValidationError as exc:
        apply_service_errors(form, exc)
        return _dashboard(request, user, form, status=400)
    response: HttpResponseBase
    if opened.fmt == "pdf":
        response = HttpResponse(register_pdf(export=opened, rows=exports.export_rows(opened)), content_type="application/pdf")
    else:
        response = StreamingHttpResponse(_csv_stream(opened), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{_filename(opened)}"'
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _csv_stream(opened: exports.Export) -> Any:
    """Lines encoded as they are read: the file is never held whole (the labels keep the request's language)."""
    language = get_language()
    with override(language):
        header, sep, yes, no = csvfile.headers(), csvfile.delimiter(), _("Yes"), _("No")

    def stream() -> Any:
        with override(language):
            for line in csvfile.csv_lines(exports.export_rows(opened), header=header, sep=sep, yes=yes, no=no):
                yield line.encode("utf-8")

    return stream()
