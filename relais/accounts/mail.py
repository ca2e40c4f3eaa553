"""The invitation email: French then English, plain text and simple HTML, through the SMTP server patients' messages use
(Django's SMTP backend, RELAIS_SMTP_*). Sent after the invitation is committed, while its administrator waits: a failure
is recorded on the invitation and shown on the team page with its link and a Resend button, so nothing is lost."""

from __future__ import annotations

import smtplib
from email.utils import parseaddr

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _

from relais.accounts.models import Invitation

LANGUAGES = ("fr", "en")


def invitation_url(token: str) -> str:
    """The configured public address, never the request's Host header: an emailed link must not be steerable."""
    return settings.RELAIS_PUBLIC_URL.rstrip("/") + reverse("accounts:invitation", args=[token])


def _subject(pharmacy_name: str) -> str:
    parts = []
    for language in LANGUAGES:
        with translation.override(language):
            parts.append(_("Invitation to join %(pharmacy)s on Relais") % {"pharmacy": pharmacy_name})
    return " / ".join(parts)


def message_id(invitation: Invitation, token: str) -> str:
    """One Message-ID per token: a resend (new token) is a new message, a retry of the same one is not."""
    domain = parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or "relais.localhost"
    return f"<invitation-{invitation.pk}-{token[:8]}@{domain}>"


def error_code(exc: Exception) -> str:
    """A short code for the team page (never the server's words, which may quote the address)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _msg in exc.recipients.values()]
        return f"refused:{codes[0] if codes else 0}"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"answered:{exc.smtp_code}"
    return f"unreachable:{type(exc).__name__}"[:200]


def send_invitation(invitation: Invitation, token: str) -> None:
    """Raise OSError or SMTPException when the mail server did not take the message."""
    pharmacy_name = invitation.pharmacy.name if invitation.pharmacy is not None else "Relais"
    context = {
        "pharmacy_name": pharmacy_name,
        "url": invitation_url(token),
        "expires_at": invitation.expires_at,
        "languages": LANGUAGES,
    }
    message = EmailMultiAlternatives(
        subject=_subject(pharmacy_name),
        body=render_to_string("accounts/email/invitation.txt", context),
        to=[invitation.email],
        connection=get_connection(fail_silently=False),
    )
    message.attach_alternative(render_to_string("accounts/email/invitation.html", context), "text/html")
    message.extra_headers["Message-ID"] = message_id(invitation, token)
    message.extra_headers["X-Relais-Invitation"] = str(invitation.pk)
    message.send()
