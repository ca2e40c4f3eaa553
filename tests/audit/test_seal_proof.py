"""Merkle tree against RFC 9162's definition, inclusion proofs exported and checked, the sealer worker and commands."""

from __future__ import annotations

import hashlib
import json
import stat
import subprocess
import sys
import uuid
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import CommandError, call_command
from django.db import transaction

from relais.audit import sealcrypto
from relais.audit.models import AuditCheckpoint, AuditEvent, AuditSeal
from relais.audit.proof import build_proof
from relais.audit.proofcheck import check_proof
from relais.audit.seal import seal_pending, signing_key
from relais.audit.seal_worker import AuditSealWorker
from relais.audit.services import audit_record

PATIENT = "6f1c5b8e-0000-4000-8000-0000000000b0"
ROOT = Path(__file__).resolve().parents[2]


def mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 2.1.1, written as the RFC states it."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 7, 8, 13, 64, 100])
def test_merkle_root_and_paths_follow_rfc_9162(n: int) -> None:
    leaves = [hashlib.sha256(str(i).encode()).digest() for i in range(n)]
    root = sealcrypto.merkle_root(leaves)
    assert root == mth(leaves)
    for index in range(n):
        path = sealcrypto.audit_path(index, leaves)
        assert sealcrypto.verify_inclusion(index=index, size=n, leaf=leaves[index], path=path, root=root)
        assert not sealcrypto.verify_inclusion(index=index, size=n, leaf=b"\x01" * 32, path=path, root=root)
        if n > 1:
            assert not sealcrypto.verify_inclusion(index=(index + 1) % n, size=n, leaf=leaves[index], path=path, root=root)


@pytest.fixture
def sealing(settings: Any, tmp_path: Path) -> dict[str, Any]:
    settings.RELAIS_AUDIT_SEAL = {"every_events": 4, "every_seconds": 60, "delay_seconds": 300, "files": [str(tmp_path / "cp.jsonl")]}
    return settings.RELAIS_AUDIT_SEAL


@pytest.fixture
def history(db: Any, sealing: dict[str, Any], owner: Any) -> None:
    with transaction.atomic():
        for i in range(11):
            audit_record(actor=owner if i % 2 else None, action="patient.view", object_ids=[PATIENT] if i % 3 == 0 else [], detail={"i": i})
    seal_pending(checkpoint=True)


def trusted() -> list[bytes]:
    return [sealcrypto.public_key_bytes(signing_key().public_key())]


def test_a_patients_proof_verifies_and_a_tampered_one_does_not(history: None) -> None:
    proof = build_proof(object_id=uuid.UUID(PATIENT))
    assert len(proof["events"]) == 4 and proof["pending"] == []
    assert AuditEvent.objects.filter(action="audit.proof_export").exists()
    result = check_proof(json.loads(json.dumps(proof)), trusted_public_keys=trusted())
    assert result.ok and result.events == 4, result.errors

    changed = json.loads(json.dumps(proof))
    changed["events"][1]["content"] = changed["events"][1]["content"].replace('"i":3', '"i":4')
    assert not check_proof(changed, trusted_public_keys=trusted()).ok

    moved = json.loads(json.dumps(proof))
    moved["events"][0]["seq"] += 1
    assert not check_proof(moved, trusted_public_keys=trusted()).ok

    forged = json.loads(json.dumps(proof))
    name = next(iter(forged["checkpoints"]))
    forged["checkpoints"][name]["merkle_root"] = "00" * 32
    assert not check_proof(forged, trusted_public_keys=trusted()).ok

    # Signed by another key: the key shipped inside the proof does not make it trusted.
    other = sealcrypto.public_key_bytes(Ed25519PrivateKey.generate().public_key())
    assert not check_proof(proof, trusted_public_keys=[other]).ok


def test_an_accounts_proof_through_the_command(history: None, owner: Any, tmp_path: Path) -> None:
    out = tmp_path / "proof.json"
    call_command("audit_proof", "--actor", owner.email.upper(), "--out", str(out), stderr=StringIO())
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    proof = json.loads(out.read_text())
    assert proof["events"] and all(f'"actor_label":"{owner.email}"' in e["content"] for e in proof["events"])
    printed = StringIO()
    call_command("audit_proof", "--check", str(out), stdout=printed)
    assert "proof verifies" in printed.getvalue()
    proof["events"][0]["audit_path"] = proof["events"][0]["audit_path"][1:]
    out.write_text(json.dumps(proof))
    with pytest.raises(CommandError) as failure:
        call_command("audit_proof", "--check", str(out), stdout=StringIO())
    assert failure.value.returncode == 1


def test_the_checker_needs_no_django(history: None, tmp_path: Path) -> None:
    proof = build_proof(object_id=uuid.UUID(PATIENT))
    path = tmp_path / "proof.json"
    path.write_text(json.dumps(proof))
    script = (
        "import json, sys, base64\n"
        "from relais.audit.proofcheck import check_proof\n"
        f"r = check_proof(json.load(open({str(path)!r})), trusted_public_keys=[base64.urlsafe_b64decode({proof['public_key']!r})])\n"
        "print(r.ok, r.events, 'django' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, timeout=60
    )
    assert done.stdout.split() == ["True", "4", "False"], done.stderr


def test_events_not_yet_under_a_checkpoint_are_listed_as_pending(db: Any, sealing: dict[str, Any]) -> None:
    with transaction.atomic():
        event = audit_record(actor=None, action="patient.view", object_ids=[PATIENT])
    proof = build_proof(object_id=uuid.UUID(PATIENT))
    assert proof["events"] == [] and proof["pending"] == [event.pk]


def test_the_worker_seals_and_checkpoints(db: Any, sealing: dict[str, Any]) -> None:
    with transaction.atomic():
        for _ in range(9):
            audit_record(actor=None, action="patient.view")
    worker = AuditSealWorker(batch=0, once=True, poll=0.01, max_seconds=0)
    worker.run(once=True, poll=0.01)
    assert worker.counts["sealed"] == AuditEvent.objects.count() == AuditSeal.objects.count()
    assert AuditCheckpoint.objects.count() == worker.counts["checkpoints"] == 2  # 2 x 4; the ninth waits for time or more events
    from relais.core.management.commands.run_workers import WORKERS

    assert WORKERS["audit_seal"] is AuditSealWorker


def test_audit_seal_command(db: Any, sealing: dict[str, Any]) -> None:
    with transaction.atomic():
        for _ in range(5):
            audit_record(actor=None, action="patient.view")
    out = StringIO()
    call_command("audit_seal", "--checkpoint", stdout=out)
    assert "sealed 5 event(s), wrote 2 checkpoint(s)" in out.getvalue()
    lines = Path(sealing["files"][0]).read_text().splitlines()
    assert [json.loads(line)["seq_last"] for line in lines] == [4, 5]
