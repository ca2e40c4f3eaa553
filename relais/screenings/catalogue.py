"""Load the EU rapid-antigen device list (DCC value set covid-19-lab-test-manufacturer-and-name)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from relais.screenings.vocab import ANALYTES

BUNDLED_VALUE_SET = Path(__file__).parent / "test-manf-example.json"
# A display is "Manufacturer, Device"; a company suffix after the first comma belongs to the manufacturer.
_COMPANY_SUFFIX = re.compile(r"^(inc|ltd|llc|co|corp|gmbh|ag|s\.?a|s\.?r\.?l|b\.?v|plc|limited|pte|kg)\b\.?", re.IGNORECASE)


def split_display(display: str) -> tuple[str, str]:
    parts = [p.strip() for p in display.split(",")]
    if len(parts) == 1:
        return display.strip(), display.strip()
    cut = 1
    while cut < len(parts) - 1 and _COMPANY_SUFFIX.match(parts[cut]):
        cut += 1
    return ", ".join(parts[:cut]), ", ".join(parts[cut:])


def devices_from_value_set(data: dict[str, Any]) -> list[dict[str, Any]]:
    analyte = ANALYTES["sars-cov-2"]
    devices = []
    for device_id, entry in data["valueSetValues"].items():
        manufacturer, name = split_display(entry["display"])
        devices.append(
            {
                "device_id": device_id,
                "manufacturer": manufacturer,
                "name": name,
                "loinc_code": analyte.rapid_antigen_loinc,
                "analytes": [analyte.code],
                "active": bool(entry.get("active", True)),
                "source_version": entry.get("version", ""),
            }
        )
    return devices


def load_catalogue(device_model: Any, path: Path = BUNDLED_VALUE_SET) -> tuple[int, int]:
    """Upsert devices; returns (created, updated). Devices are never deleted: old screenings refer to them."""
    created = updated = 0
    for row in devices_from_value_set(json.loads(path.read_text(encoding="utf-8"))):
        _obj, was_created = device_model.objects.update_or_create(device_id=row.pop("device_id"), defaults=row)
        created += was_created
        updated += not was_created
    return created, updated
