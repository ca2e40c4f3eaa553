"""MLLP over TCP: <VT> message <FS><CR> framing, one persistent connection per worker."""

from __future__ import annotations

import socket
import time
from typing import NoReturn

from relais.transfer.outcome import TransientError
from relais.transfer.transports.deadline import next_timeout, timeout_reason

START, END = b"\x0b", b"\x1c\x0d"
MAX_REPLY = 5_000_000


def frame(message: str) -> bytes:
    return START + message.encode("utf-8") + END


def read_frame(sock: socket.socket, *, until: float | None = None, idle: float = 0.0) -> str:
    """Read one framed reply; anything else is a transient failure (the message may have arrived).
    With ``until`` (monotonic), each read waits at most ``idle`` seconds and the whole reply ends by ``until``."""
    buffer = b""
    while END not in buffer:
        if until is not None:
            sock.settimeout(next_timeout(until, idle))
        chunk = sock.recv(65536)
        if not chunk:
            raise TransientError("connection closed without an acknowledgement", transmitted=True)
        buffer += chunk
        if len(buffer) > MAX_REPLY:
            raise TransientError("acknowledgement too large", transmitted=True)
    body, _sep, _rest = buffer.partition(END)
    start = body.find(START)
    if start < 0:
        raise TransientError("acknowledgement without MLLP start block", transmitted=True)
    return body[start + 1 :].decode("utf-8", errors="replace")


class MllpTransport:
    """``timeout`` bounds each network wait; ``deadline`` bounds the whole exchange (connect, send, acknowledgement)."""

    def __init__(self, *, host: str, port: int, timeout: float, deadline: float = 30.0) -> None:
        self.host, self.port, self.timeout, self.deadline = host, port, timeout, deadline
        self._sock: socket.socket | None = None
        self._until = 0.0

    def _connect(self, until: float) -> socket.socket:
        if self._sock is None:
            try:
                self._sock = socket.create_connection((self.host, self.port), timeout=next_timeout(until, self.timeout))
            except OSError as exc:
                raise TransientError(f"cannot connect to {self.host}:{self.port}: {exc.strerror or exc}", transmitted=False) from exc
        return self._sock

    def exchange(self, message: str) -> str:
        self.start(message)
        return self.finish()

    def start(self, message: str) -> None:
        """Connect if needed and send the framed message; ``finish`` reads its acknowledgement. Between the two the
        caller may wait on ``fileno()`` with other connections (one message in flight on each)."""
        self._until = until = time.monotonic() + self.deadline
        sock = self._connect(until)
        try:
            sock.settimeout(next_timeout(until, self.timeout))  # sendall: one timeout for the whole message
            sock.sendall(frame(message))
        except (TimeoutError, OSError) as exc:
            self._fail(exc, until)

    def finish(self) -> str:
        until = self._until
        if self._sock is None:
            raise TransientError("connection closed without an acknowledgement", transmitted=True)
        try:
            return read_frame(self._sock, until=until, idle=self.timeout)
        except (TransientError, TimeoutError, OSError) as exc:
            self._fail(exc, until)

    def fileno(self) -> int:
        return self._sock.fileno() if self._sock is not None else -1

    def pending(self) -> bool:
        return False  # no buffering above the socket: select on fileno() tells everything

    def _fail(self, exc: BaseException, until: float) -> NoReturn:
        self.close()
        if isinstance(exc, TransientError):
            raise exc
        if isinstance(exc, TimeoutError):
            reason = timeout_reason(until=until, deadline=self.deadline, idle_reason=f"no acknowledgement within {self.timeout:g} s")
            raise TransientError(reason, transmitted=True) from exc
        assert isinstance(exc, OSError)
        raise TransientError(f"connection error: {exc.strerror or exc}", transmitted=True) from exc

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None
