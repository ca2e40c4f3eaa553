"""Transports: one module each, wrapped here to one interface; listed in relais.transfer.registry.

Every transport sends one rendered text and answers a Reply; it raises TransientError when the outcome is unknown.
``send`` is ``start`` then ``finish``: between the two, one thread can wait on several connections' ``fileno()``
(one message in flight on each) instead of one thread per connection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from relais.transfer.transports.https import HttpsTransport
from relais.transfer.transports.mllp import MllpTransport

if TYPE_CHECKING:
    from relais.transfer.destinations import Destination


@dataclass(frozen=True)
class Reply:
    body: str
    status: int | None = None  # the HTTP status; None on a stream transport such as MLLP


class Transport(Protocol):
    def send(self, body: str, *, content_type: str, message_id: str) -> Reply: ...

    def start(self, body: str, *, content_type: str, message_id: str) -> None: ...

    def finish(self) -> Reply: ...

    def fileno(self) -> int: ...  # -1 when not connected

    def pending(self) -> bool: ...  # reply bytes already buffered above the socket

    def close(self) -> None: ...


class Mllp:
    """MLLP over TCP (HL7 v2 only): the acknowledgement is the whole reply."""

    def __init__(self, target: Destination) -> None:
        self.connection = MllpTransport(host=target.host, port=target.port, timeout=target.timeout, deadline=target.deadline)

    def send(self, body: str, *, content_type: str, message_id: str) -> Reply:
        return Reply(self.connection.exchange(body))

    def start(self, body: str, *, content_type: str, message_id: str) -> None:
        self.connection.start(body)

    def finish(self) -> Reply:
        return Reply(self.connection.finish())

    def fileno(self) -> int:
        return self.connection.fileno()

    def pending(self) -> bool:
        return self.connection.pending()

    def close(self) -> None:
        self.connection.close()


class Https:
    """HTTPS POST with a client certificate; the reply carries its status."""

    def __init__(self, target: Destination) -> None:
        self.connection = HttpsTransport(
            url=target.url,
            timeout=target.timeout,
            deadline=target.deadline,
            ca_file=target.ca_file,
            cert_file=target.cert_file,
            key_file=target.key_file,
        )

    def send(self, body: str, *, content_type: str, message_id: str) -> Reply:
        reply = self.connection.exchange(body, content_type=content_type, message_id=message_id)
        return Reply(reply.body, reply.status)

    def start(self, body: str, *, content_type: str, message_id: str) -> None:
        self.connection.start(body, content_type=content_type, message_id=message_id)

    def finish(self) -> Reply:
        reply = self.connection.finish()
        return Reply(reply.body, reply.status)

    def fileno(self) -> int:
        return self.connection.fileno()

    def pending(self) -> bool:
        return self.connection.pending()

    def close(self) -> None:
        self.connection.close()
