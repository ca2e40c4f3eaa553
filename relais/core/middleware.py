"""Request id, client IP and extra security headers for every response."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

from relais.core.context import request_context
from relais.core.proxy import client_address


class RequestContextMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = uuid.uuid4().hex
        client_ip = client_address(request)  # resolved once by TrustedProxyMiddleware: the address lockout also uses
        with request_context(request_id=request_id, client_ip=client_ip, channel="web"):
            response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response


class SecurityHeadersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
        response.setdefault("Cross-Origin-Resource-Policy", "same-origin")
        if not request.path.startswith("/static/"):
            # Pages may show personal data: never store them in any cache.
            response["Cache-Control"] = "no-store"
        return response


class ApiMethodNotAllowedMiddleware:
    """A wrong HTTP method under /api/ answers JSON in the API's error shape (Django's 405 is an empty HTML body)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code == 405 and request.path.startswith("/api/") and "json" not in response.get("Content-Type", ""):
            allowed = response.get("Allow", "")
            message = f"{request.method} is not allowed here: use {allowed}." if allowed else f"{request.method} is not allowed here."
            replacement = JsonResponse({"error": "method_not_allowed", "message": message, "fields": []}, status=405)
            if allowed:
                replacement["Allow"] = allowed
            return replacement
        return response
