"""One named check's outcome, shared by the inside checks and the outside probe (no Django: the probe runs anywhere)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

Status = Literal["pass", "warn", "fail"]


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str  # what is wrong and what to do: never a secret value or personal data

    def as_dict(self) -> dict[str, str]:
        return asdict(self)
