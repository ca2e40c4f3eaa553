"""audit_verify over N sealed events: generation time and verification time, reported separately.

Usage: .venv/bin/python bench/audit_verify.py [-n 1000000] [--dir DIR] [--keep]
A fresh SQLite database in DIR (default: a temporary folder) with development secrets; N events written in bulk with
executemany (secondary indexes dropped during the load and rebuilt after, included in the generation time), each
sealed (content hash, chain hash) and signed in checkpoints of 1,000 (RFC 9162 Merkle root, Ed25519), checkpoints also
in DIR/audit-checkpoints.jsonl. Then the verification exactly as `manage.py audit_verify` runs it, and a floor: the same
keyset-paged read of seals joined to events with no hashing at all. With --keep the folder stays, and the printed
command re-runs the verification from the shell.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PY = str(ROOT / ".venv" / "bin" / "python")
SEGMENT = 1000
ACTIONS = ["patient.view", "screening.view", "patient.search", "result.pdf", "screening.record", "notify.sent"]


def _prepare(folder: Path) -> None:
    os.environ.update({"RELAIS_ENV": "development", "RELAIS_VAR_DIR": str(folder), "DJANGO_SETTINGS_MODULE": "relais.settings"})
    for name in ("DATABASE_URL", "RELAIS_AUDIT_CHECKPOINT_FILE", "RELAIS_AUDIT_CHECKPOINT_COPY"):
        os.environ.pop(name, None)
    subprocess.run([PY, "-m", "relais.core.devsecrets", str(folder / "secrets")], cwd=ROOT, check=True, capture_output=True)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _generate(n: int, folder: Path) -> float:
    from django.db import connection

    from relais.audit.seal import signing_key
    from relais.audit.sealcrypto import GENESIS, canonical, chain, checkpoint_body, key_id, merkle_root, public_key_bytes

    key = signing_key()
    kid = key_id(public_key_bytes(key.public_key()))
    rng = random.Random(12)
    actors = [(uuid.UUID(int=rng.getrandbits(128)).hex, f"pharmacist{i}@bench.example") for i in range(2000)]
    pharmacies = [uuid.UUID(int=rng.getrandbits(128)).hex for _ in range(500)]
    start_time = datetime(2025, 1, 1, tzinfo=UTC)
    now = datetime.now(UTC)
    stamp = now.strftime("%Y-%m-%d %H:%M:%S.%f")
    started = time.perf_counter()
    connection.ensure_connection()
    raw: Any = connection.connection  # the sqlite3 connection itself: executemany without Django's per-row wrapping
    raw.execute("PRAGMA journal_mode=OFF")
    raw.execute("PRAGMA synchronous=OFF")
    tables = ("audit_auditevent", "audit_auditseal", "audit_auditcheckpoint")
    marks = ",".join("?" * len(tables))
    query = f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN ({marks})"  # noqa: S608
    indexes = raw.execute(query, tables).fetchall()
    for name, _ in indexes:
        raw.execute(f'DROP INDEX "{name}"')
    previous, checkpoint_hash = GENESIS, GENESIS
    events, seals, leaves, lines = [], [], [], []
    event_sql = (
        "INSERT INTO audit_auditevent (id, public_id, occurred_at, actor_id, actor_label, actor_role, pharmacy_id, action, "
        "object_type, object_ids, detail, request_id, client_ip, channel) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
    )
    seal_sql = "INSERT INTO audit_auditseal (seq, event_id, content_hash, chain_hash, sealed_at) VALUES (?,?,?,?,?)"
    step = timedelta(seconds=30_000_000 / max(n, 1))
    for i in range(1, n + 1):
        actor_id, label = actors[rng.randrange(len(actors))]
        row = (
            i,
            uuid.UUID(int=rng.getrandbits(128), version=4).hex,
            (start_time + step * i + timedelta(microseconds=rng.randrange(1, 999999))).strftime("%Y-%m-%d %H:%M:%S.%f"),
            actor_id,
            label,
            "pharmacist",
            pharmacies[rng.randrange(len(pharmacies))],
            ACTIONS[i % len(ACTIONS)],
            "patient",
            json.dumps([str(uuid.UUID(int=rng.getrandbits(128), version=4))]),
            json.dumps({"fields": ["identity", "results"]} if i % 5 == 0 else {}),
            uuid.UUID(int=rng.getrandbits(128)).hex,
            f"203.0.113.{i % 250 + 1}",
            "web",
        )
        digest = hashlib.sha256(canonical(row)).hexdigest()
        previous = chain(previous, digest)
        events.append(row)
        seals.append((i, i, digest, previous, stamp))
        leaves.append(bytes.fromhex(digest))
        if i % SEGMENT == 0 or i == n:
            fields = {
                "seq_first": i - len(leaves) + 1,
                "seq_last": i,
                "count": len(leaves),
                "merkle_root": merkle_root(leaves).hex(),
                "chain_hash": previous,
                "previous_checkpoint_hash": checkpoint_hash,
                "created_at": now,
                "key_id": kid,
            }
            body = checkpoint_body(fields)
            checkpoint_hash = hashlib.sha256(body).hexdigest()
            signature = key.sign(body).hex()
            raw.execute(
                "INSERT INTO audit_auditcheckpoint (seq_first, seq_last, count, merkle_root, chain_hash, previous_checkpoint_hash, "
                "checkpoint_hash, created_at, key_id, signature) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    fields["seq_first"],
                    i,
                    len(leaves),
                    fields["merkle_root"],
                    previous,
                    fields["previous_checkpoint_hash"],
                    checkpoint_hash,
                    stamp,
                    kid,
                    signature,
                ),
            )
            line = json.loads(body)
            line.update(checkpoint_hash=checkpoint_hash, signature=signature, public_key="")
            lines.append(json.dumps(line, sort_keys=True))
            leaves = []
        if len(events) >= 50_000 or i == n:
            raw.executemany(event_sql, events)
            raw.executemany(seal_sql, seals)
            raw.commit()
            events, seals = [], []
            sys.stderr.write(f"\rgenerated {i:,}/{n:,}")
    sys.stderr.write("\nrebuilding indexes\n")
    for _, sql in indexes:
        raw.execute(sql)
    raw.commit()
    path = folder / "audit-checkpoints.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    path.chmod(0o600)
    return time.perf_counter() - started


def _floor(batch: int) -> float:
    from django.db import connection

    from relais.audit.verify import _STREAM

    started = time.perf_counter()
    last = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(_STREAM, [last, batch])
            page = cursor.fetchall()
        if not page:
            return time.perf_counter() - started
        last = page[-1][0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=1_000_000)
    parser.add_argument("--dir", help="folder for the database (created; default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the folder")
    parser.add_argument("--batch", type=int, default=20000)
    options = parser.parse_args()
    folder = Path(options.dir) if options.dir else Path(tempfile.mkdtemp(prefix="relais-audit-verify-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        _prepare(folder)
        generation = _generate(options.n, folder)
        size = sum(p.stat().st_size for p in folder.glob("relais.sqlite3*")) / 1e9
        segments = -(-options.n // SEGMENT)
        print(f"audit_verify bench: generated {options.n:,} sealed events + {segments:,} checkpoints in {generation:.1f} s ({size:.2f} GB)")

        from relais.audit.verify import verify

        floor = _floor(options.batch)
        started = time.perf_counter()
        shown = [0.0]

        def progress(done: int, total: int) -> None:
            if time.perf_counter() - shown[0] > 5:
                shown[0] = time.perf_counter()
                sys.stderr.write(f"\rverified {done:,}/{total:,}")

        report = verify(batch=options.batch, progress=progress)
        elapsed = time.perf_counter() - started
        sys.stderr.write("\n")
        if not report.ok:
            raise SystemExit(f"verification failed: {report.first}")
        rate = report.events / elapsed
        print(f"audit_verify bench: verified {report.events:,} events + {report.checkpoints:,} checkpoints: {elapsed:.1f} s, {rate:,.0f}/s")
        print(f"audit_verify bench: floor (same paged read, no hashing) {floor:.1f} s")
        command = f"RELAIS_ENV=development RELAIS_VAR_DIR={folder} {PY} manage.py audit_verify"
        kept = f" --dir {folder} --keep" if options.keep else ""
        print(f"audit_verify bench: command: {PY} bench/audit_verify.py -n {options.n}{kept}")
        if options.keep:
            print(f"audit_verify bench: re-run the verification alone: {command}")
    finally:
        if not options.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
