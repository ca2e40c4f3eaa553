"""Readable audit actions of pre-registration, added to relais.audit.labels' table when the app starts."""

from __future__ import annotations

from typing import Any

from django.utils.translation import pgettext_lazy


def _l(text: str) -> Any:
    return pgettext_lazy("audit action", text)


PREREG_LABELS: dict[str, Any] = {
    "prereg.submit": _l("pre-registered (patient's form)"),
    "prereg.withdraw": _l("withdrew a pre-registration (patient)"),
    "prereg.list": _l("listed the pre-registered patients"),
    "prereg.lookup": _l("looked up a pre-registration by its code"),
    "prereg.view": _l("viewed a pre-registration"),
    "prereg.confirm": _l("confirmed a pre-registration at the counter"),
    "prereg.discard": _l("discarded a pre-registration"),
    "prereg.purge": _l("purged expired pre-registrations"),
    "prereg.link_rotate": _l("replaced the pharmacy's pre-registration link"),
}


def register_labels() -> None:
    from relais.audit.labels import ACTION_LABELS

    ACTION_LABELS.update(PREREG_LABELS)
