"""POST /token: a signed client assertion exchanged for a short-lived bearer token."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Form, Router, Status

from relais.api import services
from relais.api.schemas import ErrorOut, TokenErrorOut, TokenOut
from relais.core.context import request_context

router = Router()


def _audience(request: HttpRequest) -> str:
    return request.build_absolute_uri("/api/v1/token")


@router.post("/token", response={200: TokenOut, 400: TokenErrorOut, 401: TokenErrorOut, 422: ErrorOut}, auth=None, tags=["auth"])
def token(
    request: HttpRequest,
    grant_type: str = Form(""),
    client_id: str = Form(""),
    client_assertion_type: str = Form(""),
    client_assertion: str = Form(""),
) -> Any:
    """Exchange a signed client assertion (JWT, ES256 or RS256, exp <= 5 min, unique jti, aud = this URL) for a bearer token."""
    fields = {
        "grant_type": grant_type,
        "client_id": client_id,
        "client_assertion_type": client_assertion_type,
        "client_assertion": client_assertion,
    }
    missing = [name for name, value in fields.items() if not value]
    if missing:  # RFC 6749 section 5.2: a missing parameter is invalid_request (400)
        return Status(400, TokenErrorOut(error="invalid_request", error_description=f"missing form field(s): {', '.join(missing)}"))
    if grant_type != "client_credentials":
        return Status(400, TokenErrorOut(error="unsupported_grant_type", error_description="use grant_type=client_credentials"))
    if client_assertion_type != services.ASSERTION_TYPE:
        return Status(
            400, TokenErrorOut(error="invalid_request", error_description=f"client_assertion_type must be {services.ASSERTION_TYPE}")
        )
    try:
        with request_context(channel="api"):
            issued = services.token_issue(client_id=client_id, assertion=client_assertion, audience=_audience(request))
    except services.TokenError as exc:
        return Status(401, TokenErrorOut(error=exc.code, error_description=exc.description))
    return Status(200, TokenOut(access_token=issued.access_token, token_type="Bearer", expires_in=issued.expires_in))  # noqa: S106
