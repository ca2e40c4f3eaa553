from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Outcome:
    """What became of one delivery attempt."""

    kind: str  # acknowledged | rejected | transient
    transmitted: bool  # the message left this process (so the receiver may have it)
    detail: str = ""
    ack_code: str = ""
    retry_after: float | None = None

    @classmethod
    def acknowledged(cls, ack_code: str, detail: str = "") -> Outcome:
        return cls("acknowledged", True, detail, ack_code)

    @classmethod
    def nothing_to_send(cls, detail: str) -> Outcome:
        """Settled without sending: the receiver has nothing this message would change (a removal of a test it never
        accepted). Recorded as acknowledged, with no sent_at, so it never counts as a version the receiver holds."""
        return cls("acknowledged", False, detail)

    @classmethod
    def rejected(cls, detail: str, *, ack_code: str = "", transmitted: bool = True) -> Outcome:
        return cls("rejected", transmitted, detail, ack_code)

    @classmethod
    def transient(cls, detail: str, *, transmitted: bool, retry_after: float | None = None) -> Outcome:
        return cls("transient", transmitted, detail, retry_after=retry_after)


class TransientError(Exception):
    """A failure worth retrying: refused connection, timeout, 5xx, 429, lost or malformed answer."""

    def __init__(self, detail: str, *, transmitted: bool, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.transmitted = transmitted
        self.retry_after = retry_after
