"""Record uploaded CSV files row by row: claim a queued file with a lease, record it in chunks, repeat (relais.core.worker).

On SIGTERM the chunk in hand is finished and the file handed back (the next worker resumes after the last chunk).
A killed worker's lease runs out after two minutes and another worker resumes the file where it stopped.
"""

from __future__ import annotations

import time
import uuid

from relais.core.queue import log_unexpected
from relais.core.worker import Worker, worker_command
from relais.submissions.services import SubmissionBusy, csv_process, submission_claim_queued, submission_record_error, submission_release


class _Stop(Exception):
    pass


class SubmissionWorker(Worker):
    name = "csv"
    logger = "relais.submissions"
    batch = 1
    counted = ("files", "errors")

    def round(self) -> int:
        submission = submission_claim_queued(owner=self.owner)
        if submission is None:
            return 0
        started = time.monotonic()

        def progress(done: int, total: int, submission_id: uuid.UUID = submission.pk) -> None:
            self.log.info("submission %s: %d/%d rows", submission_id, done, total)
            if self.stopping.is_set():
                raise _Stop

        try:
            result = csv_process(submission=submission, owner=self.owner, progress=progress)
        except _Stop:
            submission_release(owner=self.owner, submission=submission)
            return 1
        except SubmissionBusy:
            self.log.info("submission %s: taken over by another worker", submission.pk)
            return 1
        except Exception as exc:
            # One file that raises is retried with backoff from its last chunk, then failed; the files behind it go on.
            error = log_unexpected(self.log, exc, f"submission {submission.pk}")
            submission_record_error(owner=self.owner, submission=submission, error=error)
            self.counts["errors"] += 1
            return 1
        self.counts["files"] += 1
        self.log.info(
            "submission %s: %s, %d accepted, %d duplicates, %d rejected in %.1f s",
            result.pk,
            result.status,
            result.accepted,
            result.duplicates,
            result.rejected,
            time.monotonic() - started,
        )
        return 1


Command = worker_command(SubmissionWorker)
