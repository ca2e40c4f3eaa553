"""Export inclusion proofs: every event about an object (or by an account) with its Merkle path and signed checkpoint."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import transaction

from relais.audit.models import AuditCheckpoint, AuditEvent, AuditSeal, AuditSubject
from relais.audit.seal import checkpoint_line, signing_key
from relais.audit.sealcrypto import COLUMNS, _b64, audit_path, canonical, public_key_bytes
from relais.audit.services import audit_record


def build_proof(*, object_id: uuid.UUID | None = None, actor_email: str | None = None) -> dict[str, Any]:
    """The proof document; events not yet covered by a checkpoint are listed by id under "pending" (seal, then retry).

    The export itself is audited (counts and the kind of query only)."""
    events = AuditEvent.objects.order_by("id")
    if object_id is not None:
        events = events.filter(id__in=AuditSubject.objects.filter(object_id=object_id).values("event_id"))
    if actor_email is not None:
        events = events.filter(actor_label=actor_email.strip().lower())
    with transaction.atomic():
        found = list(events)
        seals = {s.event_id: s for s in AuditSeal.objects.filter(event_id__in=[e.pk for e in found])}
        checkpoints: dict[str, dict[str, Any]] = {}
        leaves_by_checkpoint: dict[int, list[bytes]] = {}
        entries, pending = [], []
        for event in sorted(found, key=lambda e: seals[e.pk].seq if e.pk in seals else 0):
            seal = seals.get(event.pk)
            checkpoint = None
            if seal is not None:  # the first checkpoint ending at or after the seq: one step down the seq_last index
                checkpoint = AuditCheckpoint.objects.filter(seq_last__gte=seal.seq).order_by("seq_last").first()
                if checkpoint is not None and checkpoint.seq_first > seal.seq:
                    checkpoint = None
            if seal is None or checkpoint is None:
                pending.append(event.pk)
                continue
            if checkpoint.pk not in leaves_by_checkpoint:
                hashes = AuditSeal.objects.filter(seq__gte=checkpoint.seq_first, seq__lte=checkpoint.seq_last).order_by("seq")
                leaves_by_checkpoint[checkpoint.pk] = [bytes.fromhex(h) for h in hashes.values_list("content_hash", flat=True)]
                checkpoints[checkpoint.checkpoint_hash] = checkpoint_line(checkpoint)
            leaves = leaves_by_checkpoint[checkpoint.pk]
            content = canonical([getattr(event, c) for c in COLUMNS])
            entries.append(
                {
                    "seq": seal.seq,
                    "content": content.decode(),
                    "content_hash": seal.content_hash,
                    "audit_path": [h.hex() for h in audit_path(seal.seq - checkpoint.seq_first, leaves)],
                    "checkpoint": checkpoint.checkpoint_hash,
                }
            )
        audit_record(
            actor=None,
            action="audit.proof_export",
            detail={"query": "object" if object_id is not None else "actor", "events": len(entries), "pending": len(pending)},
        )
    public = public_key_bytes(signing_key().public_key())
    return {
        "version": 1,
        "kind": "relais-audit-inclusion-proof",
        "public_key": _b64(public),
        "checkpoints": checkpoints,
        "events": entries,
        "pending": pending,
    }
