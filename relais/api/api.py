"""REST API v1 (django-ninja): the one NinjaAPI, its client authentication and error answers; endpoints live in routers/.

OpenAPI at /api/v1/openapi.json, browsable docs at /api/v1/docs."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.operation import Operation
from ninja.security import HttpBearer

from relais.api import services
from relais.api.common import loc_name
from relais.api.models import ApiClient
from relais.api.routers import auth, patients, screenings, submissions, webhooks
from relais.api.schemas import ErrorOut, FieldError, error_message


class ClientBearer(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> ApiClient | None:
        return services.client_for_token(token)


class RelaisApi(NinjaAPI):
    def get_openapi_operation_id(self, operation: Operation) -> str:
        # The ids published before the split into routers, so that clients generated from the document keep their method names.
        return f"relais_api_views_{operation.view_func.__name__}"


api = RelaisApi(
    title="Relais API",
    version="1",
    urls_namespace="api-v1",
    auth=ClientBearer(),
    description=(
        "Submit point-of-care test results for your pharmacy. Authenticate with private_key_jwt (RFC 7523) at /token, "
        "then send `Authorization: Bearer <token>`. Every error answer has the same shape: `error` (a stable code), "
        "`message` (what to fix) and `fields` (which field, what is wrong). See docs/integrators.md."
    ),
)
api.add_router("", auth.router)
api.add_router("", patients.router)
api.add_router("", submissions.router)  # before screenings: /screenings/batch must not be read as a screening id
api.add_router("", screenings.router)
api.add_router("", webhooks.router)


def _error(status: int, error: str, message: str, fields: list[FieldError] | None = None) -> HttpResponse:
    return api.create_response(HttpRequest(), ErrorOut(error=error, message=message, fields=fields or []).model_dump(), status=status)


@api.exception_handler(NinjaValidationError)
def on_invalid(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
    fields = []
    for error in exc.errors:
        loc = list(error.get("loc", []))
        if loc[:1] == ["body"]:
            loc = loc[2:] if len(loc) > 1 and loc[1] in {"body", "file"} else loc[1:]
        fields.append(FieldError(field=loc_name(loc), message=error_message(error)))
    return _error(422, "invalid_request", "The request does not match the schema: see fields.", fields)


@api.exception_handler(HttpError)
def on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    if exc.status_code == 401:
        return _error(401, "unauthorized", "Send Authorization: Bearer <access_token> obtained from POST /api/v1/token (valid 10 minutes).")
    if isinstance(exc.__cause__, RequestDataTooBig):
        return _error(413, "body_too_large", "The body is larger than 2.5 MB: send at most 1,000 items per batch.")
    if exc.status_code == 400:
        return _error(400, "malformed_body", "The body is not valid JSON (or is nested too deeply): check the syntax.")
    return _error(exc.status_code, "error", str(exc))


@api.exception_handler(Http404)
def on_not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return _error(404, "not_found", "Nothing with this id at your pharmacy.")


@api.exception_handler(PermissionDenied)
def on_forbidden(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
    return _error(403, "forbidden", "This client may not do this.")
