"""The result document, drawn on the server with ReportLab: pharmacy, patient, test, result and the certificate's QR code."""

from __future__ import annotations

import functools
import io
from datetime import date
from pathlib import Path
from typing import cast

import qrcode
from django.utils import timezone
from django.utils.translation import gettext as _
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas

from relais.notify.services import result_guidance
from relais.screenings.models import Screening, ScreeningStatus

DEJAVU = Path("/usr/share/fonts/truetype/dejavu")


@functools.cache
def _fonts() -> tuple[str, str]:
    """DejaVu (Latin, Greek, Cyrillic, Vietnamese...) when the system has it, so any name prints; else Helvetica (Latin-1)."""
    regular, bold = DEJAVU / "DejaVuSans.ttf", DEJAVU / "DejaVuSans-Bold.ttf"
    if regular.is_file() and bold.is_file():
        pdfmetrics.registerFont(TTFont("RelaisSans", str(regular)))
        pdfmetrics.registerFont(TTFont("RelaisSans-Bold", str(bold)))
        return "RelaisSans", "RelaisSans-Bold"
    return "Helvetica", "Helvetica-Bold"


def _qr(pdf: canvas.Canvas, text: str, *, x: float, y: float, size: float) -> None:
    """Vector QR code (error correction Q, as the EU DCC specification asks), bottom-left corner at (x, y)."""
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_Q, border=4)
    code.add_data(text)
    code.make(fit=True)
    matrix = code.get_matrix()
    cell = size / len(matrix)
    pdf.setFillColorRGB(1, 1, 1)
    pdf.rect(x, y, size, size, stroke=0, fill=1)
    pdf.setFillColorRGB(0, 0, 0)
    for row, line in enumerate(matrix):
        for col, dark in enumerate(line):
            if dark:
                pdf.rect(x + col * cell, y + size - (row + 1) * cell, cell, cell, stroke=0, fill=1)


def result_pdf(*, screening: Screening) -> bytes:
    from relais.certificates.services import certificate_for_screening

    patient = screening.patient
    pharmacy = screening.pharmacy
    regular, bold = _fonts()
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4, invariant=1)
    pdf.setTitle(_("Test result"))
    pdf.setAuthor(pharmacy.name)
    _width, height = A4
    left = 20 * mm
    y = height - 25 * mm

    def line(label: str, value: str, *, strong: bool = False) -> None:
        nonlocal y
        pdf.setFont(regular, 10)
        pdf.drawString(left, y, label)
        pdf.setFont(bold if strong else regular, 11)
        pdf.drawString(left + 55 * mm, y, value)
        y -= 7 * mm

    pdf.setFont(bold, 18)
    pdf.drawString(left, y, _("Test result"))
    y -= 10 * mm
    if not screening.is_current:
        pdf.setFillColorRGB(0.7, 0.1, 0.1)
        pdf.drawString(left, y, _("OUTDATED: this version was replaced; print the latest one."))
        pdf.setFillColorRGB(0, 0, 0)
        y -= 10 * mm
    pdf.setFont(regular, 10)
    pdf.drawString(left, y, f"{pharmacy.name} · FINESS {pharmacy.finess}")
    y -= 5 * mm
    pdf.drawString(left, y, f"{pharmacy.address_line}, {pharmacy.postcode} {pharmacy.city}")
    y -= 12 * mm

    pdf.setFont(bold, 12)
    pdf.drawString(left, y, _("Patient"))
    y -= 7 * mm
    line(_("Name"), f"{patient.last_name.upper()} {patient.first_names}")
    birth: date = cast(date, patient.date_of_birth)  # EncryptedDateField gives a date
    line(_("Date of birth"), birth.strftime("%d/%m/%Y"))
    y -= 4 * mm

    pdf.setFont(bold, 12)
    pdf.drawString(left, y, _("Test"))
    y -= 7 * mm
    line(_("Device"), f"{screening.device.manufacturer}, {screening.device.name}"[:70])
    line(_("Device id (EU list)"), screening.device.device_id)
    line(_("Sample"), str(screening.get_specimen_type_display()))
    line(_("Sampled at"), timezone.localtime(screening.sampled_at).strftime("%d/%m/%Y %H:%M"))
    y -= 4 * mm

    pdf.setFont(bold, 12)
    pdf.drawString(left, y, _("Result"))
    y -= 7 * mm
    if screening.status == ScreeningStatus.REMOVED:
        line(_("Status"), _("This result was withdrawn by the pharmacy."), strong=True)
    else:
        for result in screening.results.all():
            line(result.analyte_label, str(result.get_result_display()), strong=True)
        advice = {
            "positive": _("Positive: limit contacts, wear a mask, and call your doctor if you are at risk or feel worse."),
            "invalid": _("Invalid: the test did not work; take a new test."),
            "negative": _("Negative: a rapid test can miss an early infection; test again if symptoms appear."),
        }[result_guidance({r.result for r in screening.results.all()})]
        pdf.setFont(regular, 9)
        pdf.drawString(left, y, advice[:120])
        y -= 6 * mm
        if screening.status == ScreeningStatus.CORRECTED:
            pdf.drawString(left, y, _("This document replaces any earlier one: the result was corrected."))
            y -= 6 * mm

    certificate = certificate_for_screening(screening=screening)
    if certificate is not None:
        size = 70 * mm
        _qr(pdf, certificate.hc1, x=left, y=y - size - 4 * mm, size=size)
        pdf.setFont(bold, 10)
        pdf.drawString(left + size + 6 * mm, y - 12 * mm, _("EU Digital COVID Certificate (test)"))
        pdf.setFont(regular, 8)
        pdf.drawString(left + size + 6 * mm, y - 18 * mm, certificate.uvci)
        pdf.drawString(
            left + size + 6 * mm,
            y - 24 * mm,
            _("Issued %(date)s") % {"date": timezone.localtime(certificate.issued_at).strftime("%d/%m/%Y %H:%M")},
        )

    pdf.setFont(regular, 7)
    pdf.drawString(
        left, 12 * mm, _("Document generated by Relais on %(date)s.") % {"date": timezone.localtime().strftime("%d/%m/%Y %H:%M")}
    )
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()
