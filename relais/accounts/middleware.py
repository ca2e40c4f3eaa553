"""Session lifetime and the second-factor gate for every staff page."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

# The API authenticates its own way (bearer tokens from signed client assertions).
# Patients open their result with a link and their date of birth (/r/); verifiers download the revocation list (/dcc/);
# anyone may read the patient information notice (/notice/, no personal data); /metrics checks its own token or address;
# patients pre-register through their pharmacy's link (/pre/).
PUBLIC_PREFIXES = (
    "/static/",
    "/healthz",
    "/login/",
    "/invite/",
    "/i18n/",
    "/favicon.ico",
    "/api/",
    "/r/",
    "/dcc/",
    "/notice/",
    "/metrics",
    "/pre/",
)
MFA_PREFIXES = ("/mfa/", "/logout/")


class SessionExpiryMiddleware:
    """Log out after RELAIS_SESSION_IDLE_SECONDS without a request or RELAIS_SESSION_ABSOLUTE_SECONDS in all."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            now = int(time.time())
            started = request.session.setdefault("relais_auth_at", now)
            last_seen = request.session.get("relais_seen_at", now)
            idle = now - last_seen > settings.RELAIS_SESSION_IDLE_SECONDS
            too_old = now - started > settings.RELAIS_SESSION_ABSOLUTE_SECONDS
            if idle or too_old:
                logout(request)
                return redirect("/login/?expired=1")
            # Write at most once a minute to keep session writes off the hot path.
            if now - last_seen >= 60 or "relais_seen_at" not in request.session:
                request.session["relais_seen_at"] = now
        return self.get_response(request)


class RequireVerifiedStaffMiddleware:
    """Every page but the public ones needs a logged-in user who passed the TOTP check."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path
        if path.startswith(PUBLIC_PREFIXES):
            return self.get_response(request)
        if not request.user.is_authenticated:
            return redirect("/login/") if path == "/" else redirect_to_login(path, "/login/")
        verified = getattr(request.user, "is_verified", lambda: False)()
        if not verified and not path.startswith(MFA_PREFIXES):
            return redirect("/mfa/")
        return self.get_response(request)
