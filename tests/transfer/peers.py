"""Misbehaving receivers on loopback for transport tests: a peer that accepts, then trickles its answer forever."""

from __future__ import annotations

import select
import socket
import ssl
import threading
import time
from itertools import chain, repeat

MLLP_TRICKLE = b"\x0bMSH|^~\\&|SIDEP|"  # an acknowledgement that starts and never ends
HTTP_TRICKLE = b"HTTP/1.1 200 OK\r\nX-Trickle: "  # a header line that never ends


class TricklingPeer:
    """Accepts every connection (over TLS when given a server context), reads what it is sent,
    and answers one byte every ``interval`` seconds, never finishing; notes when the client closes.
    After ``lifetime`` seconds it hangs up, so a client that never gives up fails its test instead of hanging it."""

    def __init__(self, prefix: bytes, *, interval: float = 0.3, tls: ssl.SSLContext | None = None, lifetime: float = 20.0) -> None:
        self.prefix, self.interval, self.tls = prefix, interval, tls
        self.expires = time.monotonic() + lifetime
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port: int = self.listener.getsockname()[1]
        self.received = threading.Event()  # a request (or part of one) arrived
        self.closed = threading.Event()  # a client closed its connection
        self.connections = 0
        self.requests = 0  # connections that sent something
        self._count = threading.Lock()
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _running(self) -> bool:
        return not self._stop.is_set() and time.monotonic() < self.expires

    def _serve(self) -> None:
        with self.listener:
            while self._running():
                try:
                    conn, _address = self.listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                self.connections += 1
                threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        answer = chain(self.prefix, repeat(ord("x")))
        heard = False
        try:
            if self.tls is not None:
                conn.settimeout(5)
                conn = self.tls.wrap_socket(conn, server_side=True)
            while self._running():
                readable, _, _ = select.select([conn], [], [], self.interval)
                if readable:
                    if not conn.recv(65536):
                        break
                    if not heard:
                        with self._count:
                            heard, self.requests = True, self.requests + 1
                    self.received.set()
                    continue
                conn.sendall(bytes([next(answer)]))
        except OSError:
            pass  # reset by the client, or a TLS error on close: the connection is gone either way
        finally:
            if self._running():
                self.closed.set()
            conn.close()

    def stop(self) -> None:
        self._stop.set()
