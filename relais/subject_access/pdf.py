"""The subject access export as a PDF: the same sections as the JSON, laid out for a person to read."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfgen import canvas

from relais.results.pdf import _fonts, _Page
from relais.subject_access.services import _s


def _when(value: str | None) -> str:
    if not value:
        return "—"
    parsed = datetime.fromisoformat(value)
    if timezone.is_aware(parsed):
        return timezone.localtime(parsed).strftime("%d/%m/%Y %H:%M")
    return parsed.strftime("%d/%m/%Y")


def _section(page: _Page, title: str) -> None:
    page.y -= 3 * mm
    page.text(title, size=13, strong=True)


def _none(page: _Page, items: list[Any]) -> bool:
    if not items:
        page.text(_s("Nothing recorded."), size=9)
    return not items


def subject_access_pdf(*, export: dict[str, Any]) -> bytes:
    regular, bold = _fonts()
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4, invariant=1)
    pdf.setTitle(_s("Your data held by Relais"))
    pdf.setAuthor(export["controller"]["pharmacy"])
    page = _Page(pdf, regular, bold)
    controller = export["controller"]

    page.text(_s("Your data held by Relais"), size=18, strong=True, after=2 * mm)
    page.text(_s("Right of access (GDPR article 15). Generated %(date)s.") % {"date": _when(export["generated_at"])}, size=9)
    page.text(f"{controller['pharmacy']} · FINESS {controller['finess']} · {controller['address']}", size=9, after=4 * mm)

    _section(page, _s("How your data are used"))
    about = export["about"]
    for label, key in (
        (_s("Purposes"), "purposes"),
        (_s("Recipients"), "recipients"),
        (_s("Retention"), "retention"),
        (_("Your rights"), "rights"),
        (_s("Source"), "source"),
    ):
        page.row(label, about[key])

    _section(page, _s("Identity"))
    for record in [export["identity"], *export["other_records"]]:
        if record is not export["identity"]:
            page.text(_s("Earlier record merged into this one"), size=10, strong=True)
        page.row(_("Name"), f"{record['last_name'].upper()} {record['first_names']}")
        page.row(_("Date of birth"), _when(record["date_of_birth"]))
        page.row(_("Sex"), record["sex_label"])
        page.row("NIR", record["nir"] or "—")
        address = " ".join(v for v in (record["address_line"], record["postcode"], record["city"], record["country"]) if v)
        page.row(_("Address"), address or "—")
        page.row(_("Mobile phone"), record["phone"] or "—")
        page.row(_("Email"), record["email"] or "—")
        page.row(_("Registered"), _when(record["registered_at"]))

    _section(page, _("Tests"))
    if not _none(page, export["tests"]):
        for test in export["tests"]:
            title = _s("Test of %(date)s, version %(version)s") % {"date": _when(test["sampled_at"]), "version": test["version"]}
            page.text(f"{title} · {test['status_label']}", size=10, strong=True)
            page.row(_("Device"), f"{test['device']['manufacturer']}, {test['device']['name']}")
            page.row(_("Sample"), test["specimen_label"])
            for result in test["results"]:
                page.row(result["analyte"], result["result_label"])
            if test["correction_reason"]:
                page.row(_s("Reason for the correction"), test["correction_reason"])

    if export.get("test_queue"):
        _section(page, _s("Swabs in the pharmacy's test queue"))
        status = {"waiting": _s("waiting for the result"), "done": _s("result entered (see Tests)"), "cancelled": _s("cancelled")}
        for swab in export["test_queue"]:
            line = f"{swab['device']['manufacturer']}, {swab['device']['name']} · {status[swab['status']]}"
            page.row(_when(swab["sampled_at"]), line)
            if swab["cancel_reason"]:
                page.row(_s("Reason for the cancellation"), swab["cancel_reason"])

    _section(page, _s("Messages"))
    if not _none(page, export["messages"]):
        for message in export["messages"]:
            sent = _when(message["sent_at"] or message["failed_at"] or message["created_at"])
            page.row(f"{message['channel_label']} · {sent}", f"{message['address']} · {message['kind_label']} · {message['status_label']}")

    _section(page, _s("Certificates"))
    certificates = export["certificates"]
    if not _none(page, certificates["issued"] + certificates["not_issued"]):
        for cert in certificates["issued"]:
            dates = {"issued": _when(cert["issued_at"]), "until": _when(cert["valid_until"])}
            validity = _s("issued %(issued)s, valid until %(until)s") % dates
            if cert["revoked_at"]:
                validity += " · " + _s("revoked %(date)s") % {"date": _when(cert["revoked_at"])}
            page.row(cert["uvci"], validity)
        for refusal in certificates["not_issued"]:
            page.row(_s("Not issued"), refusal["reason_label"])

    _section(page, _s("Transmissions to the national platform"))
    if not _none(page, export["transmissions"]):
        for sent in export["transmissions"]:
            outcome = sent["status_label"]
            if sent["acknowledgement_code"]:
                answered = _when(sent["acknowledged_at"] or sent["rejected_at"])
                outcome += f" · {_s('acknowledgement')} {sent['acknowledgement_code']} {answered}"
            if sent["rejection_reason"]:
                outcome += f" · {sent['rejection_reason']}"
            page.row(f"{_when(sent['queued_at'])} · v{sent['version']}", outcome)

    _section(page, _s("Accesses to your data"))
    page.text(_s("Date, pharmacy, who (role) and what was done."), size=9)
    if not _none(page, export["accesses"]):
        for access in export["accesses"]:
            line = f"{_when(access['at'])} · {access['pharmacy'] or '—'} · {access['role']} · {access['action_label']}"
            page.text(line, size=8, after=1 * mm)

    pdf.showPage()
    pdf.save()
    return buffer.getvalue()
