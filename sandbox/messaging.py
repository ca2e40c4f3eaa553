"""Loopback stand-ins for the outside world's messaging: a real SMTP server (aiosmtpd) and an SMS gateway over HTTP.

The SMS gateway behaves like an operator's API: POST /messages {to, text, reference} -> 202 {"id": ...};
a client reference it has already accepted -> 200 {"id": <the first message's id>, "duplicate": true}, and nothing
is sent again (as operators do with a client reference); a number it cannot deliver to -> 400; it can be told to
fail on purpose (down, http500, http429, reject) through POST /control/mode {"mode": ...}.
GET /messages lists what was received (development only). The SMTP server keeps each message's Message-ID.

    python -m sandbox.messaging --data-dir .sandbox --smtp-port 8025 --sms-port 8026
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import socket
import threading
import time
import uuid
from email import message_from_bytes
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

# The SMTP library logs every recipient: keep addresses out of development logs.
logging.getLogger("mail.log").setLevel(logging.WARNING)

SMS_MODES = ("ok", "down", "http500", "http429", "reject")


class MailStore:
    """Every message the SMTP server accepts, kept in memory and (optionally) as .eml files."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder
        self.messages: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data: bytes = envelope.content
        parsed = message_from_bytes(data, policy=default_policy)
        body = parsed.get_body(preferencelist=("plain",))
        record = {
            "from": envelope.mail_from,
            "to": list(envelope.rcpt_tos),
            "subject": str(parsed["Subject"]),
            "message_id": str(parsed["Message-ID"] or ""),
            "text": body.get_content() if body is not None else "",
            "received_at": time.time(),
        }
        with self.lock:
            self.messages.append(record)
            if self.folder is not None:
                (self.folder / f"{int(time.time() * 1000)}-{uuid.uuid4().hex[:8]}.eml").write_bytes(data)
        return "250 Message accepted for delivery"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]) -> str:
        # Addresses at .invalid never exist (RFC 2606): refuse them permanently, as a real server would.
        if address.lower().endswith(".invalid"):
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class SmtpServer:
    def __init__(self, *, port: int = 0, folder: Path | None = None, host: str = "127.0.0.1") -> None:
        self.store = MailStore(folder)
        # aiosmtpd cannot report an OS-chosen port: pick a free one first.
        self.controller = Controller(self.store, hostname=host, port=port or _free_port(host))

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    @property
    def port(self) -> int:
        return int(self.controller.port)

    def stop(self) -> None:
        self.controller.stop()


class SmsGateway:
    """A faithful loopback SMS operator API: accepts E.164 numbers, can fail on purpose."""

    def __init__(self, *, port: int = 0, folder: Path | None = None, host: str = "127.0.0.1", token: str = "") -> None:
        self.messages: list[dict[str, Any]] = []
        self.by_reference: dict[str, dict[str, Any]] = {}
        self.repeats = 0  # requests answered with an earlier message because their reference was known
        self.mode = "ok"
        self.lock = threading.Lock()
        self.log = folder / "sms.jsonl" if folder is not None else None
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        if self.log is not None and self.log.exists():
            # A restarted gateway still knows the references it accepted, as an operator's would.
            for line in self.log.read_text().splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a kill
                if isinstance(record, dict) and record.get("reference"):
                    self.by_reference[record["reference"]] = record
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _answer(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> Any:
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length) or b"{}")

            def do_GET(self) -> None:
                if self.path == "/messages":
                    with gateway.lock:
                        self._answer(200, {"messages": gateway.messages[-100:], "mode": gateway.mode})
                else:
                    self._answer(404, {"error": "not found"})

            def do_POST(self) -> None:
                if self.path == "/control/mode":
                    mode = self._body().get("mode")
                    if mode not in SMS_MODES:
                        self._answer(400, {"error": f"mode must be one of {', '.join(SMS_MODES)}"})
                        return
                    gateway.mode = mode
                    self._answer(200, {"mode": mode})
                    return
                if self.path != "/messages":
                    self._answer(404, {"error": "not found"})
                    return
                if token and self.headers.get("Authorization") != f"Bearer {token}":
                    self._answer(401, {"error": "bad token"})
                    return
                mode = gateway.mode
                if mode == "down":
                    self.close_connection = True
                    self.connection.close()
                    return
                if mode == "http500":
                    self._answer(500, {"error": "operator unavailable"})
                    return
                if mode == "http429":
                    self._answer(429, {"error": "too many messages"}, {"Retry-After": "2"})
                    return
                try:
                    body = self._body()
                except json.JSONDecodeError:
                    self._answer(400, {"error": "body is not JSON"})
                    return
                to, text, reference = body.get("to", ""), body.get("text", ""), body.get("reference", "")
                if not isinstance(reference, str) or len(reference) > 100:
                    self._answer(400, {"error": "reference must be text of at most 100 characters"})
                    return
                if mode == "reject" or not (isinstance(to, str) and to.startswith("+") and to[1:].isdigit() and 8 <= len(to) <= 16):
                    self._answer(400, {"error": "number not reachable"})
                    return
                if not isinstance(text, str) or not text or len(text) > 1600:
                    self._answer(400, {"error": "text must be 1 to 1600 characters"})
                    return
                record = {"id": uuid.uuid4().hex, "to": to, "text": text, "reference": reference, "received_at": time.time()}
                with gateway.lock:
                    earlier = gateway.by_reference.get(reference) if reference else None
                    if earlier is not None:
                        gateway.repeats += 1
                    else:
                        if reference:
                            gateway.by_reference[reference] = record
                        gateway.messages.append(record)
                        if gateway.log is not None:
                            with gateway.log.open("a") as handle:
                                handle.write(json.dumps(record) + "\n")
                if earlier is not None:
                    self._answer(200, {"id": earlier["id"], "duplicate": True})
                else:
                    self._answer(202, {"id": record["id"]})

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> SmsGateway:
        self.thread.start()
        return self

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/messages"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data-dir", type=Path, default=Path(".sandbox"))
    parser.add_argument("--smtp-port", type=int, default=8025)
    parser.add_argument("--sms-port", type=int, default=8026)
    args = parser.parse_args()
    smtp = SmtpServer(port=args.smtp_port, folder=args.data_dir / "mail").start()
    sms = SmsGateway(port=args.sms_port, folder=args.data_dir).start()
    print(f"messaging sandbox: SMTP on 127.0.0.1:{smtp.port}, SMS gateway on {sms.url}", flush=True)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    stopping.wait()
    smtp.stop()
    sms.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
