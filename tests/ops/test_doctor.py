"""manage.py doctor: one named line per check, a summary, --json, exit status 1 on any fail."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from relais.ops import checks as c


def _doctor(*args: str) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("doctor", *args, stdout=out)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue()
    return 0, out.getvalue()


def test_lines_and_summary_without_a_fail(db: Any) -> None:
    code, out = _doctor()
    lines = out.strip().splitlines()
    assert code == 0, out
    assert all(line.split(" ", 1)[0] in {"PASS", "WARN"} for line in lines[:-1])
    assert any(line.startswith("PASS audit triggers: ") for line in lines)
    assert any(line.startswith("PASS queue transfer: depth 0") for line in lines)
    assert lines[-1].startswith(f"{len(lines) - 1} checks: ") and lines[-1].endswith(" 0 fail")


def test_json_and_exit_status_on_a_fail(db: Any, settings: Any) -> None:
    settings.DEBUG = True
    code, out = _doctor("--json")
    document = json.loads(out)
    assert code == 1 and document["ok"] is False and document["summary"]["fail"] == 1
    assert {"name": "debug", "status": "fail", "detail": c.check_debug().detail} in document["checks"]
    assert {check["status"] for check in document["checks"]} <= {"pass", "warn", "fail"}


def test_no_secret_value_in_the_output(db: Any, settings: Any) -> None:
    _code, out = _doctor("--json")
    for value in (settings.SECRET_KEY, settings.RELAIS_MASTER_KEY, settings.RELAIS_BLIND_INDEX_KEY):
        assert value not in out


def test_url_must_be_https(db: Any) -> None:
    with pytest.raises(CommandError, match="https://"):
        _doctor("--url", "http://127.0.0.1:1", "--skip-inside")
    with pytest.raises(CommandError, match="--url"):
        _doctor("--skip-inside")


def test_probe_only_against_an_unreachable_address_fails(db: Any) -> None:
    code, out = _doctor("--url", "https://127.0.0.1:9", "--skip-inside", "--timeout", "1")
    assert code == 1 and out.startswith("FAIL tls version: no TLS 1.2+ handshake with 127.0.0.1:9")
