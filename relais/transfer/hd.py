"""HL7 v2 hierarchic designators (HD) read from the configuration: a destination's receiving application and facility.

Pure (no Django settings, no app imports) so that relais/settings.py can check every destination when it loads.
A value is ``NAME`` or ``NAME^OID^ISO`` (HD-1 namespace id, HD-2 universal id, HD-3 universal id type): the name is
1-20 letters, digits, spaces, dots, hyphens or underscores (no HL7 delimiter), the OID digits separated by dots."""

from __future__ import annotations

import re

from django.core.exceptions import ImproperlyConfigured

DEFAULT_RECEIVER = "SIDEP"  # SI-DEP's OIDs are not published: its namespace only, until the platform gives them
HD_SETTINGS = ("receiving_application", "receiving_facility")
_NAME = re.compile(r"[A-Za-z0-9._ -]{1,20}")
_OID = re.compile(r"[012](\.(0|[1-9][0-9]*))+")


def parse_hd(value: object, *, where: str) -> str:
    """The ER7 text of an HD written ``NAME`` or ``NAME^OID^ISO`` (surrounding spaces ignored); ImproperlyConfigured
    naming ``where`` otherwise."""
    if not isinstance(value, str):
        raise ImproperlyConfigured(f"{where}: an HL7 HD must be a string, NAME or NAME^OID^ISO")
    parts = [part.strip() for part in value.strip().split("^")]
    if not _NAME.fullmatch(parts[0]):
        raise ImproperlyConfigured(
            f"{where}: {value!r} is not NAME or NAME^OID^ISO (a name of 1-20 letters, digits, '.', '-', '_' or spaces)"
        )
    if len(parts) == 1:
        return parts[0]
    if len(parts) != 3 or not _OID.fullmatch(parts[1]) or parts[2] != "ISO":
        raise ImproperlyConfigured(f"{where}: {value!r} is not NAME^OID^ISO (the OID: digits separated by dots, such as 1.2.250.1.999)")
    return "^".join(parts)


def receiving_hds(config: dict[str, object], *, where: str) -> tuple[str, str]:
    """(MSH-5, MSH-6) of one destination's configuration: its receiving_application and receiving_facility, each
    DEFAULT_RECEIVER when not set."""
    return (
        parse_hd(config.get("receiving_application", DEFAULT_RECEIVER), where=f"{where}: receiving_application"),
        parse_hd(config.get("receiving_facility", DEFAULT_RECEIVER), where=f"{where}: receiving_facility"),
    )
