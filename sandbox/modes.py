"""Failure modes, switched at run time through the control API."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

log = logging.getLogger("sandbox")

MODES = ("normal", "down", "slow", "http500", "http429", "reject", "ack_lost", "ack_malformed")
DEFAULT_REJECT_REASON = "rejected by sandbox: reject mode"
DEFAULT_RETRY_AFTER = 2
DEFAULT_SLOW_SECONDS = 30.0


@dataclass(frozen=True)
class Mode:
    mode: str = "normal"
    retry_after: int = DEFAULT_RETRY_AFTER  # seconds, sent as Retry-After in http429
    slow_seconds: float = DEFAULT_SLOW_SECONDS  # delay before answering in slow
    reason: str = ""  # MSA-3 / OperationOutcome diagnostics in reject

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


def parse_mode(data: object) -> Mode:
    """A Mode from the JSON body of POST /control/mode; omitted settings take their defaults."""
    if not isinstance(data, dict):
        raise InvalidMode('the body must be a JSON object such as {"mode": "down"}')
    unknown = set(data) - {"mode", "retry_after", "slow_seconds", "reason"}
    if unknown:
        raise InvalidMode(f"unknown keys: {', '.join(sorted(unknown))}")
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
    )


class ModeSwitch:
    """The current mode, shared by every listener; ``on_change(old, new)`` runs under the switch's lock."""

    def __init__(self, on_change: Callable[[Mode, Mode], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._mode = Mode()
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
