"""The printable register of a day or a period: A4 landscape, one line per test, pharmacy and period on every page, page n of N."""

from __future__ import annotations

import io
from collections.abc import Iterable

from django.utils import formats, timezone
from django.utils.translation import gettext as _
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.units import mm
from reportlab.pdfgen import canvas

from relais.frontdesk.csvfile import headers
from relais.frontdesk.exports import Export, Row
from relais.results.pdf import LEADING, _fonts, wrap

PAGE_W, PAGE_H = landscape(A4)
MARGIN = 12 * mm
SIZE = 8.5
# Column widths (mm): no., sampled at, patient, date of birth, kit, lot, expiry, result, national platform, certificate:
# 273 mm in all.
WIDTHS = [9 * mm, 26 * mm, 49 * mm, 20 * mm, 45 * mm, 24 * mm, 20 * mm, 38 * mm, 26 * mm, 16 * mm]
TABLE_TOP = PAGE_H - MARGIN - 18 * mm
TABLE_BOTTOM = MARGIN + 8 * mm
PAD = 1.2 * mm


def _cells(n: int, row: Row, *, yes: str, no: str) -> list[str]:
    return [
        str(n),
        row.sampled_at.strftime("%d/%m/%Y %H:%M"),
        row.patient_name,
        row.date_of_birth.strftime("%d/%m/%Y"),
        row.device,
        row.kit_lot,
        row.kit_expiry.strftime("%d/%m/%Y") if row.kit_expiry else "",
        row.result,
        row.transmission,
        yes if row.certificate else no,
    ]


def _wrapped(cells: list[str], font: str) -> list[list[str]]:
    return [wrap(text, font=font, size=SIZE, width=width - 2 * PAD) for text, width in zip(cells, WIDTHS, strict=True)]


def _height(lines: list[list[str]]) -> float:
    return max(len(cell) for cell in lines) * SIZE * LEADING + 2 * PAD


def register_pdf(*, export: Export, rows: Iterable[Row]) -> bytes:
    regular, bold = _fonts()
    yes, no = _("Yes"), _("No")
    head = _wrapped(["#", *headers()], bold)
    head_height = _height(head)
    # Laid out first, so every page can say "page n of N".
    pages: list[list[list[list[str]]]] = [[]]
    y = TABLE_TOP - head_height
    for n, row in enumerate(rows, start=1):
        lines = _wrapped(_cells(n, row, yes=yes, no=no), regular)
        if y - _height(lines) < TABLE_BOTTOM and pages[-1]:
            pages.append([])
            y = TABLE_TOP - head_height
        pages[-1].append(lines)
        y -= _height(lines)

    period = formats.date_format(export.first_day, "SHORT_DATE_FORMAT")
    if export.last_day != export.first_day:
        period = _("%(first)s to %(last)s") % {"first": period, "last": formats.date_format(export.last_day, "SHORT_DATE_FORMAT")}
    title = _("Register of tests")
    generated = _("Generated %(date)s") % {"date": timezone.localtime().strftime("%d/%m/%Y %H:%M")}
    count = sum(len(p) for p in pages)

    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=(PAGE_W, PAGE_H), invariant=1)
    pdf.setTitle(f"{title} · {period}")
    pdf.setAuthor(export.pharmacy_name)
    for number, page in enumerate(pages, start=1):
        pdf.setFont(bold, 13)
        pdf.drawString(MARGIN, PAGE_H - MARGIN - 5 * mm, f"{title} · {export.pharmacy_name}")
        pdf.setFont(regular, 9)
        summary = _("Period: %(period)s · %(count)d tests") % {"period": period, "count": count}
        pdf.drawString(MARGIN, PAGE_H - MARGIN - 11 * mm, summary)
        y = _table_row(pdf, head, TABLE_TOP, bold, shaded=True)
        for lines in page:
            y = _table_row(pdf, lines, y, regular)
        if not page:
            pdf.setFont(regular, 10)
            pdf.drawString(MARGIN, y - 6 * mm, _("No tests in this period."))
        pdf.setFont(regular, 7.5)
        pdf.drawString(MARGIN, MARGIN, generated)
        pdf.drawRightString(PAGE_W - MARGIN, MARGIN, _("Page %(n)d of %(total)d") % {"n": number, "total": len(pages)})
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def _table_row(pdf: canvas.Canvas, lines: list[list[str]], top: float, font: str, *, shaded: bool = False) -> float:
    """One table row whose top edge is at ``top``; returns its bottom edge."""
    height = _height(lines)
    if shaded:
        pdf.setFillColorRGB(0.9, 0.92, 0.94)
        pdf.rect(MARGIN, top - height, sum(WIDTHS), height, stroke=0, fill=1)
        pdf.setFillColorRGB(0, 0, 0)
    pdf.setStrokeColorRGB(0.75, 0.75, 0.75)
    pdf.setLineWidth(0.4)
    pdf.line(MARGIN, top - height, MARGIN + sum(WIDTHS), top - height)
    pdf.setFont(font, SIZE)
    x = MARGIN
    for cell, width in zip(lines, WIDTHS, strict=True):
        for k, text in enumerate(cell):
            pdf.drawString(x + PAD, top - PAD - SIZE - k * SIZE * LEADING + 1.5, text)
        x += width
    return top - height
