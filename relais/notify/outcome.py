"""What a channel answers for one message, and the scrubbing of providers' words before they are stored."""

from __future__ import annotations

import re
from dataclasses import dataclass

PERSONAL = re.compile(r"\+?\d[\d\s().-]{4,}\d|\S+@\S+")


def scrub(text: str) -> str:
    """A provider's words may quote the number or address back: keep them out of stored errors, logs and figures."""
    return PERSONAL.sub("…", text)


@dataclass(frozen=True)
class SendOutcome:
    kind: str  # "sent", "retry" or "failed"
    detail: str = ""
    provider_id: str = ""
    retry_after: float | None = None

    @classmethod
    def sent(cls, provider_id: str = "") -> SendOutcome:
        return cls("sent", provider_id=provider_id)

    @classmethod
    def retry(cls, detail: str, *, retry_after: float | None = None) -> SendOutcome:
        return cls("retry", detail=detail, retry_after=retry_after)

    @classmethod
    def failed(cls, detail: str) -> SendOutcome:
        return cls("failed", detail=detail)
