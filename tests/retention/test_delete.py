"""The purge's delete without Django's collector: it must leave the database as the collector would."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from relais.certificates.models import Certificate, CertificateRefusal, RefusalReason
from relais.notify.models import Notification, ResultLink
from relais.patients.models import Patient
from relais.retention.services import _delete
from relais.screenings.models import Screening, ScreeningResult
from relais.transfer.models import OutboxMessage
from relais.webhooks.models import WebhookDelivery
from tests.retention.helpers import new_patient


def test_cascade_followed_set_null_emptied_protect_refused_by_the_database(owner: Any, patient: Any, screening: Any) -> None:
    other = new_patient(owner, 1)
    Patient.objects.filter(pk=other.pk).update(possible_duplicate_of=patient)
    CertificateRefusal.objects.create(screening=screening, reason=RefusalReason.BIRTH_DATE_RANGE, created_at=timezone.now())

    with pytest.raises(IntegrityError), transaction.atomic():  # PROTECT: the patient still has its test
        _delete(Patient.objects.filter(pk=patient.pk))
        connection.check_constraints()
    assert Patient.objects.filter(pk=patient.pk).exists()

    for model in (Notification, WebhookDelivery, Certificate, OutboxMessage, ScreeningResult):
        _delete(model._default_manager.filter(screening=screening))
    assert _delete(Screening.objects.filter(pk=screening.pk)) == 1
    assert not CertificateRefusal.objects.exists()  # CASCADE followed
    _delete(Notification.objects.filter(patient=patient))
    _delete(ResultLink.objects.filter(patient=patient))
    assert _delete(Patient.objects.filter(pk=patient.pk)) == 1
    connection.check_constraints()
    other.refresh_from_db()
    assert other.possible_duplicate_of_id is None  # SET_NULL emptied
    assert _delete(Patient.objects.filter(pk=patient.pk)) == 0
