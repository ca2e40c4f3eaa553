"""Counts every request the application answers (static files served by WhiteNoise above it are not counted)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from relais.core.context import current_context
from relais.core.logging import REQUEST_ID_KEY
from relais.observability.request_metrics import observe

log = logging.getLogger(__name__)


class RequestMetricsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        # Django logs a 4xx or 5xx answer once every middleware has returned, outside the request's context: leave the
        # id on the request, where the log filter finds it.
        request.META[REQUEST_ID_KEY] = current_context().request_id
        response = self.get_response(request)
        try:
            observe(request, response.status_code, time.perf_counter() - started)
        except Exception:  # a figure lost never costs the answer
            log.exception("request metrics: could not record a request")
        return response
