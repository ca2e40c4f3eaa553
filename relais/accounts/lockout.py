"""Login lockout (django-axes): per account and client address, plus a higher ceiling per client address.

AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]] counts failures per pair, so failures from one client never
lock the account's owner out from another client; the client address is the one relais.core.proxy resolved (behind a
trusted proxy, the real client's). A pair alone would let one client try a few passwords on every account in turn:
this handler also locks an address once it has failed RELAIS_LOGIN_FAILURES_PER_ADDRESS times in the cool-off window,
whatever the usernames, set well above AXES_FAILURE_LIMIT so colleagues behind one office router are not locked out by
one of them mistyping.
"""

from __future__ import annotations

from typing import Any

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_failure_limit
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Sum
from django.http import HttpRequest


def address_failures(*, request: HttpRequest, ip_address: str) -> int:
    """Failed logins from one client address in the cool-off window, across all usernames."""
    attempts = AccessAttempt.objects.filter(ip_address=ip_address, attempt_time__gte=get_cool_off_threshold(request))
    return int(attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0)


class LockoutHandler(AxesDatabaseHandler):
    def get_failures(self, request: Any, credentials: dict[str, Any] | None = None) -> int:
        failures = int(super().get_failures(request, credentials))
        ip_address = getattr(request, "axes_ip_address", None)
        if ip_address and address_failures(request=request, ip_address=ip_address) >= settings.RELAIS_LOGIN_FAILURES_PER_ADDRESS:
            # Reported as the account limit so axes' own checks (before and after authentication) lock the request.
            return max(failures, int(get_failure_limit(request, credentials)))
        return failures
