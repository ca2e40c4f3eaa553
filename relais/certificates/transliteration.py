"""Names in the ICAO Doc 9303 Part 3 machine-readable form used by the DCC `fnt` and `gnt` fields.

Latin, Cyrillic and Arabic follow the ICAO tables; Greek follows ELOT 743, the convention of Greek passports (the DCC
specification asks for the convention of the holder's travel document). Letters of other scripts (CJK, Hebrew...) have
no table here: `untransliterable` tells the caller, who must refuse rather than issue a certificate without them."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

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

# ICAO 9303 Part 3, section 6, Table C (Arabic script): the reversible "X" scheme; short-vowel marks are omitted.
_ARABIC = {
    "ء": "XE", "آ": "XAA", "أ": "XAE", "ؤ": "U", "إ": "I", "ئ": "XI", "ا": "A", "ب": "B", "ت": "T", "ث": "XTH",
    "ج": "J", "ح": "XH", "خ": "XKH", "د": "D", "ذ": "XDH", "ر": "R", "ز": "Z", "س": "S", "ش": "XSH", "ص": "XSS",
    "ض": "XDZ", "ط": "XTT", "ظ": "XZZ", "ع": "E", "غ": "G", "ف": "F", "ق": "Q", "ك": "K", "ل": "L", "م": "M",
    "ن": "N", "ه": "H", "و": "W", "ى": "XAY", "ي": "Y", "ٱ": "XXA", "ٹ": "XXT", "پ": "P", "ټ": "XRT", "ځ": "XKE",
    "څ": "XXH", "چ": "XC", "ڈ": "XXD", "ډ": "XDR", "ڑ": "XXR", "ړ": "XRR", "ږ": "XRX", "ژ": "XJ", "ښ": "XXS",
    "ک": "XKK", "ګ": "XXK", "ڭ": "XNG", "گ": "XGG", "ں": "XNN", "ڼ": "XXN", "ھ": "XDO", "ۀ": "XYH", "ہ": "XXG",
    "ۂ": "XGE", "ۃ": "XTG", "ی": "XYA", "ۍ": "XXY", "ې": "Y", "ے": "XYB", "ۓ": "XBE", "ـ": "",
}  # fmt: skip
_TEH_MARBUTA = "ة"  # XAH when it ends a name component (feminine names), XTA elsewhere (Table C note)

# ELOT 743 single letters, after the digraph rules of _greek below.
_GREEK = {
    "Α": "A", "Β": "V", "Γ": "G", "Δ": "D", "Ε": "E", "Ζ": "Z", "Η": "I", "Θ": "TH", "Ι": "I", "Κ": "K", "Λ": "L",
    "Μ": "M", "Ν": "N", "Ξ": "X", "Ο": "O", "Π": "P", "Ρ": "R", "Σ": "S", "Τ": "T", "Υ": "Y", "Φ": "F", "Χ": "CH",
    "Ψ": "PS", "Ω": "O", "Ϊ": "I", "Ϋ": "Y",
}  # fmt: skip
_GREEK_VOICELESS = "ΘΚΞΠΣΤΦΧΨ"
_GREEK_DIGRAPHS: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    (re.compile("ΟΥ"), "OU"),
    (re.compile(f"([ΑΕΗ])Υ(?=[{_GREEK_VOICELESS}]|\\b)"), lambda m: {"Α": "A", "Ε": "E", "Η": "I"}[m[1]] + "F"),
    (re.compile("([ΑΕΗ])Υ"), lambda m: {"Α": "A", "Ε": "E", "Η": "I"}[m[1]] + "V"),
    (re.compile("ΓΓ"), "NG"),
    (re.compile("ΓΞ"), "NX"),
    (re.compile("ΓΧ"), "NCH"),
    (re.compile("\\bΜΠ"), "B"),
    (re.compile("\\bΝΤ"), "D"),
]

_TABLE = {**_LATIN, **_CYRILLIC, **_ARABIC, **_GREEK}
# Name punctuation that ICAO drops rather than turning into a filler.
_DROPPED = set("'’‘`´ʼʻ.,")
_FILLERS = re.compile(r"<{2,}")


def _greek(text: str) -> str:
    """Tonos off (dialytika kept: it splits a digraph), then ELOT 743 digraphs; single letters go through _TABLE."""
    if not any("\u0370" <= char <= "\u03ff" for char in text):
        return text
    text = unicodedata.normalize("NFC", re.sub("(?<=[\u0391-\u03a9])(\u0308?)\u0301", r"\1", unicodedata.normalize("NFD", text)))
    for pattern, replacement in _GREEK_DIGRAPHS:
        text = pattern.sub(replacement, text)
    return text


def _arabic(text: str) -> str:
    return re.sub(f"{_TEH_MARBUTA}(?=[\u064b-\u0652]*(?!\\w))", "XAH", text).replace(_TEH_MARBUTA, "XTA")


def _char(char: str) -> str | None:
    """The ICAO form of one character; None for a letter no table here covers."""
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
    if "A" <= base <= "Z":
        return base
    return None if char.isalpha() else ""  # digits, marks and symbols are not part of a name's letters


def _prepared(name: str) -> str:
    return _arabic(_greek(unicodedata.normalize("NFC", name).upper()))


def untransliterable(name: str) -> bool:
    """True when the name has a letter no table covers, or no letter at all: its `fnt`/`gnt` would be wrong or empty."""
    prepared = _prepared(name)
    return any(_char(char) is None for char in prepared) or not transliterate(name)


def transliterate(name: str) -> str:
    """Uppercase A-Z and '<' only, at most 80 characters: 'Dupont-Lefèvre' -> 'DUPONT<LEFEVRE'."""
    text = "".join(_char(char) or "" for char in _prepared(name))
    text = _FILLERS.sub(FILLER, text).strip(FILLER)
    return text[:MAX_LENGTH].rstrip(FILLER)
