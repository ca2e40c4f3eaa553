"""Issue a signed EU DCC with each final COVID-19 result; revoke it when the result is corrected or removed."""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
import os
import tempfile
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.utils import timezone

from relais.certificates.cose import sign_hc1
from relais.certificates.dcc import build_test_payload
from relais.certificates.errors import CannotIssue, DccInvalid
from relais.certificates.keys import Signer, SignerConfigError, generate_dev_signer, load_signer, write_signer
from relais.certificates.models import Certificate, CertificateRefusal, RefusalReason
from relais.certificates.uvci import new_uvci
from relais.core import bulk
from relais.screenings.models import Screening, ScreeningStatus
from relais.screenings.vocab import RESULT_DETECTED, RESULT_NOT_DETECTED

log = logging.getLogger("relais.certificates")
COVID = "sars-cov-2"
ISSUABLE_STATUSES = {ScreeningStatus.FINAL, ScreeningStatus.CORRECTED}


@functools.lru_cache(maxsize=1)
def signer() -> Signer:
    """The document signer: read from the protected files in production; generated once into var/ in development."""
    key_file = Path(settings.RELAIS_DCC["key_file"])
    cert_file = Path(settings.RELAIS_DCC["cert_file"])
    if not key_file.exists() and settings.RELAIS_DCC["generate_missing"]:
        _generate_dev_signer(key_file.parent)
    return load_signer(key_file=key_file, cert_file=cert_file)


def _generate_dev_signer(folder: Path) -> None:
    """Write key and certificate in a private temporary folder, then rename it into place: concurrent starts agree on one."""
    folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".dcc-"))
    write_signer(generate_dev_signer(), key_file=staging / "signer-key.pem", cert_file=staging / "signer-cert.pem")
    try:
        os.rename(staging, folder)
    except OSError:  # another process won the race: keep its signer
        for child in staging.iterdir():
            child.unlink()
        staging.rmdir()


def uvci_hash(uvci: str) -> str:
    return base64.b64encode(hashlib.sha256(uvci.encode()).digest()[:16]).decode()


def issuable(screening: Screening, results: dict[str, str] | None = None) -> str | None:
    """The COVID-19 result code when a certificate may be issued for this version, else None."""
    # identity_withheld: only tests recorded under the old "no consent" promise; every other test gets its certificate.
    if screening.identity_withheld or screening.status not in ISSUABLE_STATUSES or not screening.is_current:
        return None
    codes = results if results is not None else {r.analyte: r.result for r in screening.results.all()}
    code = codes.get(COVID)
    return code if code in (RESULT_DETECTED, RESULT_NOT_DETECTED) else None


def certificate_issue(*, screening: Screening, results: dict[str, str] | None = None, now: datetime | None = None) -> Certificate | None:
    """Sign and store a certificate when the result allows one. Runs in the screening's transaction.

    ``results`` (analyte -> code) spares a query when the caller has just saved them. A certificate that cannot be built
    never stops the result from being recorded and transmitted: the reason is stored with the screening (shown on its
    page) and logged with ids only."""
    if not connection.in_atomic_block:
        raise RuntimeError("certificate_issue must run in the screening's transaction")
    row = certificate_prepare(screening=screening, results=results, now=now)
    if row is not None:
        row.save(force_insert=True)
    return row if isinstance(row, Certificate) else None


def certificate_prepare(
    *, screening: Screening, results: dict[str, str] | None = None, now: datetime | None = None
) -> Certificate | CertificateRefusal | None:
    """The signed certificate, or the refusal saying why there is none, not yet saved (a batch writes them together);
    None when the result allows no certificate. Every check runs before: a failure leaves nothing half-built."""
    try:
        return _certificate_build(screening=screening, results=results, now=now)
    except CannotIssue as exc:
        reason, detail = exc.reason, ""
    except SignerConfigError:
        reason, detail = RefusalReason.SIGNER, ""
    except DccInvalid as exc:
        reason, detail = RefusalReason.SCHEMA, exc.message[:200]  # a schema location and rule, never a value
    log.error("certificate not issued for screening %s: %s %s", screening.pk, reason, detail)
    return CertificateRefusal(screening=screening, reason=reason, detail=detail, created_at=now or timezone.now())


def _certificate_build(*, screening: Screening, results: dict[str, str] | None, now: datetime | None) -> Certificate | None:
    code = issuable(screening, results)
    if code is None:
        return None
    now = (now or timezone.now()).replace(microsecond=0)
    config = settings.RELAIS_DCC
    patient = screening.patient
    uvci = new_uvci(country=config["country"], issuer_prefix=config["uvci_prefix"])
    payload = build_test_payload(
        family_name=patient.last_name,
        given_name=patient.first_names,
        latin_family_name=patient.latin_last_name,
        latin_given_name=patient.latin_first_names,
        birth_date=patient.date_of_birth,
        device_id=screening.device_id,
        sampled_at=screening.sampled_at,
        detected=code == RESULT_DETECTED,
        testing_centre=screening.pharmacy.name[:80],
        issuer=config["issuer"],
        uvci=uvci,
        country=config["country"],
    )
    expires_at = now + timedelta(days=config["validity_days"])
    current = signer()
    hc1 = sign_hc1(payload, signer_key=current.key, kid=current.kid, issuer_country=config["country"], issued_at=now, expires_at=expires_at)
    return bulk.new(
        Certificate,
        screening=screening,
        series_id=screening.series_id,
        pharmacy_id=screening.pharmacy_id,
        uvci=uvci,
        uvci_hash=uvci_hash(uvci),
        hc1=hc1,
        issued_at=now,
        expires_at=expires_at,
    )


def certificate_refusal_for_screening(*, screening: Screening) -> CertificateRefusal | None:
    """Why this version got no certificate although its result qualified, if that happened."""
    return CertificateRefusal.objects.filter(screening_id=screening.pk).first()


def certificate_revoke_series(*, series_id: uuid.UUID, reason: str, now: datetime | None = None) -> int:
    """Revoke every live certificate of the test (its corrected or removed version gets a new one if allowed)."""
    return Certificate.objects.filter(series_id=series_id, revoked_at__isnull=True).update(
        revoked_at=now or timezone.now(), revocation_reason=reason
    )


def certificate_reissue(
    *, series_id: uuid.UUID, screening: Screening, results: dict[str, str] | None = None, reason: str, now: datetime | None = None
) -> tuple[int, Certificate | None]:
    """The test's live certificates revoked (they print what is no longer true, e.g. the old name), and one issued for
    its new version when the result allows it. Runs in the new version's transaction. (revoked, new certificate)"""
    revoked = certificate_revoke_series(series_id=series_id, reason=reason, now=now)
    return revoked, certificate_issue(screening=screening, results=results, now=now)


def certificate_for_screening(*, screening: Screening) -> Certificate | None:
    """The live certificate of this version, if any (callers already read and audited the screening)."""
    return Certificate.objects.filter(screening_id=screening.pk, revoked_at__isnull=True).first()


def revocation_hashes() -> list[str]:
    return list(Certificate.objects.filter(revoked_at__isnull=False).order_by("revoked_at").values_list("uvci_hash", flat=True))
