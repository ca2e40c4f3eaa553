"""A real SMTP server and a loopback SMS gateway for each test, with Django pointed at them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings

from sandbox.messaging import SmsGateway, SmtpServer


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(port=0).start()
    yield server
    server.stop()


@pytest.fixture
def sms() -> Iterator[SmsGateway]:
    gateway = SmsGateway(port=0).start()
    yield gateway
    gateway.stop()


@pytest.fixture
def messaging(smtp: SmtpServer, sms: SmsGateway, settings: Any) -> tuple[SmtpServer, SmsGateway]:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = smtp.port
    settings.RELAIS_SMS = {**settings.RELAIS_SMS, "url": sms.url, "timeout": 5}
    settings.RELAIS_PUBLIC_URL = "http://testserver"
    return smtp, sms


__all__ = ["settings"]
