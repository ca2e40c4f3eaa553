"""Single-result POST /api/v1/screenings under an open-loop load: latency percentiles and failures at fixed rates.

Usage: .venv/bin/python bench/single_post.py [--rates 100,200] [--seconds 20] [--workers 2] [--worker-class sync]
       [--gunicorn-args "..."] [--timeout 5]
From bench/run.py: ``from bench.single_post import run; figures = run(rates=(100, 200), seconds=20)``; the dict holds, per
rate R, ``p50_ms_at_R``, ``p90_ms_at_R``, ``p99_ms_at_R``, ``max_ms_at_R``, ``failed_at_R``, ``sent_at_R``,
``cpu_ms_per_request_at_R`` (server CPU: gunicorn master and workers, user + system, from the first request until the
server is idle again, over the requests sent: a request the client gave up on is still served).

Setup as bench/intake_throughput.py: a fresh SQLite database in a temporary folder (development settings), migrated, the
demo pharmacy seeded, an API client registered with a new EC key and one bearer token; gunicorn started on a free
loopback port the way scripts/run-dev starts it (``--workers 2``, sync workers, access log off here) unless told otherwise.
Each request records one new patient's test (distinct name, e-mail and mobile, so every effect is written: certificate,
outbox row, result link, two messages, audit events).

Open loop: request i is due at start + i / rate whatever happened to the earlier ones (no coordinated omission); its
latency runs from that due time to the last byte of the answer, so time spent waiting for a free connection counts. One
asyncio loop writes raw HTTP/1.1 on keep-alive connections, opening another when all are busy (a sync gunicorn worker
closes after each answer, so then each request opens its own). A request fails on a connection error, an answer other than
201, or no complete answer within ``--timeout`` seconds of its due time; in the percentiles a failure counts as slower than
any answer (so p99 is infinite when more than 1 % fail). A 2-second warm-up at 20 requests/s runs first and is not counted.
The last line is machine-readable: ``single: p99_ms_at_100=… failed_at_200=… p50_ms_at_100=…``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shlex
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

ROOT = Path(__file__).resolve().parents[1]
PY = str(ROOT / ".venv" / "bin" / "python")
GUNICORN = str(ROOT / ".venv" / "bin" / "gunicorn")
FINESS = "750000010"  # the demo pharmacy
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def name_for(n: int) -> str:
    """Distinct letter-only names (blind indexes ignore digits): SINGLE + 5 letters."""
    out = ""
    for _ in range(5):
        out += LETTERS[n % 26]
        n //= 26
    return "SINGLE" + out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get_json(url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(url, data=data, headers=headers or {})  # loopback only
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


@dataclass
class Server:
    """A migrated Relais in ``folder`` with the demo pharmacy, one API client and a gunicorn serving it on loopback."""

    folder: Path
    env: dict[str, str] = field(default_factory=dict)
    client_id: str = ""
    key: Any = None
    process: subprocess.Popen[bytes] | None = None
    port: int = 0

    def manage(self, *args: str) -> str:
        result = subprocess.run([PY, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise SystemExit(f"manage.py {' '.join(args)} failed:\n{result.stderr[-2000:]}")
        return result.stdout

    def setup(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAIS_", "DJANGO_", "DATABASE_URL"))}
        env.update({"RELAIS_ENV": "development", "RELAIS_VAR_DIR": str(self.folder / "var"), "PYTHONDONTWRITEBYTECODE": "1"})
        env["RELAIS_LOG_LEVEL"] = os.environ.get("RELAIS_LOG_LEVEL", "INFO")
        self.env = env
        subprocess.run([PY, "-m", "relais.core.devsecrets", str(self.folder / "var" / "secrets")], cwd=ROOT, env=env, check=True)
        self.manage("migrate", "--no-input", "-v", "0")
        self.manage("seed_demo")
        self.key = ec.generate_private_key(ec.SECP256R1())
        public = self.folder / "client.pub.pem"
        public.write_bytes(self.key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        self.client_id = self.manage("apiclient_create", "--pharmacy", FINESS, "--public-key", str(public), "--name", "bench").split()[-1]

    def start(self, gunicorn_args: list[str]) -> None:
        self.port = _free_port()
        command = [GUNICORN, "relais.wsgi:application", "--bind", f"127.0.0.1:{self.port}", *gunicorn_args]
        self.process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(300):
            try:
                _get_json(f"http://127.0.0.1:{self.port}/healthz")
                return
            except OSError:
                time.sleep(0.2)
        raise SystemExit("gunicorn did not answer /healthz within 60 s")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait()
            self.process = None

    def cpu_seconds(self) -> float:
        """User + system CPU of gunicorn's master and its workers so far (Linux /proc)."""
        assert self.process is not None
        pids = [self.process.pid]
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        if children.exists():
            pids += [int(p) for p in children.read_text().split()]
        ticks = 0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / CLOCK_TICKS

    def wait_idle(self, limit: float = 120) -> None:
        """Return once gunicorn used under 5 % of a core for half a second (or after ``limit`` seconds)."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            before = self.cpu_seconds()
            time.sleep(0.5)
            if self.cpu_seconds() - before < 0.025:
                return

    def token(self) -> str:
        now = int(time.time())
        base = f"http://127.0.0.1:{self.port}"
        claims = {"iss": self.client_id, "sub": self.client_id, "aud": f"{base}/api/v1/token", "iat": now, "exp": now + 120}
        claims["jti"] = uuid.uuid4().hex
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": jwt.encode(claims, self.key, algorithm="ES256"),
        }
        body = "&".join(f"{k}={v}" for k, v in form.items()).encode()
        answer = _get_json(f"{base}/api/v1/token", data=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
        return str(answer["access_token"])


def request_bytes(n: int, *, port: int, token: str, sampled: datetime) -> bytes:
    """The whole HTTP request recording a test of new patient ``n`` (one in ten positive)."""
    body = json.dumps(
        {
            "patient": {
                "last_name": name_for(n),
                "first_names": "Camille",
                "sex": "F",
                "date_of_birth": "1985-03-12",
                "postcode": "75011",
                "email": f"single{n}@example.org",
                "phone": f"+336{n % 100_000_000:08d}",
            },
            "device_id": "1232",
            "sampled_at": sampled.isoformat(),
            "results": {"sars-cov-2": "260415000" if n % 10 else "260373001"},
            "information_notice_given": True,
        }
    ).encode()
    head = (
        f"POST /api/v1/screenings HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class Connections:
    """Idle keep-alive connections to the server; a request takes one or opens a new one."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def take(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while self.idle:
            reader, writer = self.idle.pop()
            if not reader.at_eof() and not writer.is_closing():
                return reader, writer
            writer.close()
        return await asyncio.open_connection("127.0.0.1", self.port)

    def give_back(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], keep: bool) -> None:
        if keep:
            self.idle.append(conn)
        else:
            conn[1].close()

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


async def _exchange(conns: Connections, raw: bytes) -> int:
    """Send one request, read the whole answer; its status code."""
    conn = await conns.take()
    reader, writer = conn
    keep = False
    try:
        writer.write(raw)
        await writer.drain()
        status_line = await reader.readline()
        if not status_line:
            raise ConnectionError("closed before answering")
        status = int(status_line.split()[1])
        length = 0
        close = False
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and value.strip().lower() == "close":
                close = True
        await reader.readexactly(length)
        keep = not close
        return status
    finally:
        conns.give_back(conn, keep)


async def _open_loop(port: int, requests: list[bytes], rate: float, timeout: float) -> tuple[list[float], int, dict[str, int]]:
    """Send ``requests`` at ``rate`` per second on schedule; latencies (s, infinite for a failure), failures, failure kinds."""
    loop = asyncio.get_running_loop()
    conns = Connections(port)
    latencies: list[float] = []
    kinds: dict[str, int] = {}

    async def one(raw: bytes, due: float) -> None:
        try:
            status = await asyncio.wait_for(_exchange(conns, raw), timeout - (loop.time() - due))
        except TimeoutError:
            status, kind = 0, "timeout"
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError) as exc:
            status, kind = 0, type(exc).__name__
        else:
            kind = f"http_{status}"
        if status == 201:
            latencies.append(loop.time() - due)
        else:
            kinds[kind] = kinds.get(kind, 0) + 1
            latencies.append(float("inf"))  # a failure counts as slower than any answer in the percentiles

    start = loop.time() + 0.05
    tasks = []
    for i, raw in enumerate(requests):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(raw, due)))
    await asyncio.gather(*tasks)
    conns.close()
    return latencies, sum(kinds.values()), kinds


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))  # nearest rank
    return sorted_values[index]


def run(
    *,
    rates: tuple[float, ...] = (100, 200),
    seconds: float = 20,
    gunicorn_args: list[str] | None = None,
    timeout: float = 5.0,
    verbose: bool = True,
) -> dict[str, Any]:
    """Fresh database and server, then each rate for ``seconds``; the figures as a dict (see the module docstring)."""
    args = gunicorn_args if gunicorn_args is not None else ["--workers", "2"]
    figures: dict[str, Any] = {"gunicorn_args": " ".join(args), "seconds": seconds, "timeout_s": timeout}
    with tempfile.TemporaryDirectory() as folder:
        server = Server(Path(folder))
        server.setup()
        server.start(args)
        try:
            token = server.token()
            sampled = datetime.now(UTC) - timedelta(hours=1)
            offset = 0
            warmup = [request_bytes(offset + i, port=server.port, token=token, sampled=sampled) for i in range(40)]
            offset += len(warmup)
            asyncio.run(_open_loop(server.port, warmup, 20, timeout))
            for rate in rates:
                count = int(rate * seconds)
                requests = [request_bytes(offset + i, port=server.port, token=token, sampled=sampled) for i in range(count)]
                offset += count
                server.wait_idle()  # requests a client gave up on are still served: let them drain first
                cpu_before = server.cpu_seconds()
                latencies, failed, kinds = asyncio.run(_open_loop(server.port, requests, rate, timeout))
                server.wait_idle()  # a request answered late or given up on still costs the server its CPU
                cpu = server.cpu_seconds() - cpu_before
                ordered = sorted(latencies)
                r = f"{rate:g}"
                figures.update(
                    {
                        f"sent_at_{r}": count,
                        f"failed_at_{r}": failed,
                        f"failures_at_{r}": kinds,
                        f"p50_ms_at_{r}": round(_percentile(ordered, 0.50) * 1000, 1),
                        f"p90_ms_at_{r}": round(_percentile(ordered, 0.90) * 1000, 1),
                        f"p99_ms_at_{r}": round(_percentile(ordered, 0.99) * 1000, 1),
                        f"max_ms_at_{r}": round((ordered[-1] if ordered else float("nan")) * 1000, 1),
                        f"cpu_ms_per_request_at_{r}": round(cpu * 1000 / count, 1),
                    }
                )
                if verbose:
                    print(
                        f"  {r} req/s for {seconds:g} s ({count} requests): p50 {figures[f'p50_ms_at_{r}']} ms, "
                        f"p90 {figures[f'p90_ms_at_{r}']} ms, p99 {figures[f'p99_ms_at_{r}']} ms, max {figures[f'max_ms_at_{r}']} ms, "
                        f"failed {failed} {kinds or ''}, server CPU {figures[f'cpu_ms_per_request_at_{r}']} ms/request",
                        flush=True,
                    )
        finally:
            server.stop()
    if verbose:
        print(summary_line(figures), flush=True)
    return figures


def summary_line(figures: dict[str, Any]) -> str:
    return (
        f"single: p99_ms_at_100={figures.get('p99_ms_at_100')} failed_at_200={figures.get('failed_at_200')} "
        f"p50_ms_at_100={figures.get('p50_ms_at_100')}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="100,200", help="requests per second, comma-separated")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--gunicorn-args", default="--workers 2", help="what scripts/run-dev passes, by default")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds after its due time a request counts as failed")
    options = parser.parse_args()
    rates = tuple(float(r) for r in options.rates.split(","))
    print(f"single POST, gunicorn {options.gunicorn_args}, open loop, {options.seconds:g} s per rate", flush=True)
    run(rates=rates, seconds=options.seconds, gunicorn_args=shlex.split(options.gunicorn_args), timeout=options.timeout)


if __name__ == "__main__":
    main()
