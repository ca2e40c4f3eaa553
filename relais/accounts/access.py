"""Who may open a page: one decorator on every staff view, one marker on every public one.

RequireVerifiedStaffMiddleware already sends anonymous and not-yet-verified users away from non-public paths; the
decorator checks again (a view must not depend on where its URL is mounted) and adds the role. tests/accounts/test_access.py
walks the URL conf and fails on any view that declares neither.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.shortcuts import redirect

from relais.accounts.models import Role, User

P = ParamSpec("P")
V = TypeVar("V", bound=Callable[..., Any])

StaffView = Callable[Concatenate[HttpRequest, User, P], HttpResponseBase]
View = Callable[Concatenate[HttpRequest, P], HttpResponseBase]


@dataclass(frozen=True)
class AccessRule:
    """What a view asks of its user; ``public`` views ask nothing."""

    public: bool = False
    roles: frozenset[str] = frozenset()  # empty: any staff role
    sees_patients: bool = False
    verified: bool = True  # False only for the pages that complete or end a login (second factor, logout)

    def allows(self, user: User) -> bool:
        if self.public:
            return True
        if self.roles and user.role not in self.roles:
            return False
        return user.sees_patients or not self.sees_patients


PUBLIC = AccessRule(public=True)


def access_rule(view: Callable[..., Any]) -> AccessRule | None:
    """The rule a URL's callback declares (class-based views declare it as a class attribute), or None."""
    rule = getattr(view, "access_rule", None)
    if rule is None:
        rule = getattr(getattr(view, "view_class", None), "access_rule", None)
    return rule if isinstance(rule, AccessRule) else None


def public(view: V) -> V:
    """Open to anyone, logged in or not: the page must show no personal data (its path is in PUBLIC_PREFIXES)."""
    view.__dict__["access_rule"] = PUBLIC
    return view


def staff_required(*roles: Role, sees_patients: bool = False, verified: bool = True) -> Callable[[StaffView[P]], View[P]]:
    """A logged-in user who passed the second factor, of one of ``roles`` (any role when none is given), and, with
    ``sees_patients``, one whose work needs patient identity (pharmacy staff, never operators or auditors).

    The view receives the typed user as its second argument: ``def view(request, user, **url_kwargs)``. A user who
    may not open the page gets 403 before the view runs; an anonymous one is sent to the login page."""
    rule = AccessRule(roles=frozenset(roles), sees_patients=sees_patients, verified=verified)

    def decorate(view: StaffView[P]) -> View[P]:
        @functools.wraps(view)
        def guarded(request: HttpRequest, *args: P.args, **kwargs: P.kwargs) -> HttpResponseBase:
            user = request.user
            if not user.is_authenticated:
                return redirect_to_login(request.path, "/login/")  # as the middleware: the path, never its query
            if not isinstance(user, User):
                raise PermissionDenied
            if rule.verified and not getattr(user, "is_verified", lambda: False)():
                return redirect("/mfa/")
            if not rule.allows(user):
                raise PermissionDenied
            return view(request, user, *args, **kwargs)

        guarded.__dict__["access_rule"] = rule
        return guarded

    return decorate
