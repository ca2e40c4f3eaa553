"""The result PDF read back as a reader would (pdfplumber): every sentence whole, no text over other text or the QR code,
nothing off the page, in French and English, for each kind of result."""

from __future__ import annotations

import io
from typing import Any

import pdfplumber
import pytest
from django.utils import translation
from django.utils.translation import gettext as _

from relais.intake.services import screening_correct, screening_record
from relais.patients.services import patient_register
from relais.results.pdf import result_pdf
from relais.screenings.models import Screening
from relais.screenings.vocab import RESULT_DETECTED, RESULT_INVALID, RESULT_NOT_DETECTED
from tests.factories import identity, screening_input

pytestmark = pytest.mark.django_db
MM = 72 / 25.4
TOLERANCE = 0.5  # points: boxes that merely touch do not overlap

ADVICE = {
    "positive": "Positive: limit contacts, wear a mask, and call your doctor if you are at risk or feel worse.",
    "negative": "Negative: a rapid test can miss an early infection; test again if symptoms appear.",
    "invalid": "Invalid: the test did not work; take a new test.",
    "withdrawn": "This result was withdrawn by the pharmacy.",
    "corrected": "This document replaces any earlier one: the result was corrected.",
    "outdated": "OUTDATED: this version was replaced; print the latest one.",
}


def _words(text: str) -> str:
    return " ".join(text.replace("\xa0", " ").replace("\u202f", " ").split())


def _screening(owner: Any, patient: Any, kind: str) -> tuple[Screening, list[str]]:
    code = {"positive": RESULT_DETECTED, "invalid": RESULT_INVALID}.get(kind, RESULT_NOT_DETECTED)
    screening = screening_record(actor=owner, patient_id=patient.pk, data=screening_input(results={"sars-cov-2": code}))
    if kind == "withdrawn":
        return screening_correct(actor=owner, screening_id=screening.pk, reason="wrong patient", remove=True), [ADVICE["withdrawn"]]
    if kind in ("corrected", "outdated"):
        latest = screening_correct(actor=owner, screening_id=screening.pk, reason="misread", results={"sars-cov-2": RESULT_DETECTED})
        if kind == "corrected":
            return latest, [ADVICE["positive"], ADVICE["corrected"]]
        return Screening.objects.get(pk=screening.pk), [ADVICE["outdated"], ADVICE["negative"]]
    return screening, [ADVICE[kind]]


def _overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return (
        a["x0"] < b["x1"] - TOLERANCE
        and b["x0"] < a["x1"] - TOLERANCE
        and a["top"] < b["bottom"] - TOLERANCE
        and b["top"] < a["bottom"] - TOLERANCE
    )


def _check(data: bytes, sentences: list[str]) -> None:
    with pdfplumber.open(io.BytesIO(data)) as document:
        for page in document.pages:
            words = page.extract_words(use_text_flow=True, keep_blank_chars=False)
            assert words
            for word in words:
                inside = 10 * MM <= word["x0"] and word["x1"] <= page.width - 10 * MM
                assert inside and 10 * MM <= word["top"] and word["bottom"] <= page.height - 10 * MM, f"off the page: {word}"
            clashes = [(a["text"], b["text"]) for i, a in enumerate(words) for b in words[i + 1 :] if _overlap(a, b)]
            assert clashes == [], f"overlapping text: {clashes}"
            if page.rects:  # the QR code: vector squares on a white background
                qr = {
                    "x0": min(r["x0"] for r in page.rects),
                    "x1": max(r["x1"] for r in page.rects),
                    "top": min(r["top"] for r in page.rects),
                    "bottom": max(r["bottom"] for r in page.rects),
                }
                assert [w["text"] for w in words if _overlap(w, qr)] == []
        text = _words(" ".join(page.extract_text(use_text_flow=True) for page in document.pages))
    for sentence in sentences:
        assert _words(_(sentence)) in text, f"not whole: {_(sentence)!r} in {text!r}"


@pytest.mark.parametrize("language", ["fr", "en"])
@pytest.mark.parametrize("kind", ["positive", "negative", "invalid", "withdrawn", "corrected", "outdated"])
def test_every_sentence_is_whole_and_no_text_overlaps(owner: Any, patient: Any, language: str, kind: str) -> None:
    screening, sentences = _screening(owner, patient, kind)
    with translation.override(language):
        _check(result_pdf(screening=screening), sentences)


@pytest.mark.parametrize("language", ["fr", "en"])
def test_long_names_and_values_wrap_instead_of_running_off(owner: Any, language: str) -> None:
    long_name = identity(
        last_name="DE LA TOUR D'AUVERGNE-LAURAGUAIS-MONTMORENCY-" + "X" * 40,
        first_names="Marie-Amélie Geneviève Éléonore Anne-Sophie Bérengère Clothilde",
        nir="",
        email="",
        phone="",
    )
    patient = patient_register(actor=owner, identity=long_name)
    screening = screening_record(actor=owner, patient_id=patient.pk, data=screening_input(results={"sars-cov-2": RESULT_DETECTED}))
    with translation.override(language):
        data = result_pdf(screening=screening)
        _check(data, [ADVICE["positive"]])
    with pdfplumber.open(io.BytesIO(data)) as document:
        text = "".join("".join(page.extract_text().split()) for page in document.pages)
    assert "DELATOURD'AUVERGNE-LAURAGUAIS-MONTMORENCY-" + "X" * 40 in text.upper()  # split across lines, not cut


@pytest.mark.parametrize("kind", ["positive", "outdated"])
def test_the_same_without_dejavu_fonts(owner: Any, patient: Any, kind: str, monkeypatch: Any) -> None:
    monkeypatch.setattr("relais.results.pdf._fonts", lambda: ("Helvetica", "Helvetica-Bold"))
    screening, sentences = _screening(owner, patient, kind)
    with translation.override("fr"):
        _check(result_pdf(screening=screening), sentences)
