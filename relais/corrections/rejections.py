"""Which receiver rejections are about the patient's identity, so the pharmacist is sent straight to its correction."""

from __future__ import annotations

import re
import unicodedata

# Words a national platform uses when the identity is at fault: INS (identifiant national de santé) and its
# qualification, NIR, names, birth date, sex; HL7 PID and FHIR Patient locations. Accents are removed before matching.
_IDENTITY = re.compile(
    r"\b(ins|nir|matricule|identite|identity|patient\.|pid[-.]?\d*|nom|prenoms?|name|names|family|given"
    r"|naissance|birth|birthdate|date of birth|sexe|sex|gender)\b",
    re.IGNORECASE,
)


def names_identity(reason: str) -> bool:
    """Whether a rejection reason points at the patient's identity ("INS non qualifiée", "PID-5: nom absent"...)."""
    plain = unicodedata.normalize("NFKD", reason or "").encode("ascii", "ignore").decode()
    return bool(_IDENTITY.search(plain))
