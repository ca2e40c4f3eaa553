"""Notification channels, looked up by name in CHANNELS: email through Django's SMTP backend, SMS through a pluggable
HTTP gateway. Adding a channel is a class here (the patient's address for it, how to send a batch) and one line in
CHANNELS (and its name in models.Channel). Messages carry a link, never health data."""

from __future__ import annotations

import json
import logging
import smtplib
import urllib.error
import urllib.request
from email.utils import parseaddr
from typing import Any, Protocol

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.utils import formats, timezone, translation
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _

from relais.core.queue import parse_retry_after
from relais.notify.models import Channel, Notification, NotificationKind
from relais.notify.outcome import SendOutcome, scrub
from relais.screenings.notice import notice_url

log = logging.getLogger("relais.notify")
# Patients have no language setting: every message is in French, then English.
LANGUAGES = ("fr", "en")


def _lines(notification: Notification, *, short: bool) -> list[str]:
    pharmacy = notification.pharmacy.name
    expires_at = timezone.localtime(notification.link.expires_at)
    lines = []
    for language in LANGUAGES:
        with translation.override(language):
            until = formats.date_format(expires_at, "DATE_FORMAT")  # each half in its own language: "8 décembre 2026", "Dec. 8, 2026"
            if notification.kind == NotificationKind.CORRECTED:
                headline = _("%(pharmacy)s corrected the result of your test.") % {"pharmacy": pharmacy}
            elif notification.kind == NotificationKind.DETAILS_CORRECTED:
                headline = _("%(pharmacy)s corrected your details (name, date of birth…) on your test result; the result is unchanged.") % {
                    "pharmacy": pharmacy
                }
            elif notification.kind == NotificationKind.REMOVED:
                headline = _("%(pharmacy)s has new information about your test.") % {"pharmacy": pharmacy}
            else:
                headline = _("%(pharmacy)s: the result of your test is available.") % {"pharmacy": pharmacy}
            if short:
                lines.append(headline)
            else:
                lines += [
                    headline,
                    _("Open this link (valid until %(date)s); you will be asked for your date of birth:") % {"date": until},
                    notification.link_url,
                    _("If you did not take a test at this pharmacy, ignore this message."),
                    _("How your data are used (information notice): %(url)s") % {"url": notice_url(notification.pharmacy, absolute=True)},
                    "",
                ]
    if short:
        lines.append(notification.link_url)
    return lines


def email_subject() -> str:
    parts = []
    for language in LANGUAGES:
        with translation.override(language):
            parts.append(_("Your test result is available"))
    return " / ".join(parts)


def sms_text(notification: Notification) -> str:
    return "\n".join(_lines(notification, short=True))


def email_text(notification: Notification) -> str:
    return "\n".join(_lines(notification, short=False))


def message_id(notification: Notification) -> str:
    """The same Message-ID on every attempt, so a mail client shows a message resent after a crash only once."""
    domain = parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or "relais.localhost"
    return f"<{notification.pk}@{domain}>"


def sms_reference(notification: Notification) -> str:
    """The gateway's client reference: the same on every attempt, so the gateway drops a message resent after a crash."""
    return str(notification.pk)


class SmsBackend(Protocol):
    def send(self, *, to: str, text: str, reference: str) -> SendOutcome: ...


class HttpGatewaySms:
    """POST {to, text, reference} as JSON to RELAIS_SMS["url"]; 2xx sent, 429/5xx/timeouts retried, other 4xx permanent.

    ``reference`` is the client reference the gateway deduplicates on: a repeat is answered with the first message's id."""

    def __init__(self) -> None:
        self.url = settings.RELAIS_SMS["url"]
        self.token = settings.RELAIS_SMS.get("token", "")
        self.timeout = float(settings.RELAIS_SMS.get("timeout", 10))

    def send(self, *, to: str, text: str, reference: str) -> SendOutcome:
        body = json.dumps({"to": to, "text": text, "reference": reference}).encode()
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")  # noqa: S310 - configured URL
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                raw = response.read()
        except urllib.error.HTTPError as exc:
            detail = f"SMS gateway answered {exc.code}: {_gateway_reason(exc)}"
            if exc.code == 429 or exc.code >= 500:
                return SendOutcome.retry(detail, retry_after=parse_retry_after(exc.headers.get("Retry-After")))
            return SendOutcome.failed(detail)
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            return SendOutcome.retry(f"SMS gateway unreachable: {type(exc).__name__}")
        # Any 2xx means the gateway took the message: never resend it because its body is not what we expected.
        try:
            answer = json.loads(raw or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError):
            answer = {}
        return SendOutcome.sent(str(answer.get("id", ""))[:200] if isinstance(answer, dict) else "")


def _gateway_reason(exc: urllib.error.HTTPError) -> str:
    try:
        answer = json.loads(exc.read() or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        return scrub(str(exc.reason or ""))[:120]
    reason = answer.get("error", exc.reason or "") if isinstance(answer, dict) else exc.reason or ""
    return scrub(str(reason))[:120]


def sms_backend() -> SmsBackend:
    backend: SmsBackend = import_string(settings.RELAIS_SMS["backend"])()
    return backend


def _smtp_outcome(exc: Exception) -> SendOutcome:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _msg in exc.recipients.values()]
        if all(code >= 500 for code in codes):
            return SendOutcome.failed(f"mail server refused the address ({codes[0]})")
        return SendOutcome.retry(f"mail server deferred the address ({codes[0]})")
    if isinstance(exc, smtplib.SMTPResponseException):
        kind = SendOutcome.failed if exc.smtp_code >= 500 and exc.smtp_code != 554 else SendOutcome.retry
        return kind(f"mail server answered {exc.smtp_code}")
    return SendOutcome.retry(f"mail server unreachable: {type(exc).__name__}")


def _unexpected(exc: Exception) -> SendOutcome:
    log.exception("notification: unexpected error while sending")  # the traceback names no address: none is formatted in
    return SendOutcome.retry(f"unexpected error: {type(exc).__name__}")


class EmailChannel:
    """Emails share one SMTP connection per batch; each carries a stable Message-ID."""

    @staticmethod
    def address_of(patient: Any) -> str:
        return str(patient.email or "")

    def send_all(self, notifications: list[Notification], *, on_outcome: Any, before_send: Any) -> dict[Notification, SendOutcome]:
        outcomes: dict[Notification, SendOutcome] = {}
        connection = get_connection(fail_silently=False)
        try:
            connection.open()
        except (OSError, smtplib.SMTPException) as exc:
            for notification in notifications:
                outcomes[notification] = _smtp_outcome(exc)
                if on_outcome:
                    on_outcome(notification, outcomes[notification])
            return outcomes
        for notification in notifications:
            if before_send is not None and not before_send(notification):
                continue
            message = EmailMessage(subject=email_subject(), body=email_text(notification), to=[notification.address], connection=connection)
            message.extra_headers["X-Relais-Notification"] = str(notification.pk)
            message.extra_headers["Message-ID"] = message_id(notification)
            try:
                message.send()
                outcome = SendOutcome.sent(message.extra_headers["Message-ID"])
            except (OSError, smtplib.SMTPException) as exc:
                outcome = _smtp_outcome(exc)
                if not isinstance(exc, smtplib.SMTPRecipientsRefused):
                    connection.close()  # start afresh for the next message
            except Exception as exc:
                outcome = _unexpected(exc)
            outcomes[notification] = outcome
            if on_outcome:
                on_outcome(notification, outcome)
        connection.close()
        return outcomes


class SmsChannel:
    """Texts go one by one to the configured gateway, with the notification id as client reference."""

    @staticmethod
    def address_of(patient: Any) -> str:
        return str(patient.phone or "")

    def send_all(self, notifications: list[Notification], *, on_outcome: Any, before_send: Any) -> dict[Notification, SendOutcome]:
        outcomes: dict[Notification, SendOutcome] = {}
        backend = sms_backend()
        for notification in notifications:
            if before_send is not None and not before_send(notification):
                continue
            try:
                outcome = backend.send(to=notification.address, text=sms_text(notification), reference=sms_reference(notification))
            except Exception as exc:
                outcome = _unexpected(exc)
            outcomes[notification] = outcome
            if on_outcome:
                on_outcome(notification, outcome)
        return outcomes


class NotificationChannel(Protocol):
    def address_of(self, patient: Any) -> str: ...

    def send_all(self, notifications: list[Notification], *, on_outcome: Any, before_send: Any) -> dict[Notification, SendOutcome]: ...


CHANNELS: dict[str, NotificationChannel] = {
    Channel.EMAIL: EmailChannel(),
    Channel.SMS: SmsChannel(),
}


def send_batch(notifications: list[Notification], *, on_outcome: Any = None, before_send: Any = None) -> dict[Notification, SendOutcome]:
    """Send each message through its channel. ``on_outcome`` is called after each (to record at once);
    ``before_send`` may veto a message at the last moment (cancelled by a correction, lease lost)."""
    outcomes: dict[Notification, SendOutcome] = {}
    for name, channel in CHANNELS.items():
        mine = [n for n in notifications if n.channel == name]
        if mine:
            outcomes.update(channel.send_all(mine, on_outcome=on_outcome, before_send=before_send))
    return outcomes
