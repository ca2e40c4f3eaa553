"""The notify folder's real SMTP server and loopback SMS gateway, for the letters' delivery."""

from tests.notify.conftest import messaging, sms, smtp

__all__ = ["messaging", "sms", "smtp"]
