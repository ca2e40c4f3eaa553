"""Every page of the staff site says who may open it (issue 11, point 4), and the rule holds.

The test walks the URL conf: a view without @staff_required or @public fails it by name. Then every staff page is
refused to an anonymous visitor and to each named user whose role the page's rule excludes, and one tenancy helper
scopes every pharmacy read.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver

from relais.accounts.access import AccessRule, access_rule, public, staff_required
from relais.accounts.middleware import PUBLIC_PREFIXES
from relais.accounts.models import Role, User
from relais.core.tenancy import for_actor, get_for_actor
from relais.patients.models import Patient
from relais.screenings.models import Screening

# Mounted here but guarded their own way: the REST API authenticates clients with bearer tokens (relais.api), and
# Django's language switch shows no data.
OWN_AUTH_PREFIXES = ("api/", "i18n/")
# Patient result pages: a link and the date of birth, no account.
PATIENT_PREFIXES = ("r/",)
# Staff pages not yet carrying @staff_required or @public (none left: notify's resend and results' PDF carry it now).
PENDING: set[str] = set()

USERS = ("owner", "admin", "operator", "auditor")  # one of each role


def _patterns(resolvers: list[Any], prefix: str = "") -> Iterator[tuple[str, Callable[..., Any]]]:
    for entry in resolvers:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _patterns(entry.url_patterns, route)
        elif isinstance(entry, URLPattern):
            yield route, entry.callback


def _name(view: Callable[..., Any]) -> str:
    cls = getattr(view, "view_class", None)
    target = cls or view
    return f"{target.__module__}.{target.__qualname__}"


def _exempt(route: str, view: Callable[..., Any]) -> bool:
    return route.startswith(OWN_AUTH_PREFIXES + PATIENT_PREFIXES) or _name(view) in PENDING


def _url(route: str) -> str:
    """A concrete path for a route, with made-up values for its parameters (a random UUID names nothing)."""

    def value(match: re.Match[str]) -> str:
        return str(uuid.uuid4()) if match.group(1) == "uuid" else "1" if match.group(1) == "int" else "x"

    return "/" + re.sub(r"<(?:(\w+):)?\w+>", value, route)


def staff_pages(*, without_object: bool = False) -> list[Any]:
    pages = []
    for route, view in _patterns(get_resolver().url_patterns):
        rule = access_rule(view)
        if rule is not None and not rule.public and not (without_object and "<" in route):
            pages.append(pytest.param(_url(route), _name(view), rule, id=_name(view)))
    return pages


def test_every_view_declares_who_may_open_it() -> None:
    undeclared = [
        f"/{route} -> {_name(view)}"
        for route, view in _patterns(get_resolver().url_patterns)
        if access_rule(view) is None and not _exempt(route, view)
    ]
    assert undeclared == [], "give these views @staff_required(...) or @public (relais.accounts.access):\n" + "\n".join(undeclared)


def test_the_walk_sees_the_staff_site() -> None:
    names = {page.values[1] for page in staff_pages()}
    assert {"relais.patients.views.patient_detail", "relais.api.web_views.client_list", "relais.accounts.views.team"} <= names
    assert len(names) >= 25


def test_public_views_are_public_for_the_middleware_too() -> None:
    """A public page under a staff path would still demand a login; a staff page under a public path would rely on the
    decorator alone. Both say the same thing."""
    disagree = []
    for route, view in _patterns(get_resolver().url_patterns):
        rule = access_rule(view)
        if rule is not None and rule.public != ("/" + route).startswith(PUBLIC_PREFIXES):
            disagree.append(f"/{route} -> {_name(view)} ({'public' if rule.public else 'staff'})")
    assert disagree == []


@pytest.mark.django_db
@pytest.mark.parametrize(("url", "name", "rule"), staff_pages())
def test_anonymous_visitor_is_sent_to_login(client: Any, url: str, name: str, rule: AccessRule) -> None:
    for method in (client.get, client.post):
        response = method(url)
        assert response.status_code == 302, name
        assert response["Location"].startswith("/login/"), name


@pytest.mark.parametrize(("url", "name", "rule"), staff_pages())
def test_refused_roles_get_403(request: Any, as_user: Any, url: str, name: str, rule: AccessRule) -> None:
    refused = [request.getfixturevalue(who) for who in USERS]
    refused = [user for user in refused if not rule.allows(user)]
    for user in refused:
        response = as_user(user).post(url)  # POST: the rule is checked before the view looks at the method
        assert response.status_code == 403, f"{name} answered {response.status_code} to {user.role}"


@pytest.mark.parametrize(("url", "name", "rule"), staff_pages(without_object=True))
def test_allowed_roles_are_let_in(request: Any, as_user: Any, url: str, name: str, rule: AccessRule) -> None:
    for who in USERS:
        user = request.getfixturevalue(who)
        if rule.allows(user):
            assert as_user(user).get(url).status_code != 403, f"{name} refused {user.role}"


# --- the decorator alone, without the middleware in front of it ---------------------------------------------------


@staff_required(Role.PHARMACY_ADMIN)
def _admin_page(request: HttpRequest, user: User, item: str) -> HttpResponse:
    return HttpResponse(f"{user.email} {item}")


@staff_required(verified=False)
def _login_step(request: HttpRequest, user: User) -> HttpResponse:
    return HttpResponse("ok")


def _request(user: Any, *, verified: bool = True) -> HttpRequest:
    request = RequestFactory().get("/somewhere/?x=1")
    if not isinstance(user, AnonymousUser):
        user.is_verified = lambda: verified
    request.user = user
    return request


def test_decorator_sends_anonymous_to_login_and_unverified_to_mfa(admin: User) -> None:
    response = _admin_page(_request(AnonymousUser()), item="a")
    assert response.status_code == 302 and response["Location"] == "/login/?next=/somewhere/"
    assert _admin_page(_request(admin, verified=False), item="a")["Location"] == "/mfa/"
    assert _login_step(_request(admin, verified=False)).status_code == 200


def test_decorator_passes_the_user_and_refuses_other_roles(admin: User, owner: User, operator: User) -> None:
    assert _admin_page(_request(admin), item="a").content == b"admin@test.example a"
    for user in (owner, operator):
        with pytest.raises(PermissionDenied):
            _admin_page(_request(user), item="a")


def test_rules_are_readable_on_the_view() -> None:
    assert access_rule(_admin_page) == AccessRule(roles=frozenset({Role.PHARMACY_ADMIN}))
    assert access_rule(public(lambda request: HttpResponse())) == AccessRule(public=True)
    assert access_rule(lambda request: HttpResponse()) is None


def test_sees_patients_rule_refuses_operators_and_auditors(owner: User, admin: User, operator: User, auditor: User) -> None:
    rule = AccessRule(sees_patients=True)
    assert rule.allows(owner) and rule.allows(admin)
    assert not rule.allows(operator) and not rule.allows(auditor)


# --- tenancy -------------------------------------------------------------------------------------------------------


def test_for_actor_scopes_to_the_actor_pharmacy(screening: Any, owner: User, colleague: User, stranger: User) -> None:
    assert list(for_actor(Screening, owner)) == [screening]
    assert list(for_actor(Screening.objects.filter(is_current=True), colleague)) == [screening]
    assert list(for_actor(Screening, stranger)) == []
    assert get_for_actor(Patient, colleague, screening.patient_id).pk == screening.patient_id
    with pytest.raises(Patient.DoesNotExist):
        get_for_actor(Patient, stranger, screening.patient_id)


def test_for_actor_refuses_who_sees_no_patients(screening: Any, operator: User, auditor: User, pharmacy: Any) -> None:
    for user in (operator, auditor):
        with pytest.raises(PermissionDenied):
            for_actor(Screening, user)
        with pytest.raises(PermissionDenied):  # no pharmacy: no tenant to scope to, even for rows without patient data
            for_actor(User, user, patient_data=False)
    auditor.pharmacy = pharmacy
    with pytest.raises(PermissionDenied):  # an auditor attached to a pharmacy still sees no patient
        for_actor(Screening, auditor)
    assert set(for_actor(User, auditor, patient_data=False)) == set(User.objects.filter(pharmacy=pharmacy))


def test_for_actor_follows_a_relation(screening: Any, owner: User, stranger: User) -> None:
    assert list(for_actor(Patient, owner, field="screenings__pharmacy")) == [screening.patient]
    assert list(for_actor(Patient, stranger, field="screenings__pharmacy")) == []
