"""Outside checks of `manage.py doctor --url`: TLS, certificate, security headers, http -> https, and an exposure probe.

Standard library only (http.client, ssl), a timeout on every request, a few requests at a time. The exposure probe asks
for paths a scanner would try (EXPOSURE_PATHS, each with what it would leak) and fails a path only when it answers with
content that looks like the file: a git HEAD, a PEM block, an SQLite header, an env file, a directory listing...; a 404,
403, 400, a redirect or a generic page passes.
"""

from __future__ import annotations

import http.client
import re
import socket
import ssl
import threading
import warnings
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from urllib.parse import urlsplit

from relais.ops.result import Check, Status

HSTS_MIN_SECONDS = 31_536_000  # one year
CERT_WARN_DAYS = 30
BODY_LIMIT = 65_536  # bytes of a body read to look for a leak


@dataclass(frozen=True)
class Exposure:
    path: str
    leaks: str


def _paths() -> list[Exposure]:
    """Every path the exposure probe asks for. Keep it data: one place, each path with what it would give away."""
    found: list[Exposure] = []

    def add(leaks: str, *paths: str) -> None:
        found.extend(Exposure(p, leaks) for p in paths)

    # Version control: the whole source and its history, sometimes credentials in remotes.
    add("git repository (source, history)", "/.git/HEAD", "/.git/config", "/.git/index", "/.git/logs/HEAD", "/.git/ORIG_HEAD")
    add("git repository (source, history)", "/.git/FETCH_HEAD", "/.git/packed-refs", "/.git/refs/heads/main", "/.git/description")
    add("git repository (source, history)", "/.git/", "/.gitignore", "/.gitmodules", "/static/.git/HEAD", "/var/.git/HEAD")
    add("subversion working copy", "/.svn/entries", "/.svn/wc.db", "/.svn/")
    add("mercurial repository", "/.hg/hgrc", "/.hg/store/00manifest.i", "/.hg/requires", "/.bzr/branch-format", "/CVS/Root", "/CVS/Entries")
    # Environment and settings files, and the copies editors and admins leave behind.
    add("environment file (secrets)", "/.env", "/.env.local", "/.env.production", "/.env.prod", "/.env.dev", "/.env.backup")
    add("environment file (secrets)", "/.env.bak", "/.env.old", "/.env.save", "/.env~", "/env", "/.envrc", "/static/.env", "/var/.env")
    add("settings source (secrets)", "/relais/settings.py", "/settings.py", "/settings.py.bak", "/settings.py.old", "/settings.py~")
    add("settings source (secrets)", "/settings.py.swp", "/relais/.settings.py.swp", "/relais/settings.py.orig", "/local_settings.py")
    add("settings source (secrets)", "/relais/settings.pyc", "/relais/__pycache__/settings.cpython-311.pyc", "/manage.py")
    add("editor or backup copy", "/index.php.bak", "/index.html.old", "/.DS_Store", "/Thumbs.db", "/backup.zip", "/backup.tar.gz")
    add("editor or backup copy", "/site.tar.gz", "/relais.zip", "/relais.tar.gz", "/www.zip", "/old/", "/backup/", "/backups/")
    # Database files and dumps: every patient.
    add("SQLite database (every patient)", "/relais.sqlite3", "/var/relais.sqlite3", "/var/relais.sqlite3-wal", "/var/relais.sqlite3-shm")
    add("SQLite database (every patient)", "/db.sqlite3", "/db.sqlite", "/database.sqlite", "/data.db", "/static/relais.sqlite3")
    add("database dump (every patient)", "/dump.sql", "/db.sql", "/database.sql", "/backup.sql", "/relais.sql", "/data.sql")
    add("database dump (every patient)", "/dump.sql.gz", "/relais.dump", "/pg_dump.sql", "/var/backups/", "/var/backups-test/")
    add("encrypted backup (every patient, offline attack)", "/backups/latest.relaisbackup", "/var/backups/latest.relaisbackup")
    # Configuration of the stack.
    add("deployment configuration", "/docker-compose.yml", "/docker-compose.yaml", "/Dockerfile", "/config.json", "/config.yml")
    add("deployment configuration", "/config.yaml", "/config.php", "/configuration.php", "/wp-config.php", "/wp-config.php.bak")
    add("deployment configuration", "/web.config", "/.htaccess", "/.htpasswd", "/nginx.conf", "/Caddyfile", "/gunicorn.conf.py")
    add("deployment configuration", "/Makefile", "/pyproject.toml", "/requirements.txt", "/package.json", "/composer.json")
    add("deployment configuration", "/deploy/", "/deploy/nginx.conf", "/.ci/run", "/.github/workflows/", "/id_rsa", "/.ssh/id_rsa")
    add("deployment configuration", "/.aws/credentials", "/.npmrc", "/.pypirc", "/.netrc", "/.bash_history", "/server-status")
    # Relais' own folders: secrets, keys, the signer, certificates, logs, demo logins, the sandbox's messages.
    for name in ("django_secret_key", "relais_master_key", "relais_blind_index_key", "relais_webhook_signing_key"):
        add("Relais secret", f"/var/secrets/{name}", f"/secrets/{name}")
    add("Relais secret", "/var/secrets/relais_audit_signing_key", "/var/secrets/relais_backup_key", "/var/secrets/", "/var/")
    add("retention keys (crypto-shredding)", "/var/keys/", "/var/keys-test/", "/keys/")
    add(
        "DCC signer key",
        "/var/dcc-signer/signer-key.pem",
        "/var/dcc-signer/signer-cert.pem",
        "/var/dcc-signer/",
        "/dcc-signer/signer-key.pem",
    )
    add("transfer TLS keys", "/var/certs/client-key.pem", "/var/certs/server-key.pem", "/var/certs/ca-key.pem", "/var/certs/client.pem")
    add("transfer TLS keys", "/var/certs/ca.pem", "/var/certs/", "/certs/client-key.pem")
    add("application log", "/var/log/relais.log", "/var/log/", "/log/relais.log", "/logs/", "/relais.log", "/error.log", "/access.log")
    add("application log", "/debug.log", "/nohup.out", "/gunicorn.log", "/var/log/relais.log.1")
    add("demo logins (passwords)", "/var/demo-logins.txt", "/demo-logins.txt")
    add("audit checkpoints and breach drafts", "/var/audit-checkpoints.jsonl", "/var/breach/", "/var/media/")
    add("sandbox messages (patients' mail and SMS)", "/.sandbox/", "/.sandbox/mail/", "/.sandbox/sms/", "/sandbox/", "/.venv/")
    # Debug and admin pages.
    add("debug page", "/__debug__/", "/__debug__/sql/", "/admin/", "/admin/login/", "/django-admin/", "/debug/", "/?debug=1")
    add("debug page", "/login/?debug=true", "/phpinfo.php", "/info.php", "/test.php", "/console", "/actuator/env", "/elmah.axd")
    add("debug page", "/_profiler/", "/trace.axd", "/graphql", "/metrics?debug=1")
    # Static folder listing and source maps (real names are added from the collected files by doctor).
    add("static folder listing", "/static/", "/static/ninja/", "/static/admin/", "/media/")
    add("source map (unminified source)", "/static/ninja/swagger-ui-bundle.js.map", "/static/ninja/swagger-ui.css.map")
    add("source map (unminified source)", "/static/ninja/redoc.standalone.js.map", "/static/staticfiles.json")
    # Traversal out of the static folder: literal, encoded, double-encoded, backslashes, doubled slashes.
    target = "var/secrets/relais_master_key"
    add("Relais secret (traversal)", f"/static/../{target}", f"/static/%2e%2e/{target}", f"/static/%2E%2E/{target}")
    add("Relais secret (traversal)", f"/static/%252e%252e/{target}", f"/static/..%2f{target}", f"/static/..%2F{target.replace('/', '%2F')}")
    add("Relais secret (traversal)", f"/static/..\\{target.replace('/', chr(92))}", f"/static/..%5c{target}", f"//{target}")
    add("Relais secret (traversal)", f"/static//../../{target}", f"/static/....//{target}", f"/static/.%2e/{target}")
    add(
        "SQLite database (traversal)",
        "/static/../var/relais.sqlite3",
        "/static/%2e%2e/var/relais.sqlite3",
        "/static/..%2fvar%2frelais.sqlite3",
    )
    add("settings source (traversal)", "/static/../relais/settings.py", "/static/%2e%2e/%2e%2e/relais/settings.py", "/static/../.env")
    add(
        "system file (traversal)",
        "/static/../../../../etc/passwd",
        "/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/..%2f..%2f..%2fetc/passwd",
    )
    add("system file (traversal)", "/static/..%252f..%252f..%252fetc/passwd", "/static/%c0%ae%c0%ae/etc/passwd", "//etc/passwd")
    return found


EXPOSURE_PATHS: tuple[Exposure, ...] = tuple(_paths())

# What a leaked file looks like: the first matching signature names the leak. Checked on 2xx answers only.
SIGNATURES: tuple[tuple[str, re.Pattern[bytes]], ...] = (
    ("a git HEAD or ref", re.compile(rb"\Aref: refs/|\A[0-9a-f]{40}\s*\Z")),
    ("a git or mercurial config", re.compile(rb"^\[(core|remote \"|branch \"|paths|ui)\]", re.M)),
    ("a PEM block (key or certificate)", re.compile(rb"-----BEGIN (?!PUBLIC KEY)[A-Z0-9 ]+-----")),  # public keys are public
    ("an SQLite database", re.compile(rb"\ASQLite format 3\x00")),
    ("a PostgreSQL dump", re.compile(rb"\APGDMP|^(CREATE TABLE|INSERT INTO|COPY public\.)", re.M)),
    ("a directory listing", re.compile(rb"<title>(Index of|Directory listing)|<h1>Index of ", re.I)),
    ("an env file", re.compile(rb"(^[A-Z][A-Z0-9_]{2,}\s*=\s*\S.*\n){2}", re.M)),
    ("a secret key file", re.compile(rb"\A[A-Za-z0-9_\-+/]{40,100}={0,2}\s*\Z")),
    ("Python source", re.compile(rb"^(from [\w.]+ import |import [\w.]+$|def \w+\(.*\):$)", re.M)),
    ("PHP source", re.compile(rb"<\?php")),
    ("a Django debug page", re.compile(rb"You're seeing this error because you have <code>DEBUG = True|Traceback \(most recent call")),
    ("a source map", re.compile(rb"\"mappings\"\s*:")),
    ("a log file", re.compile(rb"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d[,.]\d+ (DEBUG|INFO|WARNING|ERROR) ", re.M)),
    ("a table of logins", re.compile(rb"(^\s+\S+\s+\S+@\S+\s+\S{8,}\s*\n){2}", re.M)),
    ("/etc/passwd", re.compile(rb"^root:.*:0:0:", re.M)),
    ("a backup archive", re.compile(rb"\APK\x03\x04|\A\x1f\x8b|\ARELAISBK")),
    ("a YAML or TOML configuration", re.compile(rb"^(services|version):\s|^\[(project|tool\.\w+)\]\s*$", re.M)),
)


def leak_signature(body: bytes) -> str | None:
    for label, pattern in SIGNATURES:
        if pattern.search(body):
            return label
    return None


@dataclass(frozen=True)
class ProbeTarget:
    host: str  # where to connect (a name or an address)
    port: int
    server_name: str  # what to send as SNI and Host, and check the certificate against
    base_path: str = ""
    ca_file: str | None = None
    timeout: float = 5.0
    http_port: int | None = 80  # where plain http is tried (None: not tried)
    verify: bool = True

    @classmethod
    def from_url(cls, url: str, *, ca_file: str | None = None, server_name: str | None = None, timeout: float = 5.0) -> ProbeTarget:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError("--url must be an https:// address")
        port = parts.port or 443
        return cls(
            host=parts.hostname,
            port=port,
            server_name=server_name or parts.hostname,
            base_path=parts.path.rstrip("/"),
            ca_file=ca_file,
            timeout=timeout,
            http_port=80 if port == 443 else None,
        )


def _context(target: ProbeTarget) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=target.ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not target.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class _Connection(http.client.HTTPSConnection):
    """HTTPS to ``host`` with SNI (and, through the Host header, the virtual host) ``server_name``."""

    def __init__(self, target: ProbeTarget, context: ssl.SSLContext) -> None:
        super().__init__(target.host, target.port, timeout=target.timeout, context=context)
        self._server_name = target.server_name
        self._tls_context = context

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._tls_context.wrap_socket(self.sock, server_hostname=self._server_name)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes


def _headers(response: http.client.HTTPResponse) -> dict[str, str]:
    found: dict[str, list[str]] = {}
    for name, value in response.getheaders():
        found.setdefault(name.lower(), []).append(value)
    return {name: ", ".join(values) for name, values in found.items()}


def fetch(target: ProbeTarget, path: str, *, context: ssl.SSLContext | None = None, connection: _Connection | None = None) -> Answer:
    """GET ``path`` (sent as given: no normalisation, so traversal variants reach the server as written)."""
    conn = connection or _Connection(target, context or _context(target))
    try:
        conn.request("GET", target.base_path + path, headers={"Host": target.server_name, "User-Agent": "relais-doctor", "Accept": "*/*"})
        response = conn.getresponse()
        body = response.read(BODY_LIMIT)
        if not response.isclosed():
            if response.length is not None and response.length <= 16 * BODY_LIMIT:
                response.read()  # a known, small rest: read it so the connection can be reused
            else:
                conn.close()  # a large or chunked rest: drop the connection (http.client reopens it on the next request)
        return Answer(response.status, _headers(response), body)
    finally:
        if connection is None:
            conn.close()


# ---------------------------------------------------------------------------------------------------------------- TLS


def check_tls(target: ProbeTarget) -> list[Check]:
    """The version negotiated and the certificate (chain, host name, days left), then whether TLS < 1.2 is accepted."""
    checks = []
    try:
        with socket.create_connection((target.host, target.port), timeout=target.timeout) as raw:
            with _context(target).wrap_socket(raw, server_hostname=target.server_name) as tls:
                version = tls.version() or "unknown"
                cert = tls.getpeercert() or {}
        not_after = datetime.fromtimestamp(ssl.cert_time_to_seconds(str(cert["notAfter"])), UTC)
        days = (not_after - datetime.now(UTC)).total_seconds() / 86400
        status: Status = "warn" if days < CERT_WARN_DAYS else "pass"
        detail = f"valid for {target.server_name}, until {not_after:%Y-%m-%d} ({days:.0f} days left)"
        checks.append(Check("tls certificate", status, detail))
        checks.append(Check("tls version", "pass" if version in {"TLSv1.2", "TLSv1.3"} else "fail", f"negotiated {version}"))
    except ssl.SSLCertVerificationError as exc:
        checks.append(Check("tls certificate", "fail", f"not trusted for {target.server_name}: {exc.verify_message}"))
        version = _negotiated(replace(target, verify=False))
        checks.append(Check("tls version", "pass" if version in {"TLSv1.2", "TLSv1.3"} else "fail", f"negotiated {version}"))
    except (OSError, ssl.SSLError) as exc:
        checks.append(Check("tls version", "fail", f"no TLS 1.2+ handshake with {target.host}:{target.port} ({type(exc).__name__})"))
        return checks
    checks.append(_legacy_tls(target))
    return checks


def _negotiated(target: ProbeTarget) -> str:
    try:
        with socket.create_connection((target.host, target.port), timeout=target.timeout) as raw:
            with _context(target).wrap_socket(raw, server_hostname=target.server_name) as tls:
                return tls.version() or "unknown"
    except (OSError, ssl.SSLError) as exc:
        return f"none ({type(exc).__name__})"


def _legacy_tls(target: ProbeTarget) -> Check:
    """Offer only TLS 1.0-1.1 (our side lowered to allow them): the server must refuse the handshake."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with warnings.catch_warnings():  # deprecated on purpose: offering them is the test
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.maximum_version = ssl.TLSVersion.TLSv1_1
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    except (ValueError, ssl.SSLError):
        return Check("tls legacy versions", "warn", "this Python's OpenSSL cannot offer TLS 1.0/1.1: not tested")
    try:
        with socket.create_connection((target.host, target.port), timeout=target.timeout) as raw:
            with context.wrap_socket(raw, server_hostname=target.server_name) as tls:
                version = tls.version()
    except (OSError, ssl.SSLError):
        return Check("tls legacy versions", "pass", "TLS 1.0 and 1.1 refused")
    return Check("tls legacy versions", "fail", f"the server accepted {version}: allow TLS 1.2 and 1.3 only")


# ------------------------------------------------------------------------------------------------------------ headers


def header_problems(headers: dict[str, str]) -> list[str]:
    problems = []
    hsts = re.search(r"max-age=(\d+)", headers.get("strict-transport-security", ""))
    if not hsts:
        problems.append("no Strict-Transport-Security")
    elif int(hsts.group(1)) < HSTS_MIN_SECONDS:
        problems.append(f"HSTS max-age {hsts.group(1)} < {HSTS_MIN_SECONDS}")
    csp = headers.get("content-security-policy", "")
    if not csp:
        problems.append("no Content-Security-Policy")
    if headers.get("x-content-type-options", "").lower() != "nosniff":
        problems.append("no X-Content-Type-Options: nosniff")
    if not headers.get("x-frame-options") and "frame-ancestors" not in csp:
        problems.append("neither X-Frame-Options nor CSP frame-ancestors")
    if not headers.get("referrer-policy"):
        problems.append("no Referrer-Policy")
    if re.search(r"\d", headers.get("server", "")) or headers.get("x-powered-by"):
        problems.append("Server or X-Powered-By names a version")
    return problems


def check_headers(target: ProbeTarget, path: str, context: ssl.SSLContext) -> Check:
    name = f"headers {path}"
    try:
        answer = fetch(target, path, context=context)
    except (OSError, http.client.HTTPException) as exc:
        return Check(name, "fail", f"no answer ({type(exc).__name__})")
    problems = header_problems(answer.headers)
    if problems:
        return Check(name, "fail", f"HTTP {answer.status}: {'; '.join(problems)}")
    return Check(name, "pass", f"HTTP {answer.status}: HSTS, CSP, nosniff, framing, referrer policy; no version in Server")


def check_http_redirect(target: ProbeTarget) -> Check:
    if target.http_port is None:
        return Check("http redirect", "pass", "not probed (https on a custom port; plain http port unknown)")
    conn = http.client.HTTPConnection(target.host, target.http_port, timeout=target.timeout)
    try:
        conn.request("GET", target.base_path + "/", headers={"Host": target.server_name})
        response = conn.getresponse()
        location = response.getheader("Location", "")
        response.read(BODY_LIMIT)
    except (OSError, http.client.HTTPException):
        return Check("http redirect", "pass", f"nothing answers plain http on port {target.http_port}")
    finally:
        conn.close()
    if response.status in {301, 302, 307, 308} and location.startswith("https://"):
        return Check("http redirect", "pass", f"http answers {response.status} to https")
    return Check("http redirect", "fail", f"http answers {response.status} without a redirect to https://")


# ----------------------------------------------------------------------------------------------------------- exposure


def classify(answer: Answer) -> tuple[Status, str]:
    """pass: refused, redirected or nothing that looks like a file; fail: 2xx with a leak's signature; warn: 5xx."""
    if 200 <= answer.status < 300:
        leak = leak_signature(answer.body)
        if leak:
            return "fail", f"HTTP {answer.status} with {leak}"
        return "pass", f"HTTP {answer.status}, a generic page"
    if answer.status >= 500:
        return "warn", f"HTTP {answer.status}: the server failed on it, see its log"
    return "pass", f"HTTP {answer.status}"


def check_exposure(target: ProbeTarget, paths: Iterable[Exposure], context: ssl.SSLContext, *, concurrency: int = 4) -> list[Check]:
    """One line per path that leaks (fail) or errs (warn), then a summary line; connections reused per thread."""
    local = threading.local()

    def probe(item: Exposure) -> tuple[Exposure, Status, str]:
        for attempt in range(2):
            conn = getattr(local, "conn", None) or _Connection(target, context)
            local.conn = conn
            try:
                status, detail = classify(fetch(target, item.path, connection=conn))
                if status != "pass" or attempt:
                    conn.close()
                    local.conn = None
                return item, status, detail
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                local.conn = None
                if attempt:
                    return item, "warn", f"no answer ({type(exc).__name__})"
        raise AssertionError("unreachable")

    items = list(dict.fromkeys(paths))
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        results = list(pool.map(probe, items))
    checks = [
        Check(f"exposure {item.path}", status, f"{detail} (would leak: {item.leaks})")
        for item, status, detail in results
        if status != "pass"
    ]
    failed = sum(1 for c in checks if c.status == "fail")
    summary_status: Status = "fail" if failed else "warn" if checks else "pass"
    detail = f"{len(items)} paths probed: {failed} answered sensitive content" + (
        f", {len(checks) - failed} errors" if len(checks) > failed else ""
    )
    return [*checks, Check("exposure probe", summary_status, detail)]


def run_probe(target: ProbeTarget, *, concurrency: int = 4, extra_paths: Iterable[Exposure] = ()) -> list[Check]:
    checks = check_tls(target)
    if any(c.name == "tls version" and c.status == "fail" for c in checks):
        return checks
    trusted = not any(c.name == "tls certificate" and c.status == "fail" for c in checks)
    # An untrusted certificate is already a fail; the rest is still probed, without verification, to report it all.
    context = _context(target if trusted else replace(target, verify=False))
    checks += [check_headers(target, "/", context), check_headers(target, "/login/", context), check_http_redirect(target)]
    checks += check_exposure(target, [*EXPOSURE_PATHS, *extra_paths], context, concurrency=concurrency)
    return checks
