"""Run the real pieces as processes for integration tests: sandbox, Relais commands, workers."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable


@dataclass
class Sandbox:
    process: subprocess.Popen[str]
    ports: dict[str, int]
    certs: Path

    def control(self, path: str, payload: dict[str, Any] | None = None) -> Any:
        url = f"http://127.0.0.1:{self.ports['control']}{path}"
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"}, method="POST" if data else "GET")
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback)
            return json.loads(response.read() or b"null")

    def mode(self, mode: str, **options: Any) -> None:
        """Switch mode; the answer may be lost while listeners close, so check what took effect."""
        for _ in range(5):
            try:
                self.control("/control/mode", {"mode": mode, **options})
                return
            except OSError:
                time.sleep(0.2)
                try:
                    if self.control("/control/mode").get("mode") == mode:
                        return
                except OSError:
                    continue
        raise RuntimeError(f"the sandbox did not switch to {mode}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()


def start_sandbox(tmp: Path, *extra: str) -> Sandbox:
    """The sandbox on free ports; ``extra``: more command-line options (``--log-level WARNING``...)."""
    certs = tmp / "certs"
    subprocess.run([PY, "-m", "sandbox.devcerts", str(certs)], cwd=ROOT, check=True, capture_output=True)
    process = subprocess.Popen(
        [
            PY,
            "-m",
            "sandbox",
            "--data-dir",
            str(tmp / "sandbox"),
            "--certs",
            str(certs),
            "--mllp-port",
            "0",
            "--https-port",
            "0",
            "--control-port",
            "0",
            *extra,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    ports: dict[str, int] = {}
    assert process.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("sandbox exited during start-up")
        found = re.match(r"sandbox: (\w+) on [\d.]+:(\d+)", line)
        if found:
            ports[found.group(1)] = int(found.group(2))
        if line.startswith("sandbox: ready"):
            break
    # Drain its output so a full pipe never blocks it.
    subprocess.Popen(["cat"], stdin=process.stdout, stdout=subprocess.DEVNULL)
    return Sandbox(process, ports, certs)


@dataclass
class Relais:
    env: dict[str, str]
    workers: list[subprocess.Popen[str]] = field(default_factory=list)

    def manage(self, *args: str, timeout: float = 600) -> str:
        result = subprocess.run([PY, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr[-3000:]}")
        return result.stdout

    def start_worker(self, *extra: str) -> subprocess.Popen[str]:
        worker = subprocess.Popen(
            [PY, "manage.py", "transfer_worker", "--poll", "0.2", *extra],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.workers.append(worker)
        return worker

    def stats(self, *, messages: bool = False) -> dict[str, Any]:
        return json.loads(self.manage("transfer_stats", *(["--messages"] if messages else [])).strip().splitlines()[-1])

    def stop_workers(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()


def relais_env(tmp: Path, sandbox: Sandbox, *, destination: str, database_url: str = "", **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAIS_", "DJANGO_", "DATABASE_URL"))}
    env.update(
        {
            "RELAIS_ENV": "development",
            "RELAIS_VAR_DIR": str(tmp / "var"),
            "RELAIS_SANDBOX_MLLP_PORT": str(sandbox.ports.get("mllp", 0)),
            "RELAIS_SANDBOX_HTTPS_PORT": str(sandbox.ports.get("https", 0)),
            "RELAIS_TRANSFER_CERTS": str(sandbox.certs),
            "RELAIS_TRANSFER_DESTINATION": destination,
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    if database_url:
        env["DATABASE_URL"] = database_url
    env.update(extra)
    subprocess.run([PY, "-m", "relais.core.devsecrets", str(tmp / "var" / "secrets")], cwd=ROOT, env=env, check=True, capture_output=True)
    return env


def settle(outcomes: dict[Any, Any]) -> dict[Any, Any]:
    """Record delivery outcomes as the worker does (outbox_record under a lease), so the next version of a test sees
    what the destination accepted. Returns ``outcomes``."""
    from relais.transfer.models import OutboxMessage
    from relais.transfer.services import outbox_record

    OutboxMessage.objects.filter(pk__in=[m.pk for m in outcomes]).update(lease_owner="test-settle")
    outbox_record(owner="test-settle", outcomes=outcomes)
    return outcomes
