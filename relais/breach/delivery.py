"""Send one Art. 34 letter through the patient channels: by email when the patient gave one, otherwise by SMS. The
address is decrypted from the patient's record here, at send time, and never stored, logged or shown."""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from email.utils import parseaddr

from django.conf import settings
from django.core.mail import EmailMessage, get_connection

from relais.breach import drafts
from relais.breach.models import BreachLetter
from relais.notify.channels import CHANNELS, sms_backend
from relais.notify.models import Channel
from relais.notify.outcome import SendOutcome
from relais.patients.models import Patient

NO_CONTACT = SendOutcome("no_contact")


def message_id(letter: BreachLetter) -> str:
    """The same Message-ID on every attempt, so a letter resent after a crash shows once in a mail client."""
    domain = parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or "relais.localhost"
    return f"<breach-{letter.pk}@{domain}>"


def _smtp_outcome(exc: Exception) -> SendOutcome:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _msg in exc.recipients.values()]
        if codes and all(code >= 500 for code in codes):
            return SendOutcome.failed(f"mail server refused the address ({codes[0]})")
        return SendOutcome.retry("mail server deferred the address")
    if isinstance(exc, smtplib.SMTPResponseException):
        kind = SendOutcome.failed if exc.smtp_code >= 500 and exc.smtp_code != 554 else SendOutcome.retry
        return kind(f"mail server answered {exc.smtp_code}")
    return SendOutcome.retry(f"mail server unreachable: {type(exc).__name__}")


def send_letter(letter: BreachLetter, *, before_send: Callable[[], bool]) -> tuple[str, SendOutcome | None]:
    """(channel, outcome); outcome None when ``before_send`` vetoed the hand-off (lease lost, approval withdrawn)."""
    patient = Patient.objects.get(pk=letter.patient_id)
    email = CHANNELS[Channel.EMAIL].address_of(patient)
    phone = CHANNELS[Channel.SMS].address_of(patient)
    if not email and not phone:
        return "", NO_CONTACT
    if not before_send():
        return "", None
    if email:
        message = EmailMessage(
            subject=drafts.letter_subject(),
            body=drafts.letter_text(letter.case, letter.pharmacy),
            to=[email],
            connection=get_connection(fail_silently=False),
        )
        message.extra_headers["Message-ID"] = message_id(letter)
        message.extra_headers["X-Relais-Breach-Letter"] = str(letter.pk)
        try:
            message.send()
        except (OSError, smtplib.SMTPException) as exc:
            return Channel.EMAIL, _smtp_outcome(exc)
        return Channel.EMAIL, SendOutcome.sent(message_id(letter))
    text = drafts.letter_text(letter.case, letter.pharmacy, short=True)
    return Channel.SMS, sms_backend().send(to=phone, text=text, reference=f"breach-{letter.pk}")
