"""Every worker, as a real process: SIGTERM finishes the row in hand and gives back the rest (exit 0, at once);
SIGKILL leaves leases that run out, and a second worker resumes and completes everything, nothing done twice."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from sandbox.messaging import SmsGateway, SmtpServer
from tests.transfer.live import PY, ROOT, Relais, relais_env, start_sandbox

ROWS = {"transfer": 4, "notify": 3, "webhooks": 4, "csv": 250}  # csv: rows of one file, recorded 100 at a time
DONE = {"transfer": "acknowledged", "notify": "sent", "webhooks": "delivered", "csv": "done"}


class Receiver(ThreadingHTTPServer):
    """A webhook receiver that counts the event ids it is sent."""

    def __init__(self) -> None:
        events: list[str] = []
        self.events = events

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                events.append(self.headers.get("Relais-Event-Id", ""))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


@pytest.fixture
def world(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[SimpleNamespace]:
    queue = request.param
    smtp, sms, receiver = SmtpServer(port=0).start(), SmsGateway(port=0).start(), Receiver()
    sandbox = start_sandbox(tmp_path) if queue == "transfer" else SimpleNamespace(ports={}, certs=tmp_path, stop=lambda: None)
    try:
        env = relais_env(
            tmp_path,
            sandbox,  # type: ignore[arg-type]
            destination="sandbox-mllp-hl7v2",
            RELAIS_TRANSFER_CONCURRENCY="1",
            RELAIS_SMTP_PORT=str(smtp.port),
            RELAIS_SMS_GATEWAY_URL=sms.url,
            TEST_WEBHOOK_URL=f"http://127.0.0.1:{receiver.server_address[1]}/hook",
        )
        relais = Relais(env)
        relais.manage("migrate", "--no-input")

        def harness(*args: str) -> str:
            return _harness(env, *args)

        harness("seed", queue, str(ROWS[queue]))
        yield SimpleNamespace(queue=queue, env=env, harness=harness, sandbox=sandbox, smtp=smtp, sms=sms, receiver=receiver, tmp=tmp_path)
    finally:
        sandbox.stop()
        smtp.stop()
        sms.stop()
        receiver.shutdown()


def _harness(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([PY, "-m", "tests.core.worker_harness", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"harness {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def _state(world: SimpleNamespace) -> dict[str, Any]:
    return json.loads(world.harness("state", world.queue).strip().splitlines()[-1])  # type: ignore[no-any-return]


def _wait(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the worker never took a row in hand"
        time.sleep(0.05)


def _start_slow_worker(world: SimpleNamespace) -> subprocess.Popen[str]:
    marker = world.tmp / "in-hand"
    if world.queue == "transfer":
        world.sandbox.mode("slow", slow_seconds=2)
    worker = subprocess.Popen(
        [PY, "-m", "tests.core.worker_harness", "run", world.queue, str(marker)],
        cwd=ROOT,
        env=world.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    if world.queue == "transfer":
        _wait(lambda: world.sandbox.control("/control/stats")["accepted"] > 0)  # the first message is stored, its answer 2 s away
    else:
        _wait(marker.exists)
    return worker


def _nothing_doubled(world: SimpleNamespace) -> None:
    if world.queue == "transfer":
        stats = world.sandbox.control("/control/stats")
        assert stats["accepted"] == ROWS["transfer"], stats
    elif world.queue == "notify":
        references = [m["reference"] for m in world.sms.messages]
        assert len(references) == len(set(references)) == ROWS["notify"]
        message_ids = [m["message_id"] for m in world.smtp.store.messages]
        assert len(message_ids) == len(set(message_ids)) == ROWS["notify"]
    elif world.queue == "webhooks":
        assert len(world.receiver.events) == len(set(world.receiver.events)) == ROWS["webhooks"]


WORKERS = ["transfer", "notify", "webhooks", "csv"]


@pytest.mark.parametrize("world", WORKERS, indirect=True)
def test_sigterm_finishes_the_row_in_hand_and_gives_back_the_rest(world: SimpleNamespace) -> None:
    worker = _start_slow_worker(world)
    worker.send_signal(signal.SIGTERM)
    started = time.monotonic()
    assert worker.wait(timeout=30) == 0
    assert time.monotonic() - started < 10
    state = _state(world)
    assert state["leased"] == 0, state  # nothing kept: the rest is given back at once, not after a lease
    if world.queue == "csv":
        assert state["status"] == {"processing": 1}, state  # the chunk in hand was recorded, the file handed back
    else:
        done = state["status"].get(DONE[world.queue], 0)
        assert 1 <= done < state["rows"], state  # the row in hand finished, the others untouched
    if world.queue == "transfer":
        world.sandbox.mode("normal")
    world.harness("run", world.queue, "-", "--once")  # released rows are taken at once
    assert _state(world)["status"] == {DONE[world.queue]: _state(world)["rows"]}
    _nothing_doubled(world)


@pytest.mark.parametrize("world", WORKERS, indirect=True)
def test_sigkill_leases_run_out_and_another_worker_resumes(world: SimpleNamespace) -> None:
    worker = _start_slow_worker(world)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)
    assert _state(world)["leased"] >= 1  # the dead worker's leases stay until they run out
    world.harness("run", world.queue, "-", "--once")
    assert _state(world)["leased"] >= 1, "a live lease must not be taken over"
    world.harness("expire", world.queue)
    if world.queue == "transfer":
        world.sandbox.mode("normal")
    world.harness("run", world.queue, "-", "--once")
    state = _state(world)
    assert state["status"] == {DONE[world.queue]: state["rows"]} and state["leased"] == 0, state
    _nothing_doubled(world)


@pytest.mark.parametrize("world", ["transfer"], indirect=True)
def test_run_workers_runs_every_queue_in_one_process_and_sigterm_stops_them_all(world: SimpleNamespace) -> None:
    worker = subprocess.Popen(
        [PY, "manage.py", "run_workers", "--poll", "0.2"],
        cwd=ROOT,
        env=world.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        _wait(lambda: _state(world)["status"] == {"acknowledged": ROWS["transfer"]} and len(world.sms.messages) == ROWS["transfer"])
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=15)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0
    for name in ("transfer", "notify", "webhooks", "csv"):
        assert f"{name} worker " in output, output
    assert f"{ROWS['transfer']} acknowledged" in output


def test_run_workers_refuses_an_unknown_queue(tmp_path: Path) -> None:
    env = relais_env(tmp_path, SimpleNamespace(ports={}, certs=tmp_path), destination="sandbox-mllp-hl7v2")  # type: ignore[arg-type]
    result = subprocess.run(
        [PY, "manage.py", "run_workers", "--only", "fax"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0 and "unknown queue fax" in result.stderr
