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

from relais.results.services import result_guidance
from relais.screenings.models import Screening, ScreeningStatus

DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
LEADING = 1.25  # line height as a multiple of the font size


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


def wrap(text: str, *, font: str, size: float, width: float) -> list[str]:
    """Lines that fit ``width``, broken at spaces; a word longer than a line is split across lines, never cut."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split(" "):  # only plain spaces break: a no-break space keeps "Positif :" together
            candidate = f"{line} {word}" if line else word
            if pdfmetrics.stringWidth(candidate, font, size) <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
            while len(word) > 1 and pdfmetrics.stringWidth(word, font, size) > width:
                fit = len(word) - 1
                while fit > 1 and pdfmetrics.stringWidth(word[:fit], font, size) > width:
                    fit -= 1
                lines.append(word[:fit])
                word = word[fit:]
            line = word
        lines.append(line)
    return lines


class _Page:
    """A cursor that writes wrapped text down the page and starts a new page rather than running into the footer."""

    TOP = A4[1] - 25 * mm
    BOTTOM = 20 * mm  # the footer sits below
    LEFT = 20 * mm
    WIDTH = A4[0] - 40 * mm
    LABEL = 52 * mm  # label column; values start at 55 mm
    VALUE_X = LEFT + 55 * mm

    def __init__(self, pdf: canvas.Canvas, regular: str, bold: str) -> None:
        self.pdf, self.regular, self.bold = pdf, regular, bold
        self.y = self.TOP

    def room(self, height: float) -> None:
        if self.y - height < self.BOTTOM:
            self.pdf.showPage()
            self.y = self.TOP

    def draw(self, lines: list[str], *, x: float, y: float, font: str, size: float) -> float:
        """Lines from (x, y) downwards, without moving the cursor; returns the height used."""
        self.pdf.setFont(font, size)
        for n, text in enumerate(lines):
            self.pdf.drawString(x, y - n * size * LEADING, text)
        return len(lines) * size * LEADING

    def text(self, text: str, *, size: float = 10, strong: bool = False, after: float = 2 * mm) -> None:
        font = self.bold if strong else self.regular
        lines = wrap(text, font=font, size=size, width=self.WIDTH)
        self.room(len(lines) * size * LEADING)
        self.y -= self.draw(lines, x=self.LEFT, y=self.y, font=font, size=size) + after

    def row(self, label: str, value: str, *, strong: bool = False) -> None:
        """A label and its value side by side, each wrapped in its own column, so neither runs over the other."""
        value_font = self.bold if strong else self.regular
        labels = wrap(label, font=self.regular, size=10, width=self.LABEL)
        values = wrap(value, font=value_font, size=11, width=self.LEFT + self.WIDTH - self.VALUE_X)
        self.room(max(len(labels) * 10, len(values) * 11) * LEADING)
        used = self.draw(labels, x=self.LEFT, y=self.y, font=self.regular, size=10)
        used = max(used, self.draw(values, x=self.VALUE_X, y=self.y, font=value_font, size=11))
        self.y -= used + 2.5 * mm


def result_pdf(*, screening: Screening) -> bytes:
    from relais.certificates.services import certificate_for_screening

    patient = screening.patient
    pharmacy = screening.pharmacy
    regular, bold = _fonts()
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4, invariant=1)
    pdf.setTitle(_("Test result"))
    pdf.setAuthor(pharmacy.name)
    page = _Page(pdf, regular, bold)

    page.text(_("Test result"), size=18, strong=True, after=4 * mm)
    if not screening.is_current:
        pdf.setFillColorRGB(0.7, 0.1, 0.1)
        page.text(_("OUTDATED: this version was replaced; print the latest one."), size=14, strong=True, after=4 * mm)
        pdf.setFillColorRGB(0, 0, 0)
    page.text(f"{pharmacy.name} · FINESS {pharmacy.finess}", after=0)
    page.text(f"{pharmacy.address_line}, {pharmacy.postcode} {pharmacy.city}", after=8 * mm)

    page.text(_("Patient"), size=12, strong=True)
    page.row(_("Name"), f"{patient.last_name.upper()} {patient.first_names}")
    birth: date = cast(date, patient.date_of_birth)  # EncryptedDateField gives a date
    page.row(_("Date of birth"), birth.strftime("%d/%m/%Y"))
    page.y -= 4 * mm

    page.text(_("Test"), size=12, strong=True)
    page.row(_("Device"), f"{screening.device.manufacturer}, {screening.device.name}")
    page.row(_("Device id (EU list)"), screening.device.device_id)
    page.row(_("Sample"), str(screening.get_specimen_type_display()))
    page.row(_("Sampled at"), timezone.localtime(screening.sampled_at).strftime("%d/%m/%Y %H:%M"))
    page.y -= 4 * mm

    page.text(_("Result"), size=12, strong=True)
    if screening.status == ScreeningStatus.REMOVED:
        page.row(_("Status"), _("This result was withdrawn by the pharmacy."), strong=True)
    else:
        for result in screening.results.all():
            page.row(result.analyte_label, str(result.get_result_display()), strong=True)
        advice = {
            "positive": _("Positive: limit contacts, wear a mask, and call your doctor if you are at risk or feel worse."),
            "invalid": _("Invalid: the test did not work; take a new test."),
            "negative": _("Negative: a rapid test can miss an early infection; test again if symptoms appear."),
        }[result_guidance({r.result for r in screening.results.all()})]
        page.text(advice, size=9)
        if screening.status == ScreeningStatus.CORRECTED and screening.corrects_details_only:
            page.text(_("This document replaces any earlier one: the patient's details were corrected."), size=9)
        elif screening.status == ScreeningStatus.CORRECTED:
            page.text(_("This document replaces any earlier one: the result was corrected."), size=9)

    certificate = certificate_for_screening(screening=screening)
    if certificate is not None:
        size = 70 * mm
        page.room(size + 6 * mm)
        _qr(pdf, certificate.hc1, x=page.LEFT, y=page.y - size - 4 * mm, size=size)
        # Beside the code: its title, UVCI and date, wrapped in the column to its right.
        x = page.LEFT + size + 6 * mm
        width = page.LEFT + page.WIDTH - x
        y = page.y - 12 * mm
        issued = _("Issued %(date)s") % {"date": timezone.localtime(certificate.issued_at).strftime("%d/%m/%Y %H:%M")}
        for text, font, font_size in (
            (_("EU Digital COVID Certificate (test)"), bold, 10.0),
            (certificate.uvci, regular, 8.0),
            (issued, regular, 8.0),
        ):
            y -= page.draw(wrap(text, font=font, size=font_size, width=width), x=x, y=y, font=font, size=font_size) + 2 * mm
        page.y -= size + 6 * mm

    pdf.setFont(regular, 7)
    footer = _("Document generated by Relais on %(date)s.") % {"date": timezone.localtime().strftime("%d/%m/%Y %H:%M")}
    for n, text in enumerate(wrap(footer, font=regular, size=7, width=page.WIDTH)):
        pdf.drawString(page.LEFT, 12 * mm - n * 7 * LEADING, text)
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()
