from __future__ import annotations

import time
from typing import Any

from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver


@receiver(user_logged_in)
def start_session_clock(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """The absolute session lifetime counts from the password login."""
    if request is not None and hasattr(request, "session"):
        now = int(time.time())
        request.session["relais_auth_at"] = now
        request.session["relais_seen_at"] = now
