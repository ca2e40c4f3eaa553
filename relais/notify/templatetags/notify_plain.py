"""``{{ notification.last_error|notify_plain }}``: why a patient message failed, in the reader's language."""

from __future__ import annotations

from django import template

from relais.notify import plain

register = template.Library()


@register.filter
def notify_plain(text: str) -> plain.PlainNotifyError | None:
    return plain.explain(text)
