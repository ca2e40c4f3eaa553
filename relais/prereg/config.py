"""Limits of pre-registration; RELAIS_PREREG in settings may override any of them (tests do)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings

DEFAULTS = {
    "lifetime_hours": 24,  # a pre-registration not confirmed by then is gone
    "per_address_per_hour": 10,  # accepted pre-registrations from one client address
    "per_link_per_hour": 200,  # accepted pre-registrations through one pharmacy's link
}


def limit(name: str) -> int:
    return int(getattr(settings, "RELAIS_PREREG", {}).get(name, DEFAULTS[name]))


def lifetime() -> timedelta:
    return timedelta(hours=limit("lifetime_hours"))


RATE_WINDOW = timedelta(hours=1)
