"""Requests by view and status class, and their latency per view, labelled by the URL pattern's name.

Never the raw path: result links and invitations carry their token in it. In a multi-process server (gunicorn) set
PROMETHEUS_MULTIPROC_DIR to an empty folder private to the service before it starts: every process then writes its
figures there and a scrape reads them all (prometheus_client's multiprocess mode); without it, the figures are this
process's own."""

from __future__ import annotations

import os

from django.http import HttpRequest
from django.urls import Resolver404, resolve
from prometheus_client import Counter, Histogram

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"  # no URL pattern: 404s, scanners; one label for all of them
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

REQUESTS = Counter(
    "relais_http_requests", "HTTP requests answered, by URL pattern name, method and status class", ["view", "method", "status"]
)
LATENCY = Histogram(
    "relais_http_request_duration_seconds", "Time to answer a request, by URL pattern name", ["view"], buckets=LATENCY_BUCKETS
)


def multiprocess_dir() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def view_label(request: HttpRequest) -> str:
    """The matched pattern's name (``results:open``), else its route (``r/<str:token>``): code, never request data."""
    match = getattr(request, "resolver_match", None)
    if match is None:  # answered before URL resolution (a login redirect) or no pattern matched
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return UNMATCHED
    return match.view_name or match.route or "unnamed"


def observe(request: HttpRequest, status: int, seconds: float) -> None:
    view = view_label(request)
    method = request.method if request.method in METHODS else "other"
    REQUESTS.labels(view=view, method=method, status=f"{status // 100}xx").inc()
    LATENCY.labels(view=view).observe(seconds)
