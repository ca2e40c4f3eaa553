"""QR images of an HC1 text, error correction level Q as the HCERT spec recommends."""

from __future__ import annotations

import struct
import zlib

import qrcode
import qrcode.image.svg
from qrcode.constants import ERROR_CORRECT_Q

QUIET_ZONE = 4  # modules of white border required by ISO/IEC 18004


def _code(hc1: str, *, box_size: int = 10) -> qrcode.QRCode:  # type: ignore[type-arg]
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_Q, border=QUIET_ZONE, box_size=box_size)
    # HC1 texts use only the QR alphanumeric set, so qrcode picks the compact alphanumeric mode.
    code.add_data(hc1, optimize=0)
    code.make(fit=True)
    return code


def qr_svg(hc1: str, *, box_size: int = 10) -> str:
    image = _code(hc1, box_size=box_size).make_image(image_factory=qrcode.image.svg.SvgPathImage)
    return str(image.to_string(encoding="unicode"))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def qr_png(hc1: str, *, scale: int = 4) -> bytes:
    """An 8-bit greyscale PNG written directly (Pillow and pypng are not dependencies of Relais)."""
    matrix = _code(hc1).get_matrix()  # includes the quiet zone
    rows = []
    for row in matrix:
        line = b"".join(b"\x00" * scale if dark else b"\xff" * scale for dark in row)
        rows.extend([b"\x00" + line] * scale)  # filter type 0 per scanline
    size = len(matrix) * scale
    header = struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + _chunk(b"IEND", b"")
