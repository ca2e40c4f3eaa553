"""Transfer errors and outages in plain words on pages: ``{% load transfer_plain %}``.

``{{ text|plain_error }}`` (a retried failure) and ``{{ text|plain_refusal }}`` (a refusal) give a PlainError: its
``sentence`` for the pharmacist, ``raw`` for the details. ``{% transfer_outage as outage %}`` gives the destination's
outage once per request, however many rows ask."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import template
from django.core.exceptions import ImproperlyConfigured
from django.utils import formats, timezone
from django.utils.translation import pgettext

from relais.accounts.models import Role
from relais.transfer import plain, selectors
from relais.transfer.destinations import destination

register = template.Library()

_CACHE = "_relais_transfer_outage"


@register.filter
def plain_error(text: str) -> plain.PlainError | None:
    return plain.explain(text)


@register.filter
def plain_refusal(text: str) -> plain.PlainError | None:
    return plain.explain(text, refused=True)


@register.filter
def since_text(when: datetime | None) -> str:
    """A time in the reader's language ("10 h 42" in French, "10:42" in English), with the day when not today."""
    if when is None:
        return ""
    local = timezone.localtime(when)
    if local.date() == timezone.localdate():
        return formats.date_format(local, pgettext("time of day", "H:i"))
    return formats.date_format(local, pgettext("day and time of day", "d/m/Y H:i"))


def outage_for(request: Any) -> selectors.Outage | None:
    """The outage of the destination in force, for this request's reader (a pharmacy counts its own waiting
    messages); computed once per request."""
    if request is None:
        return None
    if hasattr(request, _CACHE):
        return getattr(request, _CACHE)  # type: ignore[no-any-return]
    user = getattr(request, "user", None)
    found = None
    if user is not None and user.is_authenticated:
        try:
            name = destination().name
        except ImproperlyConfigured:
            name = ""
        if name and user.role == Role.PLATFORM_OPERATOR:
            found = selectors.destination_outage(destination=name)
        elif name and user.sees_patients:
            found = selectors.destination_outage(destination=name, pharmacy_id=user.tenant_id)
    setattr(request, _CACHE, found)
    return found


@register.simple_tag(takes_context=True)
def transfer_outage(context: template.Context) -> selectors.Outage | None:
    return outage_for(context.get("request"))
