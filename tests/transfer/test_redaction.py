"""Issue 12, item 7: a rejection quoting the patient's identity in any spelling is stored redacted."""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relais.transfer.delivery import _redacted
from relais.transfer.outcome import Outcome
from relais.transfer.replies import IdentityValues, redact_identity

DATE_FORMATS = ("%d/%m/%Y", "{d}/{m}/%Y", "%Y-%m-%d", "%d.%m.%Y", "%d-%m-%Y", "%Y%m%d", "%d/%m/%y")


def _render(day: date, fmt: str) -> str:
    return day.strftime(fmt.replace("{d}", str(day.day)).replace("{m}", str(day.month)))


def _plain(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def _spellings(name: str) -> list[str]:
    forms = [name, name.upper(), name.lower(), name.title()]
    return forms + [_plain(f) for f in forms]


@pytest.mark.django_db
def test_title_case_names_and_french_dates_in_a_rejection_are_redacted(patient: Any, screening: Any) -> None:
    """Before the fix only the exact and upper-case spellings and ISO/HL7 dates were replaced."""
    detail = "Patient Durand-Testeur Camille (durand testeur) né le 12/03/1994 alias 12.03.1994, NIR 2 94 03 75 120 005 91"
    outcome = _redacted(Outcome.rejected(detail), screening)
    for leaked in ("Durand", "durand", "Testeur", "testeur", "Camille", "12/03/1994", "12.03.1994", "2 94 03"):
        assert leaked not in outcome.detail, leaked
    assert outcome.detail.startswith("Patient [redacted]") and "né le [redacted]" in outcome.detail


def test_every_form_of_the_birth_date_and_identifiers() -> None:
    values = IdentityValues(
        names=("DURAND-TESTEUR", "Jean-Pierre Émile"),
        texts=("camille.durand@example.org", "12 rue de la Paix", "Paris"),
        digits=("294037512000591", "+33612345678", "75002"),
        birth_date=date(1994, 3, 2),
    )
    quoted = [_render(date(1994, 3, 2), f) for f in DATE_FORMATS] + ["2 94 03 75 120 005 91", "2940375120005", "294037512000591"]
    quoted += ["06 12 34 56 78", "+33 6 12 34 56 78", "0612345678", "CAMILLE.DURAND@EXAMPLE.ORG", "12 RUE DE LA PAIX", "75002"]
    quoted += ["Jean-Pierre", "JEAN PIERRE", "jean-pierre emile", "Emile", "ÉMILE", "Durand-Testeur", "DURAND TESTEUR", "DURAND\\T\\X"]
    for text in quoted:
        redacted = redact_identity(f"refused: {text}; see PID", values)
        assert "[redacted]" in redacted and redacted.endswith("; see PID"), (text, redacted)
        assert not any(ch.isdigit() for ch in redacted.replace("[redacted]", "")) or text.startswith(("DURAND", "Jean")), redacted
    untouched = "refused: field OBX-5 empty, code 2000, Parisian site, Durandal, 1994"
    assert redact_identity(untouched, values) == untouched  # other words and numbers stay readable


LETTERS = "abcdefghijklmnopqrstuvwxyzéèêëàâäîïôöùûüçñ"
part = st.text(alphabet=LETTERS, min_size=2, max_size=10)
names = st.lists(part, min_size=1, max_size=3).flatmap(lambda parts: st.sampled_from(["-", " ", "'"]).map(lambda sep: sep.join(parts)))


@settings(max_examples=200, deadline=None)
@given(
    last=names,
    first=names,
    birth=st.dates(min_value=date(1900, 1, 1), max_value=date(2025, 12, 31)),
    spelling=st.integers(min_value=0, max_value=7),
    fmt=st.sampled_from(DATE_FORMATS),
)
def test_no_spelling_of_a_name_or_the_birth_date_survives(last: str, first: str, birth: date, spelling: int, fmt: str) -> None:
    values = IdentityValues(names=(last, first), birth_date=birth)
    quoted_last, quoted_first = _spellings(last)[spelling], _spellings(first)[spelling]
    quoted_date = _render(birth, fmt)
    redacted = redact_identity(f"PID-5 {quoted_last}^{quoted_first} DOB {quoted_date} rejected", values)
    assert "rejected" in redacted
    remains = re.findall(r"[^\W_]+", _plain(redacted).casefold().replace("[redacted]", " "))
    for word in re.findall(r"[^\W_]+", _plain(f"{last} {first}").casefold()):
        assert word not in remains, (word, redacted)
    assert quoted_date not in redacted


def _full_redaction(text: str, values: IdentityValues) -> str:
    """redact_identity without its shortcut: the pattern always compiled and applied."""
    from relais.transfer import replies

    pattern = replies.identity_pattern(values)
    if not text or pattern is None:
        return text
    text = replies._unescape_hl7(text)
    folded, origin = replies._folded(text)
    spans = [(origin[m.start()], origin[m.end() - 1] + 1) for m in pattern.finditer(folded) if m.end() > m.start()]
    for start, end in reversed(spans):
        text = text[:start] + replies.REDACTED + text[end:]
    return text


noise = st.sampled_from(["message accepted", "refused", " ", ", ", "-", "^", "\\T\\", "née", "PID-5", "OK", "_", "''", "Ü"])


@settings(max_examples=150, deadline=None)
@given(
    last=names,
    first=names,
    city=names,
    birth=st.dates(min_value=date(1900, 1, 1), max_value=date(2025, 12, 31)),
    pieces=st.lists(st.one_of(noise, names, st.sampled_from(["12", "0612", "1994"]), st.text(max_size=6)), max_size=8),
    spelling=st.integers(min_value=0, max_value=7),
)
def test_the_shortcut_never_skips_a_text_the_full_redaction_would_change(
    last: str, first: str, city: str, birth: date, pieces: list[str], spelling: int
) -> None:
    """Issue 13: acknowledgements skip compiling the patient's pattern when no identity form can be in them."""
    values = IdentityValues(names=(last, first), texts=(city,), digits=("294037512000591", "+33612345678"), birth_date=birth)
    quoted = [_spellings(last)[spelling], _spellings(first)[spelling], _spellings(city)[spelling]]
    for text in ["".join(pieces), " ".join(pieces + quoted[:1]), " ".join(quoted[1:] + pieces)]:
        assert redact_identity(text, values) == _full_redaction(text, values), text


def test_a_plain_acknowledgement_text_skips_the_pattern(monkeypatch: pytest.MonkeyPatch) -> None:
    from relais.transfer import replies

    values = IdentityValues(names=("DURAND-TESTEUR", "Camille"), texts=("Paris",), digits=("+33612345678",), birth_date=date(1994, 3, 12))
    monkeypatch.setattr(replies, "identity_pattern", lambda values: pytest.fail("compiled for a text that cannot hold identity"))
    assert redact_identity("message accepted", values) == "message accepted"
    assert redact_identity("transaction-response", values) == "transaction-response"
