"""Issue 16, item 5: the patient form's "in Latin letters" fields appear while typing, by the Python rule given to the
browser as data (relais.certificates.icao_coverage). The stored data is what the Python rule gives today, and the rule
over the data is `untransliterable` for names of every script. tests/e2e/test_my_account_and_latin.py runs the browser's
copy over the same names and every code point."""

from __future__ import annotations

import random
import sys
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relais.certificates import icao_coverage, icao_coverage_data
from relais.certificates.transliteration import untransliterable

DATA = (icao_coverage_data.UNCOVERED, icao_coverage_data.PRODUCING, icao_coverage_data.BLANK)

# Names of many scripts, and the edge cases of the rule (letters that vanish, punctuation only, blanks).
SAMPLE_NAMES = [
    "Dupont-Lefèvre", "Müller", "Ødegård", "Łukasz", "O'Brien", "Nguyễn Văn", "Çelik", "ßtraße", "ÆSIR",
    "Παπαδόπουλος", "Νίκος", "Ευάγγελος", "Μπακογιάννη", "Ντίνος",
    "Иванов", "Пётр", "Ь", "Ъ", "Їжак", "Ђорђе",
    "محمد", "فاطمة", "عبد الله", "ـ", "پرویز",
    "王", "小明", "山田 太郎", "やまだ", "ヤマダ", "김민준", "כהן", "שָׁלוֹם", "Աշոտ", "გიორგი", "สมชาย", "राहुल", "ሰላም",
    "Wang 王", "Ivanov Иван", "Σωκράτης Ab", "ª", "ǅ", "Ⓐnna", "Ａｎｎａ", "1234", "-", "'", ".", "  ", "\u3000", "\x1c", "",
    "e\u0301", "\u0391\u0301", "Ω", "\u2126",
]  # fmt: skip


def python_rule(name: str) -> bool:
    """What the form decides after a submit (PatientForm.needs_latin, for one name)."""
    return bool(name.strip()) and untransliterable(name)


def test_the_stored_data_is_what_the_python_rule_gives() -> None:
    assert icao_coverage_data.UNICODE_VERSION == unicodedata.unidata_version, "regenerate: python -m relais.certificates.icao_coverage"
    assert icao_coverage.compute() == DATA, "transliteration changed: python -m relais.certificates.icao_coverage"


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_the_rule_over_the_data_is_untransliterable(name: str) -> None:
    assert icao_coverage.needs_latin(name, *DATA) == python_rule(name)


def test_every_code_point_alone() -> None:
    differ = [
        code
        for code in range(sys.maxunicode + 1)
        if not 0xD800 <= code <= 0xDFFF and icao_coverage.needs_latin(chr(code), *DATA) != python_rule(chr(code))
    ]
    assert differ == []


SCRIPTS = [(0x41, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x600, 0x6FF), (0x4E00, 0x4E80), (0x5D0, 0x5EA), (0x20, 0x40)]
names = st.lists(st.sampled_from(SCRIPTS).flatmap(lambda r: st.integers(*r)).map(chr), min_size=1, max_size=12).map("".join)


@settings(max_examples=400, deadline=None)
@given(names)
def test_mixed_names(name: str) -> None:
    assert icao_coverage.needs_latin(name, *DATA) == python_rule(name)


def test_regex_class_shape() -> None:
    assert icao_coverage.regex_class(((0x41, 0x5A), (0x4E00, 0x4E00))) == "[\\u{41}-\\u{5a}\\u{4e00}]"


def random_names(count: int, seed: int = 16) -> list[str]:
    """Deterministic mixed-script names, for the browser comparison."""
    rng = random.Random(seed)
    return ["".join(chr(rng.randint(*rng.choice(SCRIPTS))) for _ in range(rng.randint(1, 10))) for _ in range(count)]
