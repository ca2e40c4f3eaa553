"""MLLP over TCP: <VT> message <FS><CR> framing, one persistent connection per worker."""

from __future__ import annotations

import socket

from relais.transfer.outcome import TransientError

START, END = b"\x0b", b"\x1c\x0d"
MAX_REPLY = 5_000_000


def frame(message: str) -> bytes:
    return START + message.encode("utf-8") + END


def read_frame(sock: socket.socket) -> str:
    """Read one framed reply; anything else is a transient failure (the message may have arrived)."""
    buffer = b""
    while END not in buffer:
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
    def __init__(self, *, host: str, port: int, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._sock: socket.socket | None = None

    def _connect(self) -> socket.socket:
        if self._sock is None:
            try:
                self._sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            except OSError as exc:
                raise TransientError(f"cannot connect to {self.host}:{self.port}: {exc.strerror or exc}", transmitted=False) from exc
        return self._sock

    def exchange(self, message: str) -> str:
        sock = self._connect()
        try:
            sock.sendall(frame(message))
            return read_frame(sock)
        except TransientError:
            self.close()
            raise
        except TimeoutError as exc:
            self.close()
            raise TransientError(f"no acknowledgement within {self.timeout:g} s", transmitted=True) from exc
        except OSError as exc:
            self.close()
            raise TransientError(f"connection error: {exc.strerror or exc}", transmitted=True) from exc

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None
