"""Base45 (RFC 9285), the QR-alphanumeric-friendly encoding used by HC1 payloads."""

from __future__ import annotations

import functools
import struct

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_VALUES = {char: index for index, char in enumerate(ALPHABET)}


class Base45Error(ValueError):
    """The text is not valid Base45."""


@functools.cache
def _triples() -> tuple[str, ...]:
    """The three characters of every two-byte value, built once (a certificate is encoded in microseconds, not a loop)."""
    return tuple(ALPHABET[n % 45] + ALPHABET[n // 45 % 45] + ALPHABET[n // 2025] for n in range(65536))


def encode(data: bytes) -> str:
    pairs = len(data) // 2
    out = "".join(map(_triples().__getitem__, struct.unpack(f">{pairs}H", data[: pairs * 2])))
    if len(data) % 2:
        d, c = divmod(data[-1], 45)
        out += ALPHABET[c] + ALPHABET[d]
    return out


def decode(text: str) -> bytes:
    try:
        values = [_VALUES[char] for char in text]
    except KeyError as exc:
        raise Base45Error(f"character {exc.args[0]!r} is not in the Base45 alphabet") from None
    if len(values) % 3 == 1:
        raise Base45Error("length leaves a dangling character")
    out = bytearray()
    for i in range(0, len(values), 3):
        chunk = values[i : i + 3]
        n = sum(v * 45**k for k, v in enumerate(chunk))
        # RFC 9285 section 4.2: a triple above 65535 or a pair above 255 is an error, not a wrap-around.
        if len(chunk) == 3:
            if n > 0xFFFF:
                raise Base45Error("triple encodes a value above 65535")
            out += n.to_bytes(2, "big")
        else:
            if n > 0xFF:
                raise Base45Error("pair encodes a value above 255")
            out.append(n)
    return bytes(out)
