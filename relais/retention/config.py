"""RELAIS_RETENTION: how many days each class of data is kept, read and checked when settings load."""

from __future__ import annotations

import json
from collections.abc import Mapping

from django.core.exceptions import ImproperlyConfigured

# Days. Identities and results follow the national platform (3 months after sampling, 6 for positives); what only
# serves delivery goes sooner; the audit log stays a year.
DEFAULT_RETENTION: dict[str, int] = {
    "identities": 92,  # patient identity, screenings and results, counted from sampling (negative or invalid)
    "identities_positive": 184,  # the same when any result of the test was positive
    "result_links": 45,  # links given to patients, counted from their creation (they expire well before)
    "notifications": 45,  # sent / failed / cancelled messages with their encrypted addresses, from creation
    "webhook_deliveries": 30,  # delivered or failed webhook deliveries and their payloads, from creation
    "submissions": 30,  # finished batches / CSV files, their items and error reports, from creation
    "idempotency": 7,  # stored API answers replayed for a repeated Idempotency-Key, from creation
    "outbox_payloads": 30,  # acknowledgement texts and rejection reasons of settled transfer messages, from settlement
    "sessions": 7,  # Django sessions, counted from their expiry
    "login_attempts": 30,  # django-axes attempts, failures and access logs, from the attempt
    "audit": 365,  # audit events, purged by whole sealed segments
}


def parse_retention(overrides_json: str, env: Mapping[str, str]) -> dict[str, int]:
    """Defaults, then RELAIS_RETENTION_JSON ({"class": days}), then RELAIS_RETENTION_<CLASS> variables.

    An unknown class or a value that is not a positive whole number refuses to start, naming it."""
    retention = dict(DEFAULT_RETENTION)
    overrides: dict[str, object] = {}
    if overrides_json.strip():
        try:
            loaded = json.loads(overrides_json)
        except ValueError as exc:
            raise ImproperlyConfigured("Refusing to start: RELAIS_RETENTION_JSON is not valid JSON") from exc
        if not isinstance(loaded, dict):
            raise ImproperlyConfigured("Refusing to start: RELAIS_RETENTION_JSON must be an object of class: days")
        overrides.update(loaded)
    prefix = "RELAIS_RETENTION_"
    for variable, text in env.items():
        if variable.startswith(prefix) and variable != "RELAIS_RETENTION_JSON":
            overrides[variable[len(prefix) :].lower()] = text
    for name, value in overrides.items():
        if name not in DEFAULT_RETENTION:
            known = ", ".join(DEFAULT_RETENTION)
            raise ImproperlyConfigured(f"Refusing to start: unknown retention class {name!r} (known: {known})")
        try:
            days = int(str(value))
        except ValueError:
            days = 0
        if isinstance(value, bool) or isinstance(value, float) or days <= 0:
            raise ImproperlyConfigured(f"Refusing to start: retention of {name!r} must be a positive number of days, not {value!r}")
        retention[name] = days
    if retention["identities_positive"] < retention["identities"]:
        raise ImproperlyConfigured("Refusing to start: retention of 'identities_positive' is shorter than 'identities'")
    return retention
