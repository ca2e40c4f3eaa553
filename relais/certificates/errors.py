"""Exceptions of the DCC library; messages never carry personal data (they may end up in logs)."""

from __future__ import annotations

# Stable reason codes, in the order the verification pipeline checks them.
REASONS = ("prefix", "base45", "zlib", "cose", "signature", "key_usage", "not_yet_valid", "expired", "schema", "value_set")


class DccInvalid(Exception):
    """An HC1 text or DCC payload was rejected; `reason` is one of REASONS."""

    def __init__(self, reason: str, message: str) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown reason code {reason!r}")
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class PayloadInvalid(DccInvalid):
    """A payload fails the DCC JSON schema (raised when issuing as well as when verifying)."""

    def __init__(self, message: str) -> None:
        super().__init__("schema", message)


class CannotIssue(Exception):
    """Intake accepted a value the DCC cannot carry; `reason` is a certificates.models.RefusalReason value."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
