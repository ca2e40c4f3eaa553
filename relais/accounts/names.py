"""Staff names as the messages need them (User.full_name is one field); pure Python: bench/floor.py imports it without Django."""

from __future__ import annotations


def split_full_name(full_name: str) -> tuple[str, str]:
    """(family, given) from an account's single full-name field. French usage writes the family name in capitals
    ("Marie DUPONT", "DE LA FONTAINE Jean"): the words in capitals are the family name; otherwise the last word is."""
    words = full_name.split()
    if not words:
        return "", ""
    upper = [w for w in words if len(w.strip("-'")) > 1 and w.isupper()]
    if upper and len(upper) < len(words):
        return " ".join(upper), " ".join(w for w in words if w not in upper)
    if len(words) == 1:
        return words[0], ""
    return words[-1], " ".join(words[:-1])
