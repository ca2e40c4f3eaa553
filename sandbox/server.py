"""Listeners (MLLP, HTTPS with mutual TLS, optional plain HTTP, control API) and the command line.

One thread per connection (socketserver.ThreadingMixIn). The store is shared behind a lock and
the mode behind another. In ``down`` mode the MLLP/HTTPS/HTTP listening sockets are closed (new
connections are refused) and open connections are shut down; they are re-opened on the same ports
when the mode changes again.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import signal
import socket
import socketserver
import ssl
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sandbox import devcerts, elr, hl7
from sandbox.fhir import operation_outcome
from sandbox.modes import ACK_MODES, DEFAULT_ACK_MODE, InvalidMode, Mode, ModeSwitch, parse_mode
from sandbox.service import MAX_BODY, Platform, Sampler
from sandbox.store import Store

log = logging.getLogger("sandbox")

HL7_CONTENT_TYPES = ("x-application/hl7-v2+er7", "application/hl7-v2+er7", "application/hl7-v2", "text/plain")
FHIR_CONTENT_TYPES = ("application/fhir+json", "application/json")
HL7_REPLY_TYPE = "x-application/hl7-v2+er7; charset=utf-8"
FHIR_REPLY_TYPE = "application/fhir+json; charset=utf-8"
GARBLED_FHIR = b'{"resourceType": "Bund'
TLS_HANDSHAKE_TIMEOUT = 10
IDLE_TIMEOUT = 300  # idle HTTP keep-alive connections are closed after this many seconds


class Sandbox:
    """Shared state of the running process."""

    def __init__(self, store: Store, sampler: Sampler | None = None, ack_mode: str = DEFAULT_ACK_MODE) -> None:
        self.store = store
        self.platform = Platform(store, sampler)
        self.stopping = threading.Event()
        self.switch = ModeSwitch(self._mode_changed, Mode(ack_mode=ack_mode))
        self.listeners: list[Listener] = []  # the ones that ``down`` closes; the control listener is not among them
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    # connections, so that ``down`` can cut the open ones
    def track(self, sock: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(sock)

    def untrack(self, sock: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(sock)

    def cut_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for sock in connections:
            try:
                socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the raw socket, even under TLS
            except OSError:
                pass

    def _mode_changed(self, old: Mode, new: Mode) -> None:
        if new.mode == "down" and old.mode != "down":
            for listener in self.listeners:
                listener.stop()
            self.cut_connections()
            log.info("down: listeners closed, connections to %s refused", ", ".join(f"{lst.name} :{lst.port}" for lst in self.listeners))
        elif old.mode == "down" and new.mode != "down":
            for listener in self.listeners:
                try:
                    listener.start()
                except OSError as exc:
                    log.error("cannot re-open %s on port %s: %s", listener.name, listener.port, exc)
            log.info("up again: listeners re-opened")


class _Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    request_queue_size = 64

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[socketserver.BaseRequestHandler],
        sandbox: Sandbox,
        transport: str,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.sandbox = sandbox
        self.transport = transport
        self.tls = tls
        super().__init__(address, handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        sock: socket.socket = request
        # Replies are written whole, at once: without Nagle's delay a request/answer round trip on loopback takes
        # microseconds instead of waiting ~40 ms for the client's delayed ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is not None:
            sock.settimeout(TLS_HANDSHAKE_TIMEOUT)
            try:
                sock = self.tls.wrap_socket(sock, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                log.warning("%s: TLS handshake with %s:%s refused: %s", self.transport, client_address[0], client_address[1], exc)
                return
            log.info("%s: TLS client %s:%s CN=%s", self.transport, client_address[0], client_address[1], _common_name(sock))
        sock.settimeout(None if self.transport == "mllp" else IDLE_TIMEOUT)  # MLLP connections stay open until the client closes them
        tracked = self.transport != "control"  # ``down`` cuts the API connections, never the control ones
        if tracked:
            self.sandbox.track(sock)
        try:
            self.RequestHandlerClass(sock, client_address, self)  # type: ignore[arg-type]
        finally:
            if tracked:
                self.sandbox.untrack(sock)
            if sock is not request:
                _close(sock)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("%s: error while serving %s", self.transport, client_address)


def _common_name(sock: ssl.SSLSocket) -> str:
    subject: Any = (sock.getpeercert() or {}).get("subject", ())
    for rdn in subject:
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return "?"


def _close(sock: socket.socket) -> None:
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class Listener:
    """One listening socket that can be closed and re-opened on the same port."""

    def __init__(self, name: str, host: str, port: int, factory: Callable[[tuple[str, int]], _Server]) -> None:
        self.name = name
        self.host = host
        self.port = port
        self._factory = factory
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        server = self._factory((self.host, self.port))
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name=f"{self.name}-listener", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()


# -- MLLP --------------------------------------------------------------------------------------------


class MllpHandler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        sock: socket.socket = self.request
        buffer = bytearray()
        while True:
            try:
                data = sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            buffer += data
            while True:
                start = buffer.find(hl7.MLLP_START)
                if start < 0:
                    buffer.clear()  # bytes outside a frame are ignored
                    break
                end = buffer.find(hl7.MLLP_END, start + 1)
                if end < 0:
                    del buffer[:start]
                    if len(buffer) > MAX_BODY + 3:
                        problem = hl7.Problem("MLLP frame larger than 5 MB", "", hl7.APPLICATION_INTERNAL_ERROR)
                        self._send(hl7.frame(hl7.ack(hl7.Header(), "AE", problem.reason, problem).encode()))
                        return
                    break
                payload = bytes(buffer[start + 1 : end])
                del buffer[: end + len(hl7.MLLP_END)]
                if not self._process(payload):
                    return

    def _send(self, data: bytes) -> bool:
        try:
            self.request.sendall(data)
        except OSError:
            return False
        return True

    def _process(self, payload: bytes) -> bool:
        """Answer one frame; False closes the connection."""
        sandbox = self.server.sandbox
        mode = sandbox.switch.get()
        peer = f"{self.client_address[0]}:{self.client_address[1]}"
        if mode.mode in ("down", "http500", "http429"):
            log.info("mllp %s: %s mode, connection closed without an answer, nothing stored", peer, mode.mode)
            return False
        reply = sandbox.platform.receive_hl7(payload, "mllp", mode)
        if mode.mode == "slow":
            log.info("mllp %s: slow mode, answering in %ss", peer, mode.slow_seconds)
            if sandbox.stopping.wait(mode.slow_seconds):
                return False
        if mode.mode == "ack_lost":
            log.info("mllp %s: ack_lost mode, stored, connection closed without an answer", peer)
            return False
        if mode.mode == "ack_malformed":
            log.info("mllp %s: ack_malformed mode, stored, answering garbage", peer)
            return self._send(hl7.frame(b"MSH|garbled"))
        if not reply:  # enhanced acknowledgement: the message asked for no acknowledgement of this outcome
            log.info("mllp %s: no acknowledgement asked (MSH-15/MSH-16), none sent", peer)
            return True
        return self._send(hl7.frame(reply.encode(hl7.charset_of(payload))))


# -- HTTP(S) API ---------------------------------------------------------------------------------


class _JsonHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "SIDEP-sandbox/1"
    sys_version = ""
    server: _Server
    _headers_buffer: list[bytes]  # BaseHTTPRequestHandler's own, written at once by flush_headers()

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s: %s", self.server.transport, self.address_string(), format % args)

    def reply(self, status: int, body: bytes | str, content_type: str, headers: dict[str, str] | None = None, close: bool = False) -> None:
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.send_response(status)
        if status != 204:  # 204 No Content has neither (RFC 9110 8.6, 15.3.5)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        # Headers and body in one write (one TLS record, one segment): written apart, the body waited for the
        # client's delayed ACK of the headers (Nagle), ~40 ms a round trip.
        self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD":
            self._headers_buffer.append(data)
        self.flush_headers()

    def reply_json(self, status: int, payload: object) -> None:
        self.reply(status, json.dumps(payload, ensure_ascii=False, indent=1) + "\n", "application/json; charset=utf-8")

    def read_body(self, error: Callable[[int, str], None]) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            error(411, "chunked bodies are not supported: send a Content-Length")
            self.close_connection = True
            return None
        length_header = self.headers.get("Content-Length")
        try:
            length = int(length_header) if length_header is not None else -1
        except ValueError:
            length = -1
        if length < 0:
            error(411, "a Content-Length is required")
            self.close_connection = True
            return None
        if length > MAX_BODY:
            error(413, f"the body is {length} bytes, the limit is {MAX_BODY} (5 MB)")
            self.close_connection = True
            return None
        return self.rfile.read(length)


class ApiHandler(_JsonHandler):
    """POST /hl7v2 and POST /fhir, over HTTPS (mutual TLS) or plain HTTP."""

    def _error(self, status: int, message: str) -> None:
        if urlsplit(self.path).path == "/fhir":
            self.reply(status, operation_outcome(message, code="processing"), FHIR_REPLY_TYPE)
        else:
            self.reply(status, message + "\n", "text/plain; charset=utf-8")

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path in ("/hl7v2", "/fhir"):
            self.reply(405, "use POST\n", "text/plain; charset=utf-8", {"Allow": "POST"})
        else:
            self.reply(404, "not found: the API is POST /hl7v2 and POST /fhir\n", "text/plain; charset=utf-8")

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        if path not in ("/hl7v2", "/fhir"):
            self.reply(404, "not found: the API is POST /hl7v2 and POST /fhir\n", "text/plain; charset=utf-8", close=True)
            return
        body = self.read_body(self._error)
        if body is None:
            return
        sandbox = self.server.sandbox
        mode = sandbox.switch.get()
        transport = self.server.transport
        if mode.mode == "down":  # a request on a connection opened before the switch
            self._drop()
            return
        if mode.mode == "http500":
            log.info("%s %s: http500 mode, answering 500, nothing stored", transport, path)
            self.reply(500, "sandbox: http500 mode\n", "text/plain; charset=utf-8")
            return
        if mode.mode == "http429":
            log.info("%s %s: http429 mode, answering 429 (Retry-After %s), nothing stored", transport, path, mode.retry_after)
            self.reply(429, "sandbox: http429 mode\n", "text/plain; charset=utf-8", {"Retry-After": str(mode.retry_after)})
            return
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        accepted = HL7_CONTENT_TYPES if path == "/hl7v2" else FHIR_CONTENT_TYPES
        if content_type not in accepted:
            self._error(415, f"Content-Type must be one of {', '.join(accepted)}; got {content_type or 'none'!r}")
            return
        if path == "/hl7v2":
            ack = sandbox.platform.receive_hl7(body, transport, mode)
            status, reply, reply_type = 200, ack.encode(hl7.charset_of(body)), HL7_REPLY_TYPE
            garbage = b"MSH|garbled"
        else:
            fhir_reply = sandbox.platform.receive_fhir(body, transport, mode)
            status, reply, reply_type = fhir_reply.status, fhir_reply.body.encode("utf-8"), FHIR_REPLY_TYPE
            garbage = GARBLED_FHIR
        if mode.mode == "slow":
            log.info("%s %s: slow mode, answering in %ss", transport, path, mode.slow_seconds)
            if sandbox.stopping.wait(mode.slow_seconds):
                self._drop()
                return
        if mode.mode == "ack_lost":
            log.info("%s %s: ack_lost mode, stored, connection closed without a response", transport, path)
            self._drop()
            return
        if mode.mode == "ack_malformed":
            log.info("%s %s: ack_malformed mode, stored, answering garbage", transport, path)
            self.reply(200, garbage, reply_type)
            return
        if path == "/hl7v2" and not reply:  # enhanced acknowledgement: no acknowledgement asked for this outcome
            log.info("%s %s: no acknowledgement asked (MSH-15/MSH-16), answering 204", transport, path)
            self.reply(204, b"", reply_type)
            return
        self.reply(status, reply, reply_type)

    def _drop(self) -> None:
        """Close the connection without sending anything."""
        self.close_connection = True
        try:
            socket.socket.shutdown(self.connection, socket.SHUT_RDWR)
        except OSError:
            pass


# -- control API ---------------------------------------------------------------------------------


class ControlHandler(_JsonHandler):
    def do_GET(self) -> None:
        url = urlsplit(self.path)
        sandbox = self.server.sandbox
        query = parse_qs(url.query)
        if url.path == "/control/mode":
            self.reply_json(200, sandbox.switch.get().as_dict())
        elif url.path == "/control/stats":
            stats = sandbox.store.stats()
            stats["mode"] = sandbox.switch.get().mode
            stats["validation"] = sandbox.platform.sampler.stats()
            usage = resource.getrusage(resource.RUSAGE_SELF)
            stats["cpu_seconds"] = round(usage.ru_utime + usage.ru_stime, 6)  # benchmarks: the sandbox's own CPU
            self.reply_json(200, stats)
        elif url.path == "/control/messages":
            with_body = query.get("with_body", ["0"])[0].lower() in ("1", "true", "yes")
            message_id = query.get("message_id", [None])[0]
            self.reply_json(200, sandbox.store.messages(with_body=with_body, message_id=message_id))
        elif url.path == "/control/records":
            # one current record per test (HL7: the filler order number; FHIR: the test's stable identifier)
            self.reply_json(200, sandbox.store.records(format=query.get("format", [None])[0]))
        elif url.path == "/control/history":
            test_key = query.get("test_key", [""])[0]
            if not test_key:
                self.reply_json(400, {"error": "test_key is required"})
                return
            with_body = query.get("with_body", ["0"])[0].lower() in ("1", "true", "yes")
            versions = sandbox.store.history(test_key, format=query.get("format", [None])[0])
            self.reply_json(200, [version.as_dict(with_body=with_body) for version in versions])
        elif url.path == "/control/rules":  # the ELR rules every HL7 v2 message and batch envelope must follow
            self.reply_json(200, elr.rules_as_dicts())
        elif url.path == "/control/fhir-resources":  # FHIR conditional updates: current resources, or one's versions
            kind, key = query.get("type", [""])[0], query.get("identifier", [""])[0]
            resources = sandbox.platform.resources
            self.reply_json(200, resources.history(kind, key) if kind and key else resources.summary())
        else:
            self.reply_json(404, {"error": "not found", "endpoints": ENDPOINTS})

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        sandbox = self.server.sandbox
        body = self.read_body(lambda status, message: self.reply_json(status, {"error": message}))
        if body is None:
            return
        if url.path == "/control/mode":
            try:
                mode = parse_mode(json.loads(body.decode("utf-8") or "null"), sandbox.switch.get())
            except (ValueError, InvalidMode) as exc:
                self.reply_json(400, {"error": str(exc)})
                return
            old = sandbox.switch.set(mode)
            self.reply_json(200, {"previous": old.mode, **mode.as_dict()})
        elif url.path == "/control/reset":
            sandbox.store.reset()
            sandbox.platform.sampler.reset()
            log.info("store reset: every message and counter deleted")
            self.reply_json(200, {"reset": True, **sandbox.store.stats()})
        else:
            self.reply_json(404, {"error": "not found", "endpoints": ENDPOINTS})


ENDPOINTS = [
    "GET /control/mode",
    "POST /control/mode",
    "GET /control/stats",
    "GET /control/messages[?with_body=1]",
    "GET /control/records[?format=hl7v2|fhir]",
    "GET /control/history?test_key=K[&format=hl7v2|fhir][&with_body=1]",
    "GET /control/fhir-resources[?type=T&identifier=system|value]",
    "GET /control/rules",
    "POST /control/reset",
]


# -- command line --------------------------------------------------------------------------------


def tls_context(certs: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certs / "server.pem", certs / "server-key.pem")
    context.load_verify_locations(cafile=str(certs / "ca.pem"))
    context.verify_mode = ssl.CERT_REQUIRED  # mutual TLS: no client certificate signed by ca.pem, no connection
    return context


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="SI-DEP sandbox: plays the national screening platform.")
    parser.add_argument("--data-dir", type=Path, required=True, help="where sandbox.sqlite3 (and certs/ by default) live")
    parser.add_argument("--host", default="127.0.0.1", help="address of the MLLP and HTTPS listeners (default 127.0.0.1)")
    parser.add_argument("--mllp-port", type=int, default=2575, help="MLLP port (default 2575, 0 = any free port)")
    parser.add_argument("--https-port", type=int, default=8443, help="HTTPS port, mutual TLS (default 8443, 0 = any free port)")
    parser.add_argument(
        "--http-port", type=int, default=None, help="also serve the API over plain HTTP on this port (off unless given; 0 = any free port)"
    )
    parser.add_argument("--control-port", type=int, default=8444, help="control API port, plain HTTP (default 8444, 0 = any free port)")
    parser.add_argument(
        "--control-host", default="127.0.0.1", help="address of the control API and of the plain HTTP API (default 127.0.0.1)"
    )
    parser.add_argument(
        "--certs", type=Path, default=None, help="server.pem, server-key.pem, ca.pem (default DATA_DIR/certs, created by sandbox.devcerts)"
    )
    parser.add_argument(
        "--full-validation-first",
        type=int,
        default=100,
        metavar="N",
        help="validate the first N messages of each format with hl7apy / fhir.resources (default 100)",
    )
    parser.add_argument(
        "--full-validation-every",
        type=int,
        default=100,
        metavar="K",
        help="then one message in K (default 100; 1: every message, 0: none); the others get the fast structural checks",
    )
    parser.add_argument(
        "--ack-mode",
        default=DEFAULT_ACK_MODE,
        choices=ACK_MODES,
        help="HL7 v2 acknowledgements: application (default, what the sandbox has always answered: AA/AE/AR whatever "
        "MSH-15/16 ask) or enhanced (CA/CE/CR when MSH-15 asks for an accept acknowledgement; AA/AE/AR in original mode). "
        'Switchable at run time: POST /control/mode {"ack_mode": ...}',
    )
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=args.log_level, format="%(asctime)s sandbox %(levelname)s %(message)s")
    certs: Path = args.certs or args.data_dir / "certs"
    if args.certs is None:
        written = devcerts.ensure(certs)
        if written:
            log.info("development certificates written in %s: %s", certs, ", ".join(written))
    missing = [name for name in ("server.pem", "server-key.pem", "ca.pem") if not (certs / name).is_file()]
    if missing:
        print(f"sandbox: {certs} lacks {', '.join(missing)} (create them with: python -m sandbox.devcerts {certs})", file=sys.stderr)
        return 2

    store = Store(args.data_dir)
    sandbox = Sandbox(store, Sampler(first=args.full_validation_first, every=args.full_validation_every), ack_mode=args.ack_mode)
    context = tls_context(certs)

    def factory(
        transport: str, handler: type[socketserver.BaseRequestHandler], tls: ssl.SSLContext | None = None
    ) -> Callable[[tuple[str, int]], _Server]:
        return lambda address: _Server(address, handler, sandbox, transport, tls)

    sandbox.listeners = [
        Listener("mllp", args.host, args.mllp_port, factory("mllp", MllpHandler)),
        Listener("https", args.host, args.https_port, factory("https", ApiHandler, context)),
    ]
    if args.http_port is not None:
        sandbox.listeners.append(Listener("http", args.control_host, args.http_port, factory("http", ApiHandler)))
    control = Listener("control", args.control_host, args.control_port, factory("control", ControlHandler))
    started: list[Listener] = []
    try:
        for listener in [*sandbox.listeners, control]:
            listener.start()
            started.append(listener)
            print(f"sandbox: {listener.name} on {listener.host}:{listener.port}", flush=True)
    except OSError as exc:
        print(f"sandbox: cannot listen: {exc}", file=sys.stderr)
        for listener in started:
            listener.stop()
        store.close()
        return 1

    signals: list[int] = []
    # The handler only records the signal: setting an Event from a signal handler can deadlock the main thread.
    signal.signal(signal.SIGTERM, lambda signum, _frame: signals.append(signum))
    signal.signal(signal.SIGINT, lambda signum, _frame: signals.append(signum))
    log.info("store: %s; certificates: %s; HL7 acknowledgements: %s", store.path, certs, args.ack_mode)
    print("sandbox: ready", flush=True)
    while not signals:
        time.sleep(0.1)
    log.info("signal %s: stopping", signal.Signals(signals[0]).name)
    sandbox.stopping.set()
    for listener in [control, *sandbox.listeners]:
        listener.stop()
    sandbox.cut_connections()
    store.close()
    print("sandbox: stopped", flush=True)
    return 0
