"""Names in the ICAO Doc 9303 Part 3 machine-readable form used by the DCC `fnt` and `gnt` fields."""

from __future__ import annotations

import re
import unicodedata

MAX_LENGTH = 80
FILLER = "<"

# ICAO 9303 Part 3, section 6, recommended transliterations (Latin multinational characters).
_LATIN = {
    "Ä": "AE", "Å": "AA", "Æ": "AE", "Ð": "D", "Ñ": "N", "Ö": "OE", "Ø": "OE", "Ü": "UE", "Þ": "TH",
    "ẞ": "SS", "Đ": "D", "Ħ": "H", "Ĳ": "IJ", "ĸ": "K", "Ŀ": "L", "Ł": "L", "Ŋ": "N", "Œ": "OE", "Ŧ": "T",
}  # fmt: skip

# ICAO 9303 Part 3, section 6, transliteration of Cyrillic characters.
_CYRILLIC = {
    "А": "A", "Б": "B", "В": "V", "Г": "G", "Ґ": "G", "Д": "D", "Ѓ": "G", "Ђ": "D", "Е": "E", "Ё": "E",
    "Є": "IE", "Ж": "ZH", "З": "Z", "Ѕ": "DZ", "И": "I", "І": "I", "Ї": "I", "Й": "I", "Ј": "J", "К": "K",
    "Л": "L", "Љ": "LJ", "М": "M", "Н": "N", "Њ": "NJ", "О": "O", "П": "P", "Р": "R", "С": "S", "Т": "T",
    "Ћ": "C", "Ќ": "K", "У": "U", "Ў": "U", "Ф": "F", "Х": "KH", "Ц": "TS", "Ч": "CH", "Џ": "DZ", "Ш": "SH",
    "Щ": "SHCH", "Ъ": "IE", "Ы": "Y", "Ь": "", "Э": "E", "Ю": "IU", "Я": "IA",
}  # fmt: skip

_TABLE = {**_LATIN, **_CYRILLIC}
# Name punctuation that ICAO drops rather than turning into a filler.
_DROPPED = set("'’‘`´ʼʻ.,")
_FILLERS = re.compile(r"<{2,}")


def _char(char: str) -> str:
    if "A" <= char <= "Z":
        return char
    if char in _TABLE:
        return _TABLE[char]
    if char == FILLER or char == "-" or char.isspace() or unicodedata.category(char) == "Pd":
        return FILLER
    if char in _DROPPED:
        return ""
    # Other accented Latin letters (É, Ç, Ś, Ž...) lose their diacritics, as in the ICAO table.
    base = unicodedata.normalize("NFKD", char)[:1]
    return base if "A" <= base <= "Z" else ""


def transliterate(name: str) -> str:
    """Uppercase A-Z and '<' only, at most 80 characters: 'Dupont-Lefèvre' -> 'DUPONT<LEFEVRE'."""
    upper = unicodedata.normalize("NFC", name).upper()
    text = "".join(_char(char) for char in upper)
    text = _FILLERS.sub(FILLER, text).strip(FILLER)
    return text[:MAX_LENGTH].rstrip(FILLER)
