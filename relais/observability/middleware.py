"""Counts every request the application answers (static files served by WhiteNoise above it are not counted)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from relais.observability.request_metrics import observe

log = logging.getLogger(__name__)


class RequestMetricsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        try:
            observe(request, response.status_code, time.perf_counter() - started)
        except Exception:  # a figure lost never costs the answer
            log.exception("request metrics: could not record a request")
        return response
