"""Send approved Art. 34 breach letters (email, else SMS): claim with a lease, send, record and audit, repeat.

Only letters a pharmacy admin or an operator approved and asked to send are ever claimed."""

from __future__ import annotations

from relais.breach.delivery import send_letter
from relais.breach.models import BreachLetter
from relais.breach.services import letter_record, letter_record_error, letter_release, letter_touch, letters_claim
from relais.core.queue import log_unexpected, unstarted
from relais.core.worker import Worker, worker_command


class BreachLetterWorker(Worker):
    name = "breach"
    batch = 20
    counted = ("sent", "retry", "failed", "no_contact", "errors")

    def round(self) -> int:
        claimed = letters_claim(owner=self.owner, limit=self.limit)
        done: list[BreachLetter] = []
        for letter in claimed:
            if self.stopping.is_set():
                break

            def before_send(letter: BreachLetter = letter) -> bool:
                return letter_touch(owner=self.owner, letter=letter)

            try:
                channel, outcome = send_letter(letter, before_send=before_send)
            except Exception as exc:
                # One letter failed while being prepared (a decryption error, a bug): recorded on it, the others go on.
                letter_record_error(owner=self.owner, letter=letter, error=log_unexpected(self.log, exc, f"breach letter {letter.pk}"))
                self.counts["errors"] += 1
                done.append(letter)
                continue
            done.append(letter)
            if outcome is None:
                continue
            letter_record(owner=self.owner, letter=letter, channel=channel, outcome=outcome)
            self.counts[outcome.kind] += 1
            # Ids and outcome only: never the address or the letter's text.
            self.log.info("breach letter %s %s -> %s", letter.pk, channel or "-", outcome.kind)
        letter_release(owner=self.owner, ids=unstarted(claimed, done))
        return len(claimed)


Command = worker_command(BreachLetterWorker)
