from __future__ import annotations

import base64
import io
import os
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.test import override_settings

from relais.audit.models import AuditEvent
from relais.core import crypto
from relais.core.models import DataKey
from relais.intake.services import screening_correct
from relais.patients.models import Patient
from relais.screenings.models import Screening


def _rotate() -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command("rotate_keys", stdout=out, stderr=err)
    assert "re-encrypting" in err.getvalue()  # the progress bar
    return out.getvalue()


def test_rotation_reencrypts_everything_under_a_new_key(owner: Any, patient: Any, screening: Any) -> None:
    screening_correct(actor=owner, screening_id=screening.pk, reason="typo", remove=True)
    old_keys = set(DataKey.objects.filter(expires_on__isnull=True).values_list("key_id", flat=True))
    before = Patient.objects.filter(pk=patient.pk).values_list("last_name", flat=True).get()
    report = _rotate()
    new_key = (set(DataKey.objects.filter(expires_on__isnull=True).values_list("key_id", flat=True)) - old_keys).pop()
    assert f"new data key: {new_key}" in report
    assert "re-encrypted 1 patients.Patient rows" in report
    assert "re-encrypted 2 screenings.Screening rows" in report
    crypto.forget_keys()
    fresh = Patient.objects.get(pk=patient.pk)
    # Identity stays under its retention key (one per day, destroyed by the purge), re-encrypted with a fresh nonce.
    stored = Patient.objects.filter(pk=patient.pk).values_list("last_name", flat=True).get()
    assert crypto.key_id_of(stored) == fresh.retention_key != new_key and stored != before
    assert crypto.key_id_of(Screening.objects.filter(status="removed").values_list("correction_reason", flat=True).get()) == new_key
    assert fresh.last_name == "DURAND-TESTEUR" and fresh.email == "camille.durand@example.org"
    assert Screening.objects.get(status="removed").correction_reason == "typo"
    assert DataKey.objects.filter(key_id__in=old_keys, retired_at__isnull=False).count() == len(old_keys)
    assert AuditEvent.objects.filter(action="crypto.reencrypt").exists()


def test_master_key_rotation_rewraps_data_keys(patient: Any) -> None:
    new_master = base64.urlsafe_b64encode(os.urandom(32)).decode()
    with override_settings(RELAIS_MASTER_KEY=new_master, RELAIS_OLD_MASTER_KEYS=[settings.RELAIS_MASTER_KEY]):
        report = _rotate()
        assert "data keys rewrapped under the current master key: 1" in report
    crypto.forget_keys()
    with override_settings(RELAIS_MASTER_KEY=new_master, RELAIS_OLD_MASTER_KEYS=[]):
        assert Patient.objects.get(pk=patient.pk).nir == "294037512000591"
    crypto.forget_keys()
