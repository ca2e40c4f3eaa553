"""The day's register as CSV for a spreadsheet: UTF-8 with BOM, headers in the reader's language, formula-safe cells."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator

from django.utils.translation import get_language
from django.utils.translation import gettext as _

from relais.frontdesk.exports import Row

BOM = "\ufeff"  # Excel reads the file as UTF-8 only with it
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe(value: str) -> str:
    """A cell a spreadsheet shows as text, never runs as a formula (OWASP CSV injection)."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def headers() -> list[str]:
    return [
        _("Sampled at"),
        _("Patient"),
        _("Date of birth"),
        _("Test kit"),
        _("Kit lot"),
        _("Kit expiry date"),
        _("Result"),
        _("National platform"),
        _("Certificate"),
    ]


def delimiter() -> str:
    """French spreadsheets split on semicolons (the comma is their decimal mark); English ones on commas."""
    return ";" if (get_language() or "").startswith("fr") else ","


class _Line:
    """csv.writer's file: hands back each line it writes."""

    def write(self, value: str) -> str:
        return value


def csv_lines(rows: Iterable[Row], *, header: list[str], sep: str, yes: str, no: str) -> Iterator[str]:
    """The file line by line (labels computed by the caller, in the request's language, before streaming starts)."""
    writer = csv.writer(_Line(), delimiter=sep, lineterminator="\r\n")
    yield BOM + writer.writerow([safe(h) for h in header])
    for row in rows:
        cells = [
            row.sampled_at.strftime("%Y-%m-%d %H:%M"),
            row.patient_name,
            row.date_of_birth.isoformat(),
            row.device,
            row.kit_lot,
            row.kit_expiry.isoformat() if row.kit_expiry else "",
            row.result,
            row.transmission,
            yes if row.certificate else no,
        ]
        yield writer.writerow([safe(c) for c in cells])
