"""The search form of a person's name and its French phonetic key. Pure Python, no Django: the benchmark's bare-Python
floor (bench/floor.py) imports it to compute the same search indexes as relais.patients.search."""

from __future__ import annotations

import re
import unicodedata
from datetime import date

__all__ = ["edit_distance_at_most_one", "name_parts", "name_search_values", "normalise", "phonetic_key"]

_NOT_LETTER = re.compile(r"[^\w]|[\d_]")
# Letters that neither casefold nor NFKD take apart, spelt as French forms and keyboards write them ('Cœur' is 'Coeur').
_LATIN_LETTERS = str.maketrans({"ı": "i", "œ": "oe", "æ": "ae", "ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ŧ": "t", "ħ": "h"})


def _fold(value: str) -> str:
    """Case-folded, NFKD, combining marks dropped (twice: casefold and NFKD can each reveal what the other folds).

    Case-folded first: some combining marks fold to letters (U+0345 is a combining mark whose capital is 'Ι')."""
    for _ in range(2):
        value = unicodedata.normalize("NFKD", value.casefold())
        value = "".join(ch for ch in value if not unicodedata.combining(ch))
    return value.translate(_LATIN_LETTERS)


def name_parts(value: str) -> list[str]:
    """The words of a name, folded: 'Durand-Testeur', "D'Arc", 'Le Fèvre' are two words each; digits and signs dropped."""
    return [part for part in _NOT_LETTER.split(_fold(value)) if part]


def normalise(value: str) -> str:
    """The search form of a name: 'Lefèvre', 'LEFEVRE', 'Le-Fèvre' and "le fevre" are all 'lefevre'."""
    return "".join(name_parts(value))


# A simplified French phonetic key (after Phonex and the French Soundex): spellings of one sound become one symbol, vowels
# go (a typo in a vowel or a swapped vowel changes nothing), doubled symbols merge, final silent letters go.
_SOUNDS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), symbol)
    for pattern, symbol in (
        (r"s?ch|sh", "X"),  # chuintante: Schmitt, Chevalier, Shapiro
        (r"ph", "F"),
        (r"th", "T"),
        (r"gh", "G"),
        (r"qu|ck|q|k", "K"),
        (r"c(?=[eiy])", "S"),
        (r"c", "K"),
        (r"gu(?=[eiy])", "G"),
        (r"g(?=[eiy])", "J"),
        (r"gn", "N"),
        (r"g", "G"),
        (r"j", "J"),
        (r"bv", "V"),  # Lefebvre = Lefèvre
        (r"[wv]", "V"),
        (r"x", "KS"),
        (r"[sz]", "S"),
        (r"m(?=[bp])", "N"),  # nasal: Lambert = Lanbert
        (r"h", ""),
    )
)
_VOWELS = re.compile(r"[aeiouy]")
_SILENT_ENDINGS = frozenset("TDSP")  # Durand = Durant, Dupont = Dupond, Dubois, Deschamps


def phonetic_key(value: str) -> str:
    """Same key for names that sound alike in French: 'Lefebvre', 'Lefèvre', 'LEFEVRE' give 'LFVR'; empty without letters."""
    word = normalise(value)
    if not word:
        return ""
    initial_vowel = bool(_VOWELS.match(word)) or (word[0] == "h" and bool(_VOWELS.match(word[1:2])))
    for pattern, symbol in _SOUNDS:
        word = pattern.sub(symbol, word)
    word = _VOWELS.sub("", word).upper()
    symbols: list[str] = ["@"] if initial_vowel else []  # Aubert = Hubert, and neither is Bert
    for ch in word:
        if not symbols or symbols[-1] != ch:
            symbols.append(ch)
    while len(symbols) > 1 and symbols[-1] in _SILENT_ENDINGS:
        symbols.pop()
    return "".join(symbols) or normalise(value)[0].upper()  # 'H' alone: nothing sounds, yet it is a name


def edit_distance_at_most_one(a: str, b: str) -> bool:
    """Equal, or one letter inserted, removed, replaced, or two neighbours swapped (the usual typos)."""
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
        if len(diff) == 1:
            return True
        return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
    short, long = (a, b) if len(a) < len(b) else (b, a)
    i = 0
    while i < len(short) and short[i] == long[i]:
        i += 1
    return short[i:] == long[i + 1 :]


def name_search_values(last_name: str, first_names: str, date_of_birth: date | None) -> dict[str, tuple[str, str]]:
    """The search columns of a name and birth date, each as (index kind, normalised value) to be blind-indexed."""
    parts = name_parts(last_name)
    surname = "".join(parts)
    first = name_parts(first_names)[:1]
    return {
        "surname_index": ("surname", surname),
        # A double name is found by either part (DURAND-TESTEUR by 'Durand'); a single word has no parts of its own.
        "surname_head_index": ("surname", parts[0] if len(parts) > 1 else ""),
        "surname_tail_index": ("surname", parts[-1] if len(parts) > 1 else ""),
        # Of the first word: a typo in 'Durand' still finds DURAND-TESTEUR (and a single word is its own first word).
        "surname_sound_index": ("surname-sound", phonetic_key(parts[0]) if parts else ""),
        "full_name_index": ("full-name", f"{first[0]}\x1f{surname}" if first and surname else ""),
        "birth_date_index": ("birth-date", date_of_birth.isoformat() if date_of_birth else ""),
    }
