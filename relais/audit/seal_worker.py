"""The sealer as a long-running worker on the shared core (run alone with audit_seal --loop, or inside run_workers)."""

from __future__ import annotations

import time
from typing import Any, ClassVar

from django.core.management.base import CommandError

from relais.audit.seal import seal_pending, signing_key
from relais.core.worker import Worker

FULL_SCAN_EVERY = 3600.0  # seconds between scans of the whole log for events committed very late


class AuditSealWorker(Worker):
    name: ClassVar[str] = "audit_seal"
    poll: ClassVar[float] = 5.0
    batch = 1000
    counted: ClassVar[tuple[str, ...]] = ("sealed", "checkpoints")

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        try:
            signing_key()
        except (ValueError, TypeError) as exc:
            raise CommandError("RELAIS_AUDIT_SIGNING_KEY is not a 32-byte base64 Ed25519 seed") from exc
        self.next_full = 0.0

    def round(self) -> int:
        # Cheap rounds look at new and recent events; a periodic full scan catches anything committed later than that.
        full = time.monotonic() >= self.next_full
        report = seal_pending(limit=self.limit, full=full)
        if full:
            self.next_full = time.monotonic() + FULL_SCAN_EVERY
        self.counts["sealed"] += report.sealed
        self.counts["checkpoints"] += report.checkpoints
        if report.sealed or report.checkpoints:
            self.log.info("audit_seal: %s sealed, %s checkpoints", report.sealed, report.checkpoints)
        return report.sealed
