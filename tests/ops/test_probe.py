"""doctor's outside probe against small local HTTPS servers: one that leaks a .git/HEAD and a PEM key, one that does not."""

from __future__ import annotations

import http.server
import ssl
import threading
import warnings
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from relais.ops.probe import EXPOSURE_PATHS, SIGNATURES, Answer, ProbeTarget, classify, header_problems, leak_signature, run_probe

SERVER_NAME = "relais.test"
GOOD_HEADERS = {
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
PEM_KEY = b"-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n"
LEAKS = {"/.git/HEAD": b"ref: refs/heads/main\n", "/var/dcc-signer/signer-key.pem": PEM_KEY}


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for relais.test (the CA file doctor is given with --ca-file)."""
    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SERVER_NAME)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(SERVER_NAME)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_file, key_file


def _handler(*, leaky: bool) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def version_string(self) -> str:
            return "nginx/1.22.1" if leaky else "nginx"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path in {"/", "/login/"}:
                status, body = 200, b"<html><title>Relais</title><p>Se connecter</p></html>"
            elif leaky and path in LEAKS:
                status, body = 200, LEAKS[path]
            elif not leaky and path.startswith("/static/"):
                status, body = 200, b"<html><p>Page introuvable</p></html>"  # a generic page: passes
            else:
                status, body = 404, b"not found"
            self.send_response(status)
            for header, value in ({} if leaky else GOOD_HEADERS).items():
                self.send_header(header, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


def _serve(server: http.server.ThreadingHTTPServer) -> Iterator[int]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _https(certificate: tuple[Path, Path], *, leaky: bool) -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(leaky=leaky))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(certificate[0]), str(certificate[1]))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    yield from _serve(server)


@pytest.fixture
def leaky_port(certificate: tuple[Path, Path]) -> Iterator[int]:
    yield from _https(certificate, leaky=True)


@pytest.fixture
def clean_port(certificate: tuple[Path, Path]) -> Iterator[int]:
    yield from _https(certificate, leaky=False)


def _target(port: int, certificate: tuple[Path, Path]) -> ProbeTarget:
    return ProbeTarget.from_url(f"https://127.0.0.1:{port}", ca_file=str(certificate[0]), server_name=SERVER_NAME, timeout=5)


def _by_name(checks: list[Any]) -> dict[str, Any]:
    return {check.name: check for check in checks}


def test_the_exposure_list_has_at_least_150_paths_each_saying_what_it_leaks() -> None:
    paths = [item.path for item in EXPOSURE_PATHS]
    assert len(set(paths)) == len(paths) >= 150
    assert all(item.leaks for item in EXPOSURE_PATHS)
    for needed in ("/.git/HEAD", "/.env", "/var/relais.sqlite3", "/var/secrets/relais_master_key", "/var/demo-logins.txt"):
        assert needed in paths
    assert any("%252e" in p for p in paths) and any("\\" in p for p in paths) and any(p.startswith("//") for p in paths)


def test_a_clean_server_passes(clean_port: int, certificate: tuple[Path, Path]) -> None:
    checks = run_probe(_target(clean_port, certificate))
    assert [c for c in checks if c.status != "pass"] == []
    found = _by_name(checks)
    assert found["tls version"].detail in {"negotiated TLSv1.2", "negotiated TLSv1.3"}
    assert "days left" in found["tls certificate"].detail
    assert found["tls legacy versions"].status == "pass"
    assert found["exposure probe"].detail.startswith(f"{len(EXPOSURE_PATHS)} paths probed: 0 answered")


def test_a_leaking_server_fails_on_each_leak(leaky_port: int, certificate: tuple[Path, Path]) -> None:
    checks = run_probe(_target(leaky_port, certificate))
    found = _by_name(checks)
    assert found["exposure /.git/HEAD"].status == "fail" and "a git HEAD" in found["exposure /.git/HEAD"].detail
    pem = found["exposure /var/dcc-signer/signer-key.pem"]
    assert pem.status == "fail" and "PEM" in pem.detail and "DCC signer key" in pem.detail
    assert found["exposure probe"].status == "fail" and "2 answered sensitive content" in found["exposure probe"].detail
    for page in ("headers /", "headers /login/"):
        assert found[page].status == "fail"
        assert "no Strict-Transport-Security" in found[page].detail and "names a version" in found[page].detail
    assert "BEGIN PRIVATE KEY" not in str(checks)  # what leaked is named, never copied


def test_an_untrusted_certificate_fails_but_the_rest_is_probed(leaky_port: int, certificate: tuple[Path, Path]) -> None:
    target = ProbeTarget.from_url(f"https://127.0.0.1:{leaky_port}", server_name=SERVER_NAME, timeout=5)  # no --ca-file
    found = _by_name(run_probe(target))
    assert found["tls certificate"].status == "fail" and "not trusted" in found["tls certificate"].detail
    assert found["exposure /.git/HEAD"].status == "fail"


def test_a_wrong_host_name_fails(clean_port: int, certificate: tuple[Path, Path]) -> None:
    target = replace(_target(clean_port, certificate), server_name="other.test")
    assert _by_name(run_probe(target))["tls certificate"].status == "fail"


def _plain(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[int]:
    yield from _serve(http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler))


class _Redirect(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(301)
        self.send_header("Location", f"https://{SERVER_NAME}/")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_plain_http_must_redirect_to_https(clean_port: int, certificate: tuple[Path, Path]) -> None:
    for handler, status in ((_Redirect, "pass"), (_handler(leaky=False), "fail")):
        for port in _plain(handler):
            target = replace(_target(clean_port, certificate), http_port=port)
            assert _by_name(run_probe(target))["http redirect"].status == status


@pytest.mark.parametrize(
    ("body", "leak"),
    [
        (b"ref: refs/heads/main\n", "git HEAD"),
        (b"[core]\n\trepositoryformatversion = 0\n", "config"),
        (b"SQLite format 3\x00\x10\x00", "SQLite"),
        (b"DJANGO_SECRET_KEY=abc\nRELAIS_MASTER_KEY=def\n", "env file"),
        (b"<html><head><title>Index of /static/</title>", "directory listing"),
        (b"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA==\n", "secret key file"),
        (b'{"version":3,"sources":["a.js"],"mappings":"AAAA"}', "source map"),
        (b"2026-12-01 05:00:00,123 INFO relais request=abc started\n", "log file"),
        (b"root:x:0:0:root:/root:/bin/bash\n", "/etc/passwd"),
    ],
)
def test_leak_signatures(body: bytes, leak: str) -> None:
    assert leak in (leak_signature(body) or "")
    assert classify(Answer(200, {}, body))[0] == "fail"
    assert classify(Answer(404, {}, body))[0] == "pass"  # refused: whatever the error page says


def test_generic_pages_are_not_leaks() -> None:
    page = Path(__file__).resolve().parents[2] / "relais" / "templates"
    for template in page.rglob("*.html"):
        assert leak_signature(template.read_bytes()) is None, template
    assert len(SIGNATURES) >= 10


def test_header_rules() -> None:
    assert header_problems({k.lower(): v for k, v in GOOD_HEADERS.items()} | {"server": "nginx"}) == []
    weak = {"strict-transport-security": "max-age=3600", "content-security-policy": "default-src 'self'", "server": "Apache/2.4.1"}
    problems = header_problems(weak)
    assert "HSTS max-age 3600 < 31536000" in problems and "neither X-Frame-Options nor CSP frame-ancestors" in problems
    assert "Server or X-Powered-By names a version" in problems


def test_a_server_accepting_tls_1_1_fails(certificate: tuple[Path, Path]) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(leaky=False))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.load_cert_chain(str(certificate[0]), str(certificate[1]))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    for port in _serve(server):
        check = _by_name(run_probe(_target(port, certificate)))["tls legacy versions"]
        assert check.status == "fail" and "accepted TLSv1" in check.detail
