from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509

from relais.certificates.keys import (
    CERT_FILE_ENV,
    KEY_FILE_ENV,
    OID_DCC_TEST,
    SignerConfigError,
    generate_dev_signer,
    load_signer,
    write_signer,
)

from . import NOW


def test_dev_signer_certificate() -> None:
    signer = generate_dev_signer(now=NOW)
    usage = signer.certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [OID_DCC_TEST]
    assert signer.certificate.not_valid_before_utc < NOW < signer.certificate.not_valid_after_utc
    assert len(signer.kid) == 8


def test_write_and_load_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    signer = generate_dev_signer(now=NOW)
    key_file, cert_file = tmp_path / "dsc.key", tmp_path / "dsc.pem"
    write_signer(signer, key_file=key_file, cert_file=cert_file)
    assert key_file.stat().st_mode & 0o777 == 0o600
    with pytest.raises(FileExistsError):
        write_signer(signer, key_file=key_file, cert_file=cert_file)
    monkeypatch.setenv(KEY_FILE_ENV, str(key_file))
    monkeypatch.setenv(CERT_FILE_ENV, str(cert_file))
    loaded = load_signer()
    assert loaded.kid == signer.kid


def test_world_readable_key_refused(tmp_path: Path) -> None:
    signer = generate_dev_signer(now=NOW)
    key_file, cert_file = tmp_path / "dsc.key", tmp_path / "dsc.pem"
    write_signer(signer, key_file=key_file, cert_file=cert_file)
    for mode in (0o644, 0o640, 0o660):  # readable by everyone, or by the group only: both refused
        os.chmod(key_file, mode)
        with pytest.raises(SignerConfigError, match="other users"):
            load_signer(key_file=key_file, cert_file=cert_file)


def test_mismatched_and_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    one, two = generate_dev_signer(now=NOW), generate_dev_signer(now=NOW - timedelta(days=1))
    write_signer(one, key_file=tmp_path / "one.key", cert_file=tmp_path / "one.pem")
    write_signer(two, key_file=tmp_path / "two.key", cert_file=tmp_path / "two.pem")
    with pytest.raises(SignerConfigError, match="does not match"):
        load_signer(key_file=tmp_path / "one.key", cert_file=tmp_path / "two.pem")
    with pytest.raises(SignerConfigError, match="cannot read"):
        load_signer(key_file=tmp_path / "absent.key", cert_file=tmp_path / "one.pem")
    with pytest.raises(SignerConfigError, match="not an unencrypted PEM"):
        load_signer(key_file=tmp_path / "one.key", cert_file=tmp_path / "one.key")
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)
    with pytest.raises(SignerConfigError, match=KEY_FILE_ENV):
        load_signer()
