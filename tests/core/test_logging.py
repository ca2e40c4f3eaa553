"""Issue 12, item 7: no credential and no forged line in the logs (gunicorn's access log and the application log)."""

from __future__ import annotations

import io
import logging
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from gunicorn.config import Config

from relais.core.gunicorn_logging import RedactingLogger, redact_path
from relais.core.logging import RequestContextFilter, escape_controls

TOKEN = "Zx9_" + "a" * 39  # the shape of secrets.token_urlsafe(32)
FORMAT = '%(h)s "%(m)s %(U)s" %(s)s %(L)ss'  # scripts/run-dev's access-log format


class _Response:
    status = "404 Not Found"
    sent = 0
    headers: list[tuple[str, str]] = []


def _access_lines(path_info: str, raw_uri: str, *, access_format: str = FORMAT, **headers: str) -> list[str]:
    """The access-log lines gunicorn writes for one request, with Relais's logger class."""
    config = Config()
    config.set("accesslog", "-")
    config.set("access_log_format", access_format)
    logger = RedactingLogger(config)
    stream = io.StringIO()
    logger.access_log.handlers = [logging.StreamHandler(stream)]
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": raw_uri,
        "PATH_INFO": path_info,
        "QUERY_STRING": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "203.0.113.9",
        **{f"HTTP_{k.upper()}": v for k, v in headers.items()},
    }
    logger.access(_Response(), [(k.upper().replace("_", "-"), v) for k, v in headers.items()], environ, timedelta(milliseconds=3))
    return stream.getvalue().splitlines()


@pytest.mark.parametrize(
    "forged",
    ["\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\x1b[2J"],
    ids=repr,
)
def test_a_decoded_control_character_cannot_forge_an_access_log_line(forged: str) -> None:
    fake = '203.0.113.66 "GET /admin/" 200 0.001s'
    lines = _access_lines(f"/x{forged}{fake}", f"/x{forged.encode().hex()}{fake}", access_format=FORMAT + ' "%(a)s" "%(r)s"')
    assert len(lines) == 1 and len(lines[0].splitlines()) == 1, lines
    for char in filter(lambda c: not c.isprintable(), forged):
        assert char not in lines[0]
    assert lines[0].startswith('203.0.113.9 "GET /x\\')


def test_every_access_log_field_is_escaped_and_quotes_cannot_close_a_field() -> None:
    [line] = _access_lines(
        '/a"b\\c', '/a"b\\c', access_format=FORMAT + ' "%(a)s" "%({x-forwarded-for}i)s"', user_agent="ua\x07", x_forwarded_for="1\u20282"
    )
    assert '"GET /a\\"b\\\\c"' in line and '"ua\\x07"' in line and '"1\\u20282"' in line


@pytest.mark.parametrize("path", [f"/r/{TOKEN}", f"/invite/{TOKEN}/"])
def test_tokens_never_reach_the_access_log(path: str) -> None:
    [line] = _access_lines(path, path, access_format=FORMAT + ' "%(r)s" "%(f)s"', referer=f"https://relais.example{path}")
    assert TOKEN not in line and ("/r/[link]" in line or "/invite/[token]/" in line)
    assert redact_path(path) != path and redact_path("/screenings/") == "/screenings/"


@pytest.mark.parametrize("path", [f"/r/{TOKEN}", f"/invite/{TOKEN}/"])
def test_tokens_and_control_characters_never_reach_the_application_log(path: str) -> None:
    record = logging.LogRecord("django.request", logging.WARNING, __file__, 1, "%s: %s", ("Not Found", path + "\nforged line"), None)
    RequestContextFilter().filter(record)
    message = record.getMessage()
    assert TOKEN not in message and "\n" not in message and message.endswith("\\x0aforged line")
    keyed = logging.LogRecord("django.server", logging.INFO, __file__, 1, "%(line)s", None, None)
    keyed.args = {"line": f"GET {path}\u2028x"}
    RequestContextFilter().filter(keyed)
    assert TOKEN not in keyed.getMessage() and "\u2028" not in keyed.getMessage()


def test_escape_keeps_ordinary_text_and_marks_every_escape() -> None:
    assert escape_controls("/patients/é?q=1 ok") == "/patients/é?q=1 ok"
    assert escape_controls("a\\x0ab") == "a\\\\x0ab"  # a literal backslash cannot pass for an escaped newline
    assert escape_controls("\t\x7f\u202e") == "\\x09\\x7f\\u202e"


def test_the_invitation_page_logs_no_token(client: Any, caplog: Any, db: Any) -> None:
    """Django logs "Not Found: <path>" for an unknown invitation; the handlers' filter takes the token out."""
    with caplog.at_level(logging.WARNING, logger="django.request"):
        assert client.get(f"/invite/{TOKEN}/").status_code == 404
    records = [r for r in caplog.records if r.name == "django.request"]
    assert records
    for record in records:
        RequestContextFilter().filter(record)
        assert TOKEN not in record.getMessage()


def test_runserver_request_lines_go_through_the_filter() -> None:
    """Django gives "django.server" a handler of its own; configuring "django" resets its children to propagate to ours."""
    server = logging.getLogger("django.server")
    assert server.handlers == [] and server.propagate
    assert all("request_context" in handler.get("filters", []) for handler in settings.LOGGING["handlers"].values())
