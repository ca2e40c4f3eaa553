"""The result pages are reached through a real message: the same SMTP server and SMS gateway as tests/notify."""

from tests.notify.conftest import messaging, sms, smtp

__all__ = ["messaging", "sms", "smtp"]
