"""EU Digital COVID Certificate (DCC) test certificates: payload, UVCI, COSE/CWT signing, HC1 encoding and verification.

Not a Django app with models: the `dcc_verify` management command is its only Django-facing part.
"""

from relais.certificates.cose import kid_for_certificate, sign_hc1
from relais.certificates.dcc import build_test_payload, validate_payload
from relais.certificates.errors import DccInvalid, PayloadInvalid
from relais.certificates.qr import qr_png, qr_svg
from relais.certificates.transliteration import transliterate
from relais.certificates.uvci import new_uvci, uvci_checksum_valid
from relais.certificates.verify import verify_hc1

__all__ = [
    "DccInvalid",
    "PayloadInvalid",
    "build_test_payload",
    "kid_for_certificate",
    "new_uvci",
    "qr_png",
    "qr_svg",
    "sign_hc1",
    "transliterate",
    "uvci_checksum_valid",
    "validate_payload",
    "verify_hc1",
]
