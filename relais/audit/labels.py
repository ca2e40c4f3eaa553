"""What each audit action means, in the reader's language: the auditor pages and their CSV show these, never bare codes.

tests/audit/test_auditor_pages_labels.py fails when code records an action that has no label here."""

from __future__ import annotations

from typing import Any

from django.utils.translation import pgettext_lazy


def _l(text: str) -> Any:
    # A context of its own: other apps label some actions for patients, and one msgid may appear only once in the .po.
    return pgettext_lazy("audit action", text)


ACTION_LABELS: dict[str, Any] = {
    # patient records
    "patient.create": _l("registered the patient"),
    "patient.view": _l("viewed the patient record"),
    "patient.view_contact": _l("viewed the patient's contact details"),
    "patient.view_for_screening": _l("viewed the patient record to record a test"),
    "patient.review": _l("compared the patient record with a look-alike"),
    "patient.review_list": _l("listed the records to review"),
    "patient.search": _l("searched for a patient"),
    "patient.recent_list": _l("listed the patients tested today or this week"),
    "patient.reindex": _l("recomputed the patients' search indexes"),
    "patient.match": _l("matched a submitted identity to the patient"),
    "patient.duplicate_check": _l("checked for a duplicate record"),
    "patient.update": _l("changed the patient record"),
    "patient.update_contact": _l("changed the patient's contact details"),
    "patient.correct_identity": _l("corrected the patient's identity"),
    "patient.merge": _l("merged two records of the patient"),
    "patient.not_duplicate": _l("kept two look-alike records apart"),
    "patient.export": _l("exported the patient's data (subject access)"),
    "patient.api_read": _l("read the patient record through the API"),
    # tests
    "screening.create": _l("recorded a test"),
    "screening.view": _l("viewed a test"),
    "screening.list": _l("listed tests"),
    "screening.pdf": _l("printed a test result"),
    "screening.export": _l("exported the tests of a period (CSV or PDF register)"),
    "screening.api_read": _l("read a test through the API"),
    "screening.correct": _l("corrected a test"),
    "screening.remove": _l("withdrew a test"),
    "screening.duplicate": _l("submitted a test already recorded"),
    "screening.transmit": _l("sent a test to the national platform"),
    "queue.start": _l("put a test in the queue (swab taken, result to come)"),
    "queue.list": _l("viewed the queue of tests waiting for their result"),
    "queue.view": _l("opened a test waiting for its result"),
    "queue.result": _l("entered the result of a test from the queue"),
    "queue.cancel": _l("cancelled a test in the queue"),
    "queue.purge": _l("purged cancelled or abandoned tests of the queue"),
    # pre-registration (the patient's form and the counter)
    "prereg.submit": _l("pre-registered (patient's form)"),
    "prereg.withdraw": _l("withdrew a pre-registration (patient)"),
    "prereg.list": _l("listed the pre-registered patients"),
    "prereg.lookup": _l("looked up a pre-registration by its code"),
    "prereg.view": _l("viewed a pre-registration"),
    "prereg.confirm": _l("confirmed a pre-registration at the counter"),
    "prereg.discard": _l("discarded a pre-registration"),
    "prereg.purge": _l("purged expired pre-registrations"),
    "prereg.link_rotate": _l("replaced the pharmacy's pre-registration link"),
    "transfer.resend": _l("sent tests to the national platform again"),
    "kit.gtin_map": _l("recorded which device a scanned kit box is"),
    "kit.gtin_forget": _l("forgot which device a scanned kit box is"),
    "kit.pin": _l("pinned a test kit"),
    "kit.unpin": _l("unpinned a test kit"),
    "transfer.resend_batch": _l("sent a batch of refused tests to the national platform again"),
    # patient messages and result pages
    "notification.queue": _l("queued a message to the patient"),
    "notification.send": _l("sent a message to the patient"),
    "notification.resend": _l("sent the patient a new result link"),
    "notification.list": _l("viewed the messages sent to the patient"),
    "result_link.open": _l("opened a result link"),
    "result_link.open_expired": _l("opened an expired result link"),
    "result_link.open_replaced": _l("opened a replaced result link"),
    "result_link.open_locked": _l("opened a locked result link"),
    "result_link.open_unknown": _l("opened an unknown result link"),
    "result_link.unlock": _l("gave the right date of birth on the result page"),
    "result_link.wrong_birth_date": _l("gave a wrong date of birth on the result page"),
    "result_link.locked": _l("locked the result link after wrong dates of birth"),
    "result.patient_view": _l("viewed the result page"),
    "result.patient_pdf": _l("downloaded the result (PDF)"),
    # imports and API
    "submission.batch": _l("submitted a batch through the API"),
    "submission.csv": _l("uploaded a CSV file"),
    "submission.done": _l("finished recording a file import"),
    "submission.view": _l("viewed a file import"),
    "submission.api_read": _l("read a batch or file import through the API"),
    "submission.error_report": _l("downloaded a file import's error report"),
    "apiclient.create": _l("connected a pharmacy software"),
    "apiclient.key_add": _l("added a key to a pharmacy software"),
    "apiclient.key_revoke": _l("revoked a pharmacy software's key"),
    "apiclient.revoke": _l("disconnected a pharmacy software"),
    "apiclient.token": _l("obtained an API access token"),
    "webhook.register": _l("registered a webhook address"),
    "webhook.disable": _l("disabled a webhook address"),
    # accounts and pharmacies
    "pharmacy.create": _l("created a pharmacy"),
    "pharmacy.phone_change": _l("changed a pharmacy's phone number"),
    "staff.invite": _l("invited a staff member"),
    "staff.invite_revoke": _l("revoked a staff invitation"),
    "staff.invite_resend": _l("sent a staff invitation again with a new link"),
    "staff.join": _l("joined through an invitation"),
    "staff.deactivate": _l("deactivated a staff account"),
    "staff.rpps_change": _l("changed a staff member's RPPS number"),
    "staff.mfa_enrol": _l("enrolled a second factor"),
    "crypto.reencrypt": _l("re-encrypted personal data under a new key"),
    "retention.purge_done": _l("purged personal data past its retention period"),
    "backup.create": _l("made an encrypted backup"),
    "backup.restore": _l("restored an encrypted backup"),
    "backup.prune": _l("deleted backups past their retention"),
    # audit log, oversight, breach response
    "audit.search": _l("searched the audit log"),
    "audit.export": _l("exported audit events (CSV)"),
    "audit.patient_search": _l("looked a patient up in the audit log"),
    "audit.patient_view": _l("viewed who accessed a patient"),
    "audit.proof_export": _l("exported an audit inclusion proof"),
    "audit.purge": _l("purged expired audit log segments"),
    "audit.alerts_view": _l("viewed unusual-access alerts"),
    "audit.alert_view": _l("viewed an unusual-access alert"),
    "audit.alert_ack": _l("acknowledged an unusual-access alert"),
    "oversight.run": _l("checked the audit log for unusual access"),
    "breach.report": _l("produced a breach report"),
    "breach.letters_approve": _l("approved breach letters"),
    "breach.letters_send": _l("sent breach letters"),
    "breach.letter_send": _l("sent a breach letter to the patient"),
    "breach.letter_no_contact": _l("found no address for a breach letter"),
    "breach.letter_failed": _l("could not send a breach letter"),
}


def action_label(action: str) -> str:
    """The readable action; an action without a label shows its code (the labels test keeps that from happening)."""
    label = ACTION_LABELS.get(action)
    return str(label) if label is not None else action


def action_choices() -> list[tuple[str, str]]:
    """(code, label) sorted by label, for the filter form."""
    return sorted(((code, action_label(code)) for code in ACTION_LABELS), key=lambda pair: pair[1].casefold())
