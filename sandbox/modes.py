"""Failure modes, switched at run time through the control API, and the HL7 acknowledgement mode (``ack_mode``)."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

log = logging.getLogger("sandbox")

MODES = ("normal", "down", "slow", "http500", "http429", "reject", "ack_lost", "ack_malformed")
DEFAULT_REJECT_REASON = "rejected by sandbox: reject mode"
DEFAULT_RETRY_AFTER = 2
DEFAULT_SLOW_SECONDS = 30.0
# How HL7 v2 messages are acknowledged. "application": AA/AE/AR whatever the message asks, what the sandbox has always
# answered. "enhanced": HL7 v2.5.1 enhanced acknowledgement (2.9.3): a message whose MSH-15 asks for an accept
# acknowledgement gets CA/CE/CR; a message in original mode (MSH-15 and MSH-16 empty) still gets AA/AE/AR.
ACK_MODES = ("application", "enhanced")
DEFAULT_ACK_MODE = "application"


@dataclass(frozen=True)
class Mode:
    mode: str = "normal"
    retry_after: int = DEFAULT_RETRY_AFTER  # seconds, sent as Retry-After in http429
    slow_seconds: float = DEFAULT_SLOW_SECONDS  # delay before answering in slow
    reason: str = ""  # MSA-3 / OperationOutcome diagnostics in reject
    ack_mode: str = DEFAULT_ACK_MODE  # one of ACK_MODES: a setting of the sandbox, kept across failure-mode switches

    @property
    def reject_reason(self) -> str:
        return self.reason or DEFAULT_REJECT_REASON

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["reason"] = self.reject_reason
        return data


class InvalidMode(ValueError):
    pass


def _number(data: dict[str, Any], key: str, default: float) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise InvalidMode(f"{key} must be a number >= 0, got {value!r}")
    return float(value)


def parse_ack_mode(value: object) -> str:
    if value not in ACK_MODES:
        raise InvalidMode(f"ack_mode must be one of {', '.join(ACK_MODES)}; got {value!r}")
    return str(value)


def parse_mode(data: object, current: Mode | None = None) -> Mode:
    """A Mode from the JSON body of POST /control/mode; omitted settings take their defaults, except ``ack_mode``,
    which keeps the ``current`` one. A body with ``ack_mode`` alone changes only the acknowledgement mode."""
    current = current or Mode()
    if not isinstance(data, dict):
        raise InvalidMode('the body must be a JSON object such as {"mode": "down"}')
    unknown = set(data) - {"mode", "retry_after", "slow_seconds", "reason", "ack_mode"}
    if unknown:
        raise InvalidMode(f"unknown keys: {', '.join(sorted(unknown))}")
    ack_mode = parse_ack_mode(data["ack_mode"]) if "ack_mode" in data else current.ack_mode
    if set(data) == {"ack_mode"}:
        return replace(current, ack_mode=ack_mode)
    name = data.get("mode")
    if name not in MODES:
        raise InvalidMode(f"mode must be one of {', '.join(MODES)}; got {name!r}")
    reason = data.get("reason", "")
    if not isinstance(reason, str):
        raise InvalidMode("reason must be a string")
    return Mode(
        mode=name,
        retry_after=math.ceil(_number(data, "retry_after", DEFAULT_RETRY_AFTER)),
        slow_seconds=_number(data, "slow_seconds", DEFAULT_SLOW_SECONDS),
        reason=reason,
        ack_mode=ack_mode,
    )


class ModeSwitch:
    """The current mode, shared by every listener; ``on_change(old, new)`` runs under the switch's lock."""

    def __init__(self, on_change: Callable[[Mode, Mode], None] | None = None, initial: Mode | None = None) -> None:
        self._lock = threading.Lock()
        self._mode = initial or Mode()
        self._on_change = on_change

    def get(self) -> Mode:
        with self._lock:
            return self._mode

    def set(self, mode: Mode) -> Mode:
        with self._lock:
            old, self._mode = self._mode, mode
            log.info(
                "mode changed: %s -> %s (%s)", old.mode, mode.mode, ", ".join(f"{k}={v}" for k, v in mode.as_dict().items() if k != "mode")
            )
            if self._on_change is not None:
                self._on_change(old, mode)
        return old
