"""Thousands of screenings, a worker killed at random, the sandbox cycled through every failure mode:
every result acknowledged, none lost, none stored twice, each correction after its original.

On SQLite one worker delivers HL7 v2 over MLLP; on PostgreSQL (DATABASE_URL set, as in
`make pytest-postgres`) two workers claim side by side and deliver FHIR over HTTPS.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tests.transfer.live import Relais, Sandbox, relais_env, start_sandbox

SCREENINGS = int(os.environ.get("RELAIS_RELIABILITY_SCREENINGS", "1500"))
FAILURE_MODES = ["down", "slow", "http500", "http429", "reject", "ack_lost", "ack_malformed"]


def _postgres_database() -> tuple[str, Any]:
    """A fresh database on the test server, dropped afterwards."""
    import psycopg

    url = os.environ["DATABASE_URL"]
    name = f"reliability_{uuid.uuid4().hex[:8]}"
    admin = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return urlunsplit(urlsplit(url)._replace(path=f"/{name}")), drop


class Chaos:
    """Kills a worker now and then and switches the sandbox through every failure mode."""

    def __init__(self, relais: Relais, sandbox: Sandbox, worker_count: int, rng: random.Random) -> None:
        self.relais, self.sandbox, self.worker_count, self.rng = relais, sandbox, worker_count, rng
        self.kills = 0
        self.modes_seen: set[str] = set()
        self.stop = threading.Event()

    def run(self) -> None:
        modes = list(FAILURE_MODES)
        while not self.stop.is_set():
            if self.rng.random() < 0.35:
                victim = self.rng.choice([w for w in self.relais.workers if w.poll() is None])
                victim.send_signal(signal.SIGKILL)
                victim.wait()
                self.kills += 1
                self.relais.start_worker()
            else:
                mode = modes.pop(0) if modes else self.rng.choice(FAILURE_MODES)
                self.sandbox.mode(mode, retry_after=1, slow_seconds=2)
                self.modes_seen.add(mode)
                self.stop.wait(self.rng.uniform(0.8, 1.6))
                self.sandbox.mode("normal")
            self.stop.wait(self.rng.uniform(0.5, 1.5))


def test_nothing_lost_nothing_doubled(tmp_path: Path, record_property: Any) -> None:
    on_postgres = os.environ.get("DATABASE_URL", "").startswith("postgres")
    database_url, drop = _postgres_database() if on_postgres else ("", lambda: None)
    sandbox = start_sandbox(tmp_path)
    relais = None
    try:
        env = relais_env(
            tmp_path,
            sandbox,
            destination="sandbox-https-fhir" if on_postgres else "sandbox-mllp-hl7v2",
            database_url=database_url,
            RELAIS_TRANSFER_TIMEOUT="1",
            RELAIS_TRANSFER_DEADLINE="2",  # within the 5 s lease
            RELAIS_TRANSFER_BACKOFF_BASE="0.1",
            RELAIS_TRANSFER_BACKOFF_CAP="1",
            RELAIS_TRANSFER_LEASE_SECONDS="5",
            RELAIS_TRANSFER_CLAIM_BATCH="10",
        )
        relais = Relais(env)
        relais.manage("migrate", "--no-input")
        worker_count = 2 if on_postgres else 1
        for _ in range(worker_count):
            relais.start_worker()
        chaos = Chaos(relais, sandbox, worker_count, random.Random(7))
        chaos_thread = threading.Thread(target=chaos.run, daemon=True)
        chaos_thread.start()
        generated = relais.manage("loadgen", "--screenings", str(SCREENINGS), "--patients", "60", "--no-progress")
        # Keep the chaos going until every failure mode was seen at least once.
        deadline = time.monotonic() + 60
        while set(FAILURE_MODES) - chaos.modes_seen and time.monotonic() < deadline:
            time.sleep(0.5)
        chaos.stop.set()
        chaos_thread.join(timeout=30)
        sandbox.mode("normal")
        # Rejected in reject mode: the operator resends them once the receiver is healthy.
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            stats = relais.stats()
            if stats["by_status"].get("rejected"):
                relais.manage("transfer_resend", "--all")
            elif stats["depth"] == 0:
                break
            if not any(w.poll() is None for w in relais.workers):
                relais.start_worker()
            time.sleep(1)
        report = relais.stats(messages=True)
        stored = sandbox.control("/control/messages")
        sandbox_stats = sandbox.control("/control/stats")
    finally:
        if relais is not None:
            relais.stop_workers()
        sandbox.stop()
        drop()

    messages = report["messages"]
    by_id = {m["message_id"]: m for m in messages}
    stored_ids = [row["message_id"] for row in stored]
    identified = [m for m in messages if not m["identity_withheld"]]
    acknowledged = [m for m in messages if m["status"] == "acknowledged"]
    # A version rejected then resent after its correction went out is superseded, never sent late.
    superseded = [m for m in messages if m["status"] == "superseded"]
    latest: dict[str, dict[str, Any]] = {}
    for m in messages:
        if m["series_id"] not in latest or m["version"] > latest[m["series_id"]]["version"]:
            latest[m["series_id"]] = m
    lost = [m for m in acknowledged + list(latest.values()) if m["message_id"] not in set(stored_ids)]
    duplicates = len(stored_ids) - len(set(stored_ids))
    # One version stored twice under two message ids (the filler is the same for every version of a test since issue 16).
    versions_stored = [(by_id[r["message_id"]]["series_id"], by_id[r["message_id"]]["version"]) for r in stored if r["message_id"] in by_id]
    duplicates += len(versions_stored) - len(set(versions_stored))
    # Corrections after originals: per test, the receiver got versions in increasing order.
    arrivals: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for row in stored:
        message = by_id.get(row["message_id"])
        assert message is not None, f"the sandbox holds a message Relais never sent: {row['message_id']}"
        arrivals[message["series_id"]].append((row["received_at"], message["version"]))
    out_of_order = [s for s, rows in arrivals.items() if [v for _t, v in sorted(rows)] != sorted(v for _t, v in rows)]
    summary = (
        f"reliability: submitted={len(messages)} acknowledged={len(acknowledged)} lost={len(lost)} "
        f"duplicates={duplicates} worker_kills={chaos.kills} identified={len(identified)} superseded={len(superseded)} "
        f"receiver_duplicates_absorbed={sandbox_stats.get('duplicates')} backend={'postgresql' if on_postgres else 'sqlite'}"
    )
    print(summary)
    record_property("summary", summary)  # shown at the end of the run by tests/conftest.py
    assert "screenings" in generated
    assert len(messages) >= SCREENINGS
    assert set(FAILURE_MODES) <= chaos.modes_seen
    assert chaos.kills > 0
    assert all(m["status"] == "acknowledged" for m in latest.values())  # every test's latest version arrived
    assert all(m["status"] in {"acknowledged", "superseded"} for m in identified)
    assert len(acknowledged) + len(superseded) == len(messages)
    assert lost == []
    assert duplicates == 0
    assert out_of_order == []
