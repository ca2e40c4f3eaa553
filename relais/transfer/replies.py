"""Reading a receiver's answer: HL7 acknowledgements (one message or a batch), FHIR replies, HTTP refusals, and the
redaction of the patient's identity from whatever text the receiver sends back."""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from relais.transfer.formats import hl7v2
from relais.transfer.outcome import Outcome
from relais.transfer.transports import Reply


def ack_outcome(ack: hl7v2.Ack, control_id: str) -> Outcome:
    if ack.control_id != control_id:
        return Outcome.transient(f"acknowledgement for another message ({ack.control_id})", transmitted=True)
    if ack.code in {"AA", "CA"}:
        return Outcome.acknowledged(ack.code, ack.text)
    return Outcome.rejected(ack.text or f"rejected ({ack.code})", ack_code=ack.code)


def http_rejection(reply: Reply) -> Outcome:
    reason = reply.body.strip()[:300]
    try:
        outcome = json.loads(reply.body)
        issues = outcome.get("issue", []) if isinstance(outcome, dict) else []
        texts = [i.get("diagnostics") or (i.get("details") or {}).get("text", "") for i in issues if isinstance(i, dict)]
        reason = "; ".join(t for t in texts if t) or reason
    except ValueError:
        pass
    return Outcome.rejected(f"HTTP {reply.status}: {reason or 'no reason given'}", ack_code=str(reply.status))


def read_hl7v2(reply: Reply, message_id: str) -> Outcome:
    if reply.status is not None and reply.status >= 400:
        return http_rejection(reply)
    try:
        ack = hl7v2.parse_ack(reply.body)
    except hl7v2.MalformedAck as exc:
        return Outcome.transient(f"malformed acknowledgement: {exc}", transmitted=True)
    return ack_outcome(ack, message_id)


def read_hl7v2_batch(reply: Reply, message_ids: list[str]) -> dict[str, Outcome]:
    if reply.status is not None and reply.status >= 400:
        return dict.fromkeys(message_ids, http_rejection(reply))
    try:
        acks = {ack.control_id: ack for ack in hl7v2.parse_batch_acks(reply.body)}
    except hl7v2.MalformedAck as exc:
        return dict.fromkeys(message_ids, Outcome.transient(f"malformed batch acknowledgement: {exc}", transmitted=True))
    missing = Outcome.transient("no acknowledgement in the batch reply", transmitted=True)
    return {i: ack_outcome(acks[i], i) if i in acks else missing for i in message_ids}


def read_fhir(reply: Reply, message_id: str) -> Outcome:
    if reply.status is None or reply.status >= 400:
        return http_rejection(reply)
    try:
        body = json.loads(reply.body)
    except ValueError:
        return Outcome.transient("malformed answer: not JSON", transmitted=True)
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
        return Outcome.transient("malformed answer: not a FHIR Bundle", transmitted=True)
    return Outcome.acknowledged(str(reply.status), body.get("type", ""))


REDACTED = "[redacted]"
_SEPARATORS = r"[\s./-]?"  # what may sit between the digits of a quoted NIR or phone number
_DATE_SEPARATORS = "/.-"


@dataclass(frozen=True)
class IdentityValues:
    """The values a receiver's text must never carry back into our tables (plain strings; empty ones are skipped)."""

    names: tuple[str, ...] = ()  # last name, first names: matched whole and word by word
    texts: tuple[str, ...] = ()  # email, address line, city: matched whole
    digits: tuple[str, ...] = ()  # NIR, phone, postcode: matched with or without separators between characters
    birth_date: date | None = None


_LIGATURES = {"œ": "oe", "æ": "ae", "ø": "o", "ł": "l", "đ": "d"}  # letters NFKD does not take apart


@functools.lru_cache(maxsize=8192)
def _fold(char: str) -> str:
    """One character without accents and in lower case ("É" -> "e", "ß" -> "ss"), so every spelling matches."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c)).casefold()
    return "".join(_LIGATURES.get(c, c) for c in plain)


def _folded(text: str) -> tuple[str, list[int]]:
    """``text`` folded, and for each folded character the index of the original character it came from."""
    folded: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        part = _fold(char)
        folded.append(part)
        origin += [index] * len(part)
    return "".join(folded), origin


def _word(value: str) -> str:
    # Letters and digits must not touch the match: "Marie" is redacted in "Marie," but not inside "Mariette".
    return rf"(?<![^\W_]){re.escape(value)}(?![^\W_])"


def _date_patterns(day: date) -> Iterable[str]:
    d, m, y = day.day, day.month, day.year
    days, months, years = rf"0?{d}", rf"0?{m}", rf"(?:{y}|{y % 100:02d})"
    for sep in _DATE_SEPARATORS:
        s = re.escape(sep)
        yield rf"{days}{s}{months}{s}{years}"  # 12/03/1994, 12.3.94, 12-03-1994
        yield rf"{y}{s}0?{m}{s}0?{d}"  # 1994-03-12, 1994/3/12
    yield rf"{d:02d}{m:02d}{y}"  # 12031994
    yield rf"{y}{m:02d}{d:02d}"  # 19940312 (HL7)


def _digits_pattern(value: str) -> str:
    chars = [c for c in value if c.isalnum()]
    if value.startswith("+33") and len(chars) == 11:  # +33612345678 is also quoted as 06 12 34 56 78
        national = _SEPARATORS.join(re.escape(c) for c in chars[2:])
        return rf"(?:(?:\+|00)33{_SEPARATORS}(?:\(0\))?{_SEPARATORS}|0){national}"
    return _SEPARATORS.join(re.escape(c) for c in chars)


def identity_pattern(values: IdentityValues) -> re.Pattern[str] | None:
    """One case- and accent-insensitive pattern for every form of the values; None when there is nothing to redact."""
    alternatives: list[str] = []
    words: set[str] = set()
    for value in filter(None, (_fold_all(v) for v in values.names)):
        alternatives.append(_word(value))
        words.update(w for w in re.split(r"[\W_]+", value) if len(w) >= 2)
    alternatives += [_word(w) for w in sorted(words, key=len, reverse=True)]
    alternatives += [_word(_fold_all(v)) for v in values.texts if v.strip()]
    for value in values.digits:
        chars = [c for c in _fold_all(value) if c.isalnum()]
        if len(chars) == 15:  # a NIR: also quoted without its two-digit key
            key = _SEPARATORS.join(chars[13:])
            alternatives.append(rf"(?<![0-9a-z]){_digits_pattern(''.join(chars[:13]))}(?:{_SEPARATORS}{key})?(?![0-9a-z])")
        elif len(chars) >= 4:
            alternatives.append(rf"(?<![0-9a-z]){_digits_pattern(_fold_all(value))}(?![0-9a-z])")
    if values.birth_date is not None:
        alternatives += [rf"(?<!\d){p}(?!\d)" for p in _date_patterns(values.birth_date)]
    if not alternatives:
        return None
    # Longest first, so "DURAND-TESTEUR" goes as one piece rather than leaving its hyphen between two redactions.
    return re.compile("|".join(f"(?:{a})" for a in alternatives))


def _fold_all(value: str) -> str:
    return "".join(_fold(c) for c in value.strip())


_WORD_SPLIT = re.compile(r"[\W_]+")


def might_hold_identity(text: str, values: IdentityValues) -> bool:
    """False only when no form of the values can be in ``text``: it has no digit (every NIR, phone, postcode and date
    form has one) and none of its folded words is a word of a name or text value (a whole-value or word match needs
    one). Lets the common acknowledgement ("message accepted") skip compiling the patient's pattern (~3 ms)."""
    folded = _fold_all(_unescape_hl7(text))
    if any(c.isdigit() for c in folded):
        return True
    if any(not any(c.isdigit() for c in value) for value in values.digits if value.strip()):
        return True  # a "digits" value without a digit could match without one: take the full path
    words = {w for w in _WORD_SPLIT.split(folded) if w}
    for value in (*values.names, *values.texts):
        folded_value = _fold_all(value)
        value_words = [w for w in _WORD_SPLIT.split(folded_value) if w]
        if (folded_value and not value_words) or words.intersection(value_words):
            return True
    return False


def _has_values(values: IdentityValues) -> bool:
    """Whether identity_pattern(values) is not None, without compiling it."""
    if values.birth_date is not None or any(_fold_all(v) for v in values.names) or any(v.strip() for v in values.texts):
        return True
    return any(len([c for c in _fold_all(v) if c.isalnum()]) >= 4 for v in values.digits)


def redact_identity(text: str, values: IdentityValues) -> str:
    """``text`` with every form of the patient's identity values replaced by [redacted]: any case, with or without
    accents, HL7-escaped or not, names whole or word by word, the birth date in the usual formats, NIR and phone
    with or without spaces."""
    if not text:
        return text
    if not might_hold_identity(text, values):
        return _unescape_hl7(text) if _has_values(values) else text  # what the full path gives when nothing matches
    pattern = identity_pattern(values)
    if pattern is None:
        return text
    text = _unescape_hl7(text)
    folded, origin = _folded(text)
    spans = [(origin[m.start()], origin[m.end() - 1] + 1) for m in pattern.finditer(folded) if m.end() > m.start()]
    for start, end in reversed(spans):
        text = text[:start] + REDACTED + text[end:]
    return text


_HL7_ESCAPES = {"\\F\\": "|", "\\S\\": "^", "\\T\\": "&", "\\R\\": "~", "\\E\\": "\\"}


def _unescape_hl7(text: str) -> str:
    """A receiver may quote an ER7-escaped value ("O\\T\\NEIL"): read the escapes so the plain value matches."""
    for escaped, plain in _HL7_ESCAPES.items():
        text = text.replace(escaped, plain)
    return text
