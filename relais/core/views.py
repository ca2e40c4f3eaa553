from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from django.views.defaults import bad_request as default_bad_request
from django.views.defaults import page_not_found

from relais.accounts.access import public
from relais.ops.readiness import readiness


@public
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        database = "ok"
    except Exception:  # the probe reports, it does not crash
        database = "error"
    status = 200 if database == "ok" else 503
    return JsonResponse({"status": "ok" if status == 200 else "degraded", "database": database}, status=status)


@public
@require_GET
def healthz_live(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. No database: a database outage must not get every process restarted."""
    return JsonResponse({"status": "ok"})


@public
@require_GET
def healthz_ready(request: HttpRequest) -> JsonResponse:
    """Readiness: database reachable, migrations applied, no queue stalled; 503 names the failing parts only."""
    ready, parts = readiness()
    return JsonResponse({"status": "ok" if ready else "not ready", **parts}, status=200 if ready else 503)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """API clients get JSON in the API's error shape; people get the page."""
    if request.path.startswith("/api/"):
        return JsonResponse({"error": "not_found", "message": "No such address in the API: see /api/v1/docs.", "fields": []}, status=404)
    return page_not_found(request, exception)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if request.path.startswith("/api/"):
        if isinstance(exception, RequestDataTooBig):
            message = "The body is larger than 2.5 MB: send at most 1,000 items per batch, or upload files with /submissions/csv."
            return JsonResponse({"error": "body_too_large", "message": message, "fields": []}, status=413)
        return JsonResponse({"error": "bad_request", "message": "The request could not be read.", "fields": []}, status=400)
    return default_bad_request(request, exception)
