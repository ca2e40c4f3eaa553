"""The reference production stack of deploy/, brought up on loopback from its own files for tests/deploy/test_stack.py.

Everything runs as the current user under one temporary folder: a throwaway PostgreSQL (scripts/pg-test-server), the
secrets deploy/make-secrets writes, the settings of deploy/relais.env.example (only paths, host names and ports
replaced), gunicorn with deploy/gunicorn.conf.py on a unix socket handed over the way systemd's relais-web.socket does,
`manage.py run_workers`, the national-platform sandbox, and Debian's nginx with deploy/nginx/relais.conf.in rendered by
deploy/render. Only the few lines nginx needs around that site file (pid, temp folders, a user) are written here.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PY = sys.executable
BIN = Path(PY).parent
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
PASSWORD = "violet-tramway-cactus-41"
# Production paths in deploy/ and where the stack puts them.
PRODUCTION_ROOTS = ("/etc/relais/secrets", "/var/lib/relais", "/srv/relais", "/etc/relais/transfer-certs")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def read_env_file(path: Path) -> dict[str, str]:
    """systemd EnvironmentFile syntax as deploy/relais.env.example uses it: NAME=value, # comments."""
    values = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, value = line.partition("=")
        values[name] = value
    return values


# --- TLS ------------------------------------------------------------------------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_tls(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost; returns (ca, cert, key) paths."""
    import ipaddress

    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("Relais stack test CA"))
        .issuer_name(_name("Relais stack test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)  # keyCertSign, cRLSign
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=90))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    ca_path, cert_path, key_path = folder / "ca.pem", folder / "server.pem", folder / "server-key.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    key_path.chmod(0o600)
    return ca_path, cert_path, key_path


# --- HTTP client through the proxy ------------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Browser:
    """A client of https://127.0.0.1:port connecting from ``source`` (127.0.0.1, 127.0.0.2: both loopback)."""

    port: int
    context: ssl.SSLContext
    source: str = "127.0.0.1"
    cookies: dict[str, str] = field(default_factory=dict)

    @property
    def origin(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def request(self, method: str, path: str, *, body: bytes | None = None, headers: dict[str, str] | None = None) -> Answer:
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.context, timeout=30, source_address=(self.source, 0))
        sent = {"Accept-Language": "en", **(headers or {})}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        try:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            answer = Answer(response.status, response.headers, response.read())
        finally:
            conn.close()
        for header in answer.headers.get_all("Set-Cookie") or []:
            jar: SimpleCookie = SimpleCookie()
            jar.load(header)
            for name, morsel in jar.items():
                self.cookies[name] = morsel.value
        return answer

    def get(self, path: str, **headers: str) -> Answer:
        return self.request("GET", path, headers=headers)

    def post_form(self, path: str, fields: dict[str, str], *, headers: dict[str, str] | None = None) -> Answer:
        body = urllib.parse.urlencode(fields).encode()
        sent = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Origin": self.origin,
            "Referer": f"{self.origin}{path}",
            **(headers or {}),
        }
        return self.request("POST", path, body=body, headers=sent)

    def post_json(self, path: str, payload: Any, **headers: str) -> Answer:
        sent = {"Content-Type": "application/json", **headers}
        return self.request("POST", path, body=json.dumps(payload).encode(), headers=sent)

    def form_token(self, path: str) -> str:
        page = self.get(path)
        assert page.status == 200, (path, page.status, page.text[:500])
        found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert found, f"no CSRF token on {path}"
        return found.group(1)

    def login_password(self, email: str, password: str, *, headers: dict[str, str] | None = None) -> Answer:
        token = self.form_token("/login/")
        return self.post_form("/login/", {"username": email, "password": password, "csrfmiddlewaretoken": token}, headers=headers)


# --- Processes ----------------------------------------------------------------------------------------------------------


@dataclass
class Stack:
    tmp: Path
    exits: ExitStack
    timings: dict[str, float] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    https_port: int = 0
    http_port: int = 0
    ca: Path = Path()
    logs: Path = Path()

    def step(self, name: str, started: float) -> None:
        self.timings[name] = round(time.monotonic() - started, 2)

    def manage(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([PY, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            output = f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            raise AssertionError(f"manage.py {' '.join(args)} exited {result.returncode}:\n{output}")
        return result

    def spawn(self, name: str, argv: list[str], *, stop: int = signal.SIGTERM, **kwargs: Any) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{name}.log", "wb")  # closed by the exit stack
        self.exits.callback(log.close)
        process = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, **kwargs)
        self.exits.callback(_stop, process, stop)
        return process

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.logs / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def _stop(process: subprocess.Popen[bytes], signum: int) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signum)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_for(what: str, probe: Callable[[], bool], *, timeout: float = 30, alive: Callable[[], bool] = lambda: True) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise AssertionError(f"{what}: the process exited")
        try:
            if probe():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{what}: not ready after {timeout} s")


# --- PostgreSQL -----------------------------------------------------------------------------------------------------------


def start_postgres(stack: Stack, port: int) -> str:
    """A fresh database on the throwaway server at ``port`` (started unless already running); dropped at exit."""
    import psycopg

    env = {**os.environ, "RELAIS_PG_TEST_PORT": str(port)}
    admin_url = f"postgresql://relais@127.0.0.1:{port}/postgres"
    try:
        psycopg.connect(admin_url, connect_timeout=2).close()
        running = True
    except psycopg.OperationalError:
        running = False
    if not running:
        subprocess.run([str(ROOT / "scripts" / "pg-test-server"), "start"], env=env, check=True, capture_output=True, timeout=120)
        stack.exits.callback(subprocess.run, [str(ROOT / "scripts" / "pg-test-server"), "stop"], env=env, capture_output=True, timeout=60)
    name = f"relais_stack_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")  # a generated identifier, no input

    def drop() -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    stack.exits.callback(drop)
    return f"postgresql://relais@127.0.0.1:{port}/{name}"


# --- Settings from deploy/relais.env.example ----------------------------------------------------------------------------


def production_env(stack: Stack, *, database_url: str, sandbox_ports: dict[str, int], sandbox_certs: Path) -> dict[str, str]:
    """The example environment file with its production paths moved under tmp and its hosts made loopback."""
    tmp = stack.tmp
    places = {
        "/etc/relais/secrets": tmp / "secrets",
        "/var/lib/relais": tmp / "var",
        "/srv/relais": tmp / "srv",
        "/etc/relais/transfer-certs": sandbox_certs,
    }
    example = read_env_file(DEPLOY / "relais.env.example")
    env: dict[str, str] = {}
    for name, value in example.items():
        for prefix, place in places.items():
            if value == prefix or value.startswith(prefix + "/"):
                value = str(place) + value[len(prefix) :]
        env[name] = value
    # Secrets a provider issues (SMTP, SMS gateway): this stack talks to no provider.
    for provided in ("RELAIS_SMTP_PASSWORD_FILE", "RELAIS_SMS_GATEWAY_TOKEN_FILE"):
        env.pop(provided)
    public = f"https://127.0.0.1:{stack.https_port}"
    env.update(
        {
            "RELAIS_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "RELAIS_PUBLIC_URL": public,
            "DATABASE_URL": database_url,
            "RELAIS_SANDBOX_HOST": "127.0.0.1",
            "RELAIS_SANDBOX_MLLP_PORT": str(sandbox_ports["mllp"]),
            "RELAIS_SANDBOX_HTTPS_PORT": str(sandbox_ports["https"]),
            "RELAIS_SMTP_HOST": "127.0.0.1",
            "RELAIS_SMTP_PORT": str(free_port()),
            "RELAIS_SMTP_STARTTLS": "0",
            "RELAIS_SMTP_USER": "",
            "RELAIS_SMS_GATEWAY_URL": f"http://127.0.0.1:{free_port()}/messages",
            "RELAIS_GUNICORN_WORKERS": "2",
        }
    )
    leftovers = [f"{k}={v}" for k, v in env.items() if any(v.startswith(p) for p in PRODUCTION_ROOTS) or "example.org" in v]
    assert not leftovers or all(k.startswith(("RELAIS_MAIL_FROM", "RELAIS_DPO_EMAIL")) for k in leftovers), leftovers
    # A clean environment, as systemd gives a service.
    base = {k: os.environ[k] for k in ("PATH", "LANG", "HOME", "TMPDIR") if k in os.environ}
    return {**base, "PYTHONDONTWRITEBYTECODE": "1", **env}


def nginx_main_conf(stack: Stack, site: Path) -> Path:
    """The few main-context lines Debian's /etc/nginx/nginx.conf holds, pointed at tmp, around the rendered site file."""
    run = stack.tmp / "nginx"
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (run / sub).mkdir(parents=True, exist_ok=True)
    user = ""
    if os.geteuid() == 0:
        import grp
        import pwd

        user = f"user {pwd.getpwuid(os.getuid()).pw_name} {grp.getgrgid(os.getgid()).gr_name};\n"
    conf = run / "nginx.conf"
    conf.write_text(
        f"{user}worker_processes 1;\npid {run}/nginx.pid;\nerror_log {stack.logs}/nginx-main-error.log warn;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        "    include /etc/nginx/mime.types;\n    default_type application/octet-stream;\n    sendfile on;\n"
        f"    client_body_temp_path {run}/body;\n    proxy_temp_path {run}/proxy;\n    fastcgi_temp_path {run}/fastcgi;\n"
        f"    uwsgi_temp_path {run}/uwsgi;\n    scgi_temp_path {run}/scgi;\n"
        f"    include {site};\n"
        "}\n"
    )
    return conf


GUNICORN_WITH_SOCKET = """
import os, sys
# What systemd does for relais-web.socket: the listening socket as fd 3, LISTEN_FDS and LISTEN_PID for this process.
fd = int(sys.argv[1])
if fd != 3:
    os.dup2(fd, 3)
os.set_inheritable(3, True)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.argv[2], sys.argv[2:])
"""


def start_gunicorn(stack: Stack, socket_path: Path) -> subprocess.Popen[bytes]:
    socket_path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(socket_path))
    os.chmod(socket_path, 0o660)  # relais-web.socket: SocketMode=0660
    listener.listen(128)
    stack.exits.callback(listener.close)
    argv = [PY, "-c", GUNICORN_WITH_SOCKET, str(listener.fileno()), str(BIN / "gunicorn"), "-c", str(DEPLOY / "gunicorn.conf.py")]
    metrics = stack.tmp / "run-metrics"  # relais-web.service: RuntimeDirectory=relais-metrics, PROMETHEUS_MULTIPROC_DIR
    metrics.mkdir(mode=0o700, exist_ok=True)
    env = {**stack.env, "PROMETHEUS_MULTIPROC_DIR": str(metrics)}
    return stack.spawn("gunicorn", argv, env=env, pass_fds=(listener.fileno(),))
