from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relais.certificates.transliteration import transliterate, untransliterable

FNT_PATTERN = re.compile(r"^[A-Z<]*$")  # DCC.Core.Types.schema.json person_name.fnt / gnt


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Dupont-Lefèvre", "DUPONT<LEFEVRE"),
        ("D'Artagnan", "DARTAGNAN"),
        ("D’Artagnan", "DARTAGNAN"),
        ("Müller", "MUELLER"),
        ("Nuñez", "NUNEZ"),
        ("Ångström", "AANGSTROEM"),
        ("Ærø", "AEROE"),
        ("Straße", "STRASSE"),
        ("Çelik Œuvre", "CELIK<OEUVRE"),
        ("d'Červenková Panklová", "DCERVENKOVA<PANKLOVA"),  # the schema's own example
        ("Jiřina-Maria Alena", "JIRINA<MARIA<ALENA"),
        ("  Jean -- Pierre  ", "JEAN<PIERRE"),
        ("Łukasz Żółć", "LUKASZ<ZOLC"),
        ("Щербаков Юрий", "SHCHERBAKOV<IURII"),
        ("O'Neil 3rd.", "ONEIL<RD"),
        ("李小龍", ""),
    ],
)
def test_icao_examples(name: str, expected: str) -> None:
    assert transliterate(name) == expected


def test_truncated_to_80_without_trailing_filler() -> None:
    result = transliterate("A" * 79 + " " + "B" * 10)
    assert result == "A" * 79
    assert len(transliterate("X" * 200)) == 80


@given(st.text())
def test_output_always_matches_schema_pattern(name: str) -> None:
    result = transliterate(name)
    assert FNT_PATTERN.match(result)
    assert len(result) <= 80
    assert "<<" not in result and not result.startswith("<") and not result.endswith("<")
    assert transliterate(result) == result


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Παπαδόπουλος", "PAPADOPOULOS"),  # ELOT 743, as in Greek passports
        ("Γιώργος", "GIORGOS"),
        ("Ευάγγελος", "EVANGELOS"),
        ("Ευθύμιος", "EFTHYMIOS"),
        ("Μπάμπης", "BAMPIS"),
        ("Ντίνος", "DINOS"),
        ("Παϊσιος", "PAISIOS"),
        ("Ψαρρός Χρήστος", "PSARROS<CHRISTOS"),
        ("ابو بكر محمد بن زكريا الرازي", "ABW<BKR<MXHMD<BN<ZKRYA<ALRAZY"),  # ICAO 9303 Part 3 Appendix B, X scheme
        ("فاطمة", "FAXTTMXAH"),  # teh marbuta ending a name component
        ("مُحَمَّد", "MXHMD"),  # short-vowel marks are omitted
    ],
)
def test_greek_and_arabic(name: str, expected: str) -> None:
    assert transliterate(name) == expected
    assert not untransliterable(name)


@pytest.mark.parametrize("name", ["李小龍", "Léa 美咲", "שרה", "김민준", "'", "-", "ไทย"])
def test_letters_no_table_covers_are_reported(name: str) -> None:
    assert untransliterable(name)


@given(st.text())
def test_a_transliterable_name_is_never_empty(name: str) -> None:
    if not untransliterable(name):
        assert transliterate(name)
