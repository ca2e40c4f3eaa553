"""HTTPS with a client certificate and server verification; one keep-alive connection per worker."""

from __future__ import annotations

import http.client
import ssl
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, NoReturn
from urllib.parse import urlsplit

from django.utils import timezone

from relais.transfer.outcome import TransientError
from relais.transfer.transports.deadline import next_timeout, timeout_reason

MAX_REPLY = 5_000_000


@dataclass(frozen=True)
class HttpReply:
    status: int
    body: str
    content_type: str


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After is either seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - timezone.now()).total_seconds())


def client_context(*, ca_file: str, cert_file: str, key_file: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file:
        context.load_cert_chain(cert_file, key_file or None)
    return context


class _DeadlineSocket(ssl.SSLSocket):
    """http.client reads and writes the socket itself: each read and write here waits at most the idle
    timeout, cut to what is left of the exchange, so a peer trickling bytes cannot stretch it."""

    until: float | None = None
    idle: float = 10.0

    def read(self, len: int = 1024, buffer: Any = None) -> Any:  # same signature as SSLSocket.read
        if self.until is not None:
            self.settimeout(next_timeout(self.until, self.idle))
        return super().read(len, buffer)

    def send(self, data: Any, flags: int = 0) -> int:
        if self.until is not None:
            self.settimeout(next_timeout(self.until, self.idle))
        return super().send(data, flags)


class HttpsTransport:
    """``timeout`` bounds each network wait; ``deadline`` bounds the whole exchange (connect, TLS, request, answer)."""

    def __init__(
        self, *, url: str, timeout: float, deadline: float = 30.0, ca_file: str = "", cert_file: str = "", key_file: str = ""
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "https":
            raise ValueError("the national platform is reached over https only")
        self.host, self.port, self.path = parts.hostname or "", parts.port or 443, parts.path or "/"
        self.timeout, self.deadline = timeout, deadline
        self.context = client_context(ca_file=ca_file, cert_file=cert_file, key_file=key_file)
        self.context.sslsocket_class = _DeadlineSocket
        self._conn: http.client.HTTPSConnection | None = None
        self._until = 0.0

    def exchange(self, body: str, *, content_type: str, message_id: str = "") -> HttpReply:
        self.start(body, content_type=content_type, message_id=message_id)
        return self.finish()

    def start(self, body: str, *, content_type: str, message_id: str = "") -> None:
        """Connect if needed (TCP, TLS) and send the request; ``finish`` reads the response. Between the two the caller
        may wait on ``fileno()`` with other connections (one request in flight on each)."""
        self._until = until = time.monotonic() + self.deadline
        if self._conn is None:
            self._conn = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout, context=self.context)
        conn = self._conn
        headers = {"Content-Type": content_type, "Accept": content_type}
        if message_id:
            headers["X-Message-ID"] = message_id
        transmitted = False
        try:
            if conn.sock is None:
                conn.timeout = next_timeout(until, self.timeout)  # TCP connect, then the TLS handshake as a whole
                conn.connect()
            if isinstance(conn.sock, _DeadlineSocket):
                conn.sock.until, conn.sock.idle = until, self.timeout
            transmitted = True
            conn.request("POST", self.path, body=body.encode("utf-8"), headers=headers)
        except (OSError, http.client.HTTPException) as exc:
            self._fail(exc, until, transmitted)

    def finish(self) -> HttpReply:
        until, conn = self._until, self._conn
        if conn is None:
            raise TransientError("connection closed without a response", transmitted=True)
        try:
            response = conn.getresponse()
            data = response.read(MAX_REPLY + 1)
        except (OSError, http.client.HTTPException) as exc:
            self._fail(exc, until, True)
        if response.will_close:
            self.close()
        if response.status == 429 or response.status >= 500:
            raise TransientError(
                f"receiver answered {response.status}",
                transmitted=True,
                retry_after=retry_after_seconds(response.getheader("Retry-After")),
            )
        return HttpReply(response.status, data[:MAX_REPLY].decode("utf-8", errors="replace"), response.getheader("Content-Type", ""))

    def fileno(self) -> int:
        sock = self._conn.sock if self._conn is not None else None
        return sock.fileno() if sock is not None else -1

    def pending(self) -> bool:
        """TLS bytes already decrypted and buffered: select() on the socket would not see them."""
        sock = self._conn.sock if self._conn is not None else None
        return isinstance(sock, ssl.SSLSocket) and sock.pending() > 0

    def _fail(self, exc: BaseException, until: float, transmitted: bool) -> NoReturn:
        self.close()
        if isinstance(exc, ssl.SSLCertVerificationError):
            raise TransientError(f"server certificate refused: {exc.verify_message}", transmitted=False) from exc
        if isinstance(exc, TimeoutError):
            reason = timeout_reason(until=until, deadline=self.deadline, idle_reason=f"no answer within {self.timeout:g} s")
            raise TransientError(reason, transmitted=transmitted) from exc
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise TransientError(f"connection error: {reason}", transmitted=transmitted) from exc

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
