"""Where results go and how: format (hl7v2 | fhir) and transport (mllp | https), per destination."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from relais.transfer.hd import DEFAULT_RECEIVER, receiving_hds
from relais.transfer.registry import FORMATS, TRANSPORTS


@dataclass(frozen=True)
class Destination:
    name: str
    message_format: str  # hl7v2 | fhir
    transport: str  # mllp | https
    host: str = "127.0.0.1"
    port: int = 0
    url: str = ""
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    batch_size: int = 1  # >1: HL7 batch files (FHS/BHS/BTS/FTS)
    pseudonymous: bool = False  # a receiver that must not get identity: only its own pseudonym (keyed per destination)
    timeout: float = 10.0  # seconds for each network wait
    deadline: float = 30.0  # seconds for a whole exchange: connect, send, acknowledgement
    # HL7 MSH-5/MSH-6 (and FHS/BHS-5/6): "NAME" or "NAME^OID^ISO" (relais.transfer.hd); SI-DEP's OIDs are not published.
    receiving_application: str = DEFAULT_RECEIVER
    receiving_facility: str = DEFAULT_RECEIVER


def destination(name: str | None = None) -> Destination:
    config: dict[str, Any] = settings.RELAIS_TRANSFER
    chosen: str = name or config["destination"]
    try:
        values = config["destinations"][chosen]
    except KeyError as exc:
        raise ImproperlyConfigured(f"unknown transfer destination {chosen!r}") from exc
    defaults = {"timeout": float(config["timeout"]), "deadline": float(config.get("deadline", Destination.deadline))}
    result = Destination(name=chosen, **{**defaults, **values})
    if not result.deadline > 0:
        raise ImproperlyConfigured(f"destination {chosen}: deadline must be a positive number of seconds")
    check_destination(result)
    return result


def check_destination(target: Destination) -> None:
    """The format and transport exist in the registry and go together."""
    fmt = FORMATS.get(target.message_format)
    if fmt is None or target.transport not in TRANSPORTS:
        raise ImproperlyConfigured(
            f"destination {target.name}: format must be one of {'|'.join(FORMATS)} and transport one of {'|'.join(TRANSPORTS)}"
        )
    if target.transport not in fmt.transports:
        raise ImproperlyConfigured(f"destination {target.name}: {fmt.name} cannot go over {target.transport}")
    receiving_hds(
        {"receiving_application": target.receiving_application, "receiving_facility": target.receiving_facility},
        where=f"destination {target.name}",
    )
