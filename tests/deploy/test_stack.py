"""The reference production stack tested as deployed: nginx (TLS, static allowlist) -> gunicorn (unix socket) -> Django
with RELAIS_ENV=production on PostgreSQL, the workers and the national-platform sandbox, all from the files in deploy/.

Through the proxy: `manage.py doctor --url`, the exposure probe plus a file and a symlink dropped into STATIC_ROOT, one
pharmacist login (password and TOTP), one API submission acknowledged by the sandbox, and the proxy lockout scenario
(failures from one client address never lock another client's login to the same account). It runs once, on the SQLite
pass of `make test`, bringing its own PostgreSQL; it needs Debian's nginx (`make deploy-deps`).
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import time
import uuid
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.utils import timezone
from django_otp.oath import totp

from relais.certificates.keys import generate_dev_signer, write_signer
from tests.deploy.stack import (
    DEPLOY,
    NGINX,
    PASSWORD,
    PY,
    ROOT,
    Browser,
    Stack,
    free_port,
    make_tls,
    nginx_main_conf,
    production_env,
    start_gunicorn,
    start_postgres,
    wait_for,
)
from tests.transfer.live import start_sandbox

pytestmark = [
    pytest.mark.skipif(bool(os.environ.get("DATABASE_URL")), reason="runs once, on the SQLite pass: it brings its own PostgreSQL"),
    pytest.mark.skipif(
        NGINX is None and not os.environ.get("CI"),
        reason="the stack test needs Debian's nginx (`make deploy-deps` installs it); it is mandatory when CI is set",
    ),
]

PHARMACIST = "pharmacien@stack.test"
TARGET = "cible@stack.test"
ADMIN = "admin@stack.test"
SETUP = """
import json
from pathlib import Path
from django_otp.plugins.otp_totp.models import TOTPDevice
from relais.accounts.models import Role, User
from relais.accounts.services import pharmacy_create
from relais.api.services import apiclient_create
from relais.core.context import request_context

with request_context(channel="test"):
    pharmacy = pharmacy_create(actor=None, name="Pharmacie de la Pile", finess="750000010", address_line="1 rue du Test",
                               postcode="75010", city="Paris")
    users = {email: User.objects.create_user(email, "%(password)s", full_name=email.split("@")[0], role=role, pharmacy=pharmacy)
             for email, role in (("%(admin)s", Role.PHARMACY_ADMIN), ("%(pharmacist)s", Role.PHARMACIST), ("%(target)s", Role.PHARMACIST))}
    device = TOTPDevice.objects.create(user=users["%(pharmacist)s"], name="authenticator", confirmed=True)
    public_key = Path("%(public_key)s").read_text()
    client = apiclient_create(actor=users["%(admin)s"], pharmacy=pharmacy, name="LGO stack", public_key_pem=public_key)
print(json.dumps({"totp_key": device.key, "client_id": str(client.pk)}))
"""


def _totp_code(key_hex: str, used: set[int]) -> str:
    """The device's current code, waiting for the next 30-second window if this one's code was used already."""
    while int(time.time()) // 30 in used:
        time.sleep(0.2)
    used.add(int(time.time()) // 30)
    return f"{totp(bytes.fromhex(key_hex), step=30, t0=0, digits=6):06d}"


def _assertion(private: Any, client_id: str, audience: str) -> str:
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": audience, "iat": now, "exp": now + 120, "jti": uuid.uuid4().hex}
    return jwt.encode(claims, private, algorithm="ES256")


def _bring_up(stack: Stack, record: dict[str, Any]) -> tuple[dict[str, Any], ssl.SSLContext]:
    tmp = stack.tmp
    started = time.monotonic()
    stack.ca, server_cert, server_key = make_tls(tmp / "tls")
    stack.https_port, stack.http_port = free_port(), free_port()
    database_url = start_postgres(stack, int(os.environ.get("RELAIS_STACK_PG_PORT", "55433")))
    sandbox = start_sandbox(tmp, "--log-level", "WARNING")
    stack.exits.callback(sandbox.stop)
    stack.step("postgresql_and_sandbox", started)

    started = time.monotonic()
    for folder in ("var", "srv/static", "acme", "run"):
        (tmp / folder).mkdir(mode=0o700, parents=True, exist_ok=True)
    (tmp / "var" / "checkpoints-copy").mkdir(mode=0o700)
    made = subprocess.run(
        [PY, str(DEPLOY / "make-secrets"), "--dir", str(tmp / "secrets"), "--with-metrics-token"], cwd=ROOT, capture_output=True, text=True
    )
    assert made.returncode == 0, made.stderr
    write_signer(generate_dev_signer(), key_file=tmp / "secrets" / "dcc-signer-key.pem", cert_file=tmp / "secrets" / "dcc-signer-cert.pem")
    stack.env = production_env(stack, database_url=database_url, sandbox_ports=sandbox.ports, sandbox_certs=sandbox.certs)
    for line in made.stdout.splitlines():  # every secret make-secrets wrote is one the example file names
        name, _, path = line.partition("=")
        assert stack.env.get(name) == path.split()[0], f"{name} from make-secrets is not in deploy/relais.env.example"
    stack.manage("migrate", "--no-input", "-v", "0", timeout=300)
    stack.manage("collectstatic", "--no-input", "-v", "0")
    allowlist = tmp / "nginx-static-allowlist.conf"
    listed = subprocess.run(
        [PY, str(DEPLOY / "static-allowlist"), str(tmp / "srv" / "static"), str(allowlist)], capture_output=True, text=True
    )
    assert listed.returncode == 0, listed.stderr
    private = ec.generate_private_key(ec.SECP256R1())
    public_key = tmp / "lgo-public.pem"
    public_key.write_bytes(private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    setup = stack.manage(
        "shell",
        "-c",
        SETUP % {"password": PASSWORD, "admin": ADMIN, "pharmacist": PHARMACIST, "target": TARGET, "public_key": public_key},
    )
    record.update(json.loads(setup.stdout.strip().splitlines()[-1]), private=private)
    stack.step("migrate_collectstatic_setup", started)

    started = time.monotonic()
    workers = stack.spawn("workers", [PY, "manage.py", "run_workers", "--poll", "0.2"], env=stack.env)
    socket_path = tmp / "run" / "web.sock"
    gunicorn = start_gunicorn(stack, socket_path)
    site = tmp / "relais-site.conf"
    rendered = subprocess.run(
        [
            PY,
            str(DEPLOY / "render"),
            str(DEPLOY / "nginx" / "relais.conf.in"),
            f"STATIC_ALLOWLIST={allowlist}",
            f"SOCKET={socket_path}",
            f"HTTP_LISTEN=127.0.0.1:{stack.http_port}",
            f"HTTPS_LISTEN=127.0.0.1:{stack.https_port}",
            "SERVER_NAME=127.0.0.1",
            f"LOG_DIR={stack.logs}",
            f"ACME_ROOT={tmp / 'acme'}",
            f"PUBLIC_URL=https://127.0.0.1:{stack.https_port}",
            f"TLS_CERT={server_cert}",
            f"TLS_KEY={server_key}",
            f"STATIC_ROOT={tmp / 'srv' / 'static'}",
            "--out",
            str(site),
        ],
        capture_output=True,
        text=True,
    )
    assert rendered.returncode == 0, rendered.stderr
    conf = nginx_main_conf(stack, site)
    nginx_args = [str(NGINX), "-c", str(conf), "-p", str(tmp / "nginx"), "-e", str(stack.logs / "nginx-start.log")]
    checked = subprocess.run([*nginx_args, "-t"], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    nginx = stack.spawn("nginx", [*nginx_args, "-g", "daemon off;"], stop=15)
    context = ssl.create_default_context(cafile=str(stack.ca))
    probe = Browser(stack.https_port, context)

    def processes_alive() -> bool:
        return all(p.poll() is None for p in (workers, gunicorn, nginx))

    try:
        wait_for("the stack", lambda: probe.get("/healthz").status == 200, timeout=40, alive=processes_alive)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{stack.log_tail('gunicorn')}\n{stack.log_tail('nginx')}\n{stack.log_tail('workers')}") from None
    stack.step("processes_ready", started)
    record["sandbox"] = sandbox
    return record, context


def _check_tls_and_headers(stack: Stack, context: ssl.SSLContext) -> None:
    browser = Browser(stack.https_port, context)
    page = browser.get("/login/")
    assert page.status == 200
    assert page.headers.get_all("Strict-Transport-Security") == ["max-age=63072000; includeSubDomains; preload"]
    assert page.headers["Server"] == "nginx", "server_tokens off: no version"
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        pinned = ssl.create_default_context(cafile=str(stack.ca))
        pinned.minimum_version = pinned.maximum_version = version
        assert Browser(stack.https_port, pinned).get("/healthz").status == 200
    import http.client

    plain = http.client.HTTPConnection("127.0.0.1", stack.http_port, timeout=10)
    plain.request("GET", "/login/?next=/")
    redirect = plain.getresponse()
    assert redirect.status == 301 and redirect.headers["Location"] == f"https://127.0.0.1:{stack.https_port}/login/?next=/"
    plain.close()


def _check_logs_hold_no_link_token(stack: Stack, context: ssl.SSLContext) -> None:
    """nginx's and gunicorn's access lines replace result-link and invitation tokens and drop query strings."""
    browser = Browser(stack.https_port, context)
    token = "LinkTokenNeverLogged" + uuid.uuid4().hex
    for path in (f"/r/{token}", f"/invite/{token}/", f"/login/?next=/{token}"):
        assert browser.get(path).status < 500, path
    deadline = time.monotonic() + 5
    nginx_log = stack.logs / "relais-access.log"
    while "/invite/[token]" not in nginx_log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    for log in (nginx_log, stack.logs / "gunicorn.log"):
        text = log.read_text()
        assert "LinkTokenNeverLogged" not in text, log.name
        assert "/r/[link]" in text, log.name


def _check_static(stack: Stack, context: ssl.SSLContext) -> None:
    """Collected, hashed files are served; a dropped file, a symlink to a secret, the manifest and source maps are not."""
    static = stack.tmp / "srv" / "static"
    manifest = json.loads((static / "staticfiles.json").read_text())["paths"]
    browser = Browser(stack.https_port, context)
    hashed = manifest["relais.css"]
    served = browser.get(f"/static/{hashed}")
    assert served.status == 200 and served.headers["Content-Type"].startswith("text/css")
    assert "immutable" in served.headers["Cache-Control"] and served.headers["Strict-Transport-Security"]
    secret = Path(stack.env["RELAIS_MASTER_KEY_FILE"]).read_text().strip()
    (static / "dropped.txt").write_text("dropped after collection\n")
    (static / "link-to-secret").symlink_to(stack.env["RELAIS_MASTER_KEY_FILE"])
    for path in ("/static/dropped.txt", "/static/link-to-secret", "/static/staticfiles.json", "/static/relais.css", "/static/"):
        answer = browser.get(path)
        assert answer.status == 404, (path, answer.status)
        assert secret not in answer.text
    maps = [name for name in manifest.values() if name.endswith(".map")]
    for name in maps:
        assert browser.get(f"/static/{name}").status == 404, name
    # An allowlisted name swapped for a symlink to a secret (the 2020 leak, by another road): refused by disable_symlinks.
    original = static / hashed
    original.rename(static / "kept.css")
    original.symlink_to(stack.env["RELAIS_MASTER_KEY_FILE"])
    try:
        answer = browser.get(f"/static/{hashed}")
        assert answer.status in (403, 404) and secret not in answer.text, answer.status
    finally:
        original.unlink()
        (static / "kept.css").rename(original)


def _check_probe(stack: Stack) -> int:
    """relais.ops.probe (what `doctor --url` runs) with the http port too, plus the file and symlink dropped into
    STATIC_ROOT: nothing sensitive answers. Returns how many paths were asked."""
    from relais.ops.probe import EXPOSURE_PATHS, Exposure, ProbeTarget, run_probe

    target = ProbeTarget(host="127.0.0.1", port=stack.https_port, server_name="127.0.0.1", ca_file=str(stack.ca), http_port=stack.http_port)
    dropped = [
        Exposure("/static/dropped.txt", "a file dropped after collection"),
        Exposure("/static/link-to-secret", "a symlink to a secret"),
    ]
    checks = run_probe(target, extra_paths=dropped)
    problems = [c for c in checks if c.status != "pass"]
    assert not problems, problems
    assert {c.name for c in checks} >= {"tls version", "tls certificate", "http redirect", "exposure probe"}, [c.name for c in checks]
    return len(EXPOSURE_PATHS) + len(dropped)


def _doctor(stack: Stack, *args: str) -> tuple[int, list[dict[str, Any]]]:
    result = stack.manage("doctor", *args, "--json", check=False, timeout=120)
    try:
        report = json.loads(result.stdout)
    except ValueError:
        raise AssertionError(f"doctor printed no JSON:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}") from None
    return result.returncode, report["checks"]


def _check_doctor(stack: Stack) -> str:
    """The backup timer's commands, then `doctor --url` as the doctor timer runs it: every check passes."""
    stack.manage("backup", timeout=120)
    stack.manage("backup", "--prune", timeout=120)
    url = f"https://127.0.0.1:{stack.https_port}"
    status, checks = _doctor(stack, "--url", url, "--ca-file", str(stack.ca), "--http-port", str(stack.http_port))
    failed = [c for c in checks if c["status"] != "pass"]
    assert status == 0 and not failed, failed
    redirect = [c for c in checks if c["name"] == "http redirect"]
    assert redirect and "not probed" not in redirect[0]["detail"], redirect
    return f"doctor --url: {len(checks)} checks passed"


def _check_doctor_sees_dropped_files(stack: Stack) -> None:
    status, checks = _doctor(stack)
    static = [c for c in checks if c["name"] == "static folder"]
    assert status != 0 and static and static[0]["status"] == "fail", static
    assert "dropped.txt" in static[0]["detail"] and "link-to-secret" in static[0]["detail"]


def _check_metrics(stack: Stack, context: ssl.SSLContext) -> None:
    """/metrics through the proxy: the same 404 as a missing page without the token, Prometheus text with it."""
    browser = Browser(stack.https_port, context)
    assert browser.get("/metrics").status == 404
    assert browser.get("/metrics", Authorization="Bearer not-the-token-but-long-enough-to-be-read").status == 404
    token = Path(stack.env["RELAIS_METRICS_TOKEN_FILE"]).read_text().strip()
    answer = browser.get("/metrics", Authorization=f"Bearer {token}")
    assert answer.status == 200 and "text/plain" in answer.headers["Content-Type"], answer.status
    assert "# TYPE" in answer.text
    # Both gunicorn workers' requests are counted (multiprocess mode, as relais-web.service sets it up).
    for _ in range(12):
        assert browser.get("/healthz/live").status == 200
    answer = browser.get("/metrics", Authorization=f"Bearer {token}")
    counted = sum(
        float(line.rsplit(" ", 1)[1])
        for line in answer.text.splitlines()
        if line.startswith("relais_http_requests_total{") and 'view="healthz-live"' in line
    )
    assert counted >= 12, counted


def _check_pharmacist_login(stack: Stack, context: ssl.SSLContext, record: dict[str, Any]) -> None:
    browser = Browser(stack.https_port, context)
    answer = browser.login_password(PHARMACIST, PASSWORD)
    assert answer.status == 302 and answer.headers["Location"].endswith("/mfa/"), (answer.status, answer.text[:300])
    session_cookie = [c for c in answer.headers.get_all("Set-Cookie") or [] if c.startswith("__Host-relais_session=")]
    assert session_cookie and "Secure" in session_cookie[0] and "HttpOnly" in session_cookie[0]
    token = browser.form_token("/mfa/")
    answer = browser.post_form("/mfa/", {"token": _totp_code(record["totp_key"], record["totp_used"]), "csrfmiddlewaretoken": token})
    assert answer.status == 302, (answer.status, answer.text[:500])
    home = browser.get("/")
    assert home.status == 200 and "/login/" not in home.headers.get("Location", ""), home.status
    assert home.headers["Cache-Control"] == "no-store"


def _check_api_submission(stack: Stack, context: ssl.SSLContext, record: dict[str, Any]) -> None:
    browser = Browser(stack.https_port, context)
    audience = f"https://127.0.0.1:{stack.https_port}/api/v1/token"
    fields = {
        "grant_type": "client_credentials",
        "client_id": record["client_id"],
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": _assertion(record["private"], record["client_id"], audience),
    }
    token = browser.post_form("/api/v1/token", fields)
    assert token.status == 200, token.text
    bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
    body = {
        "patient": {"last_name": "MARTIN", "first_names": "Léa", "sex": "F", "date_of_birth": "1990-05-01"},
        "device_id": "1232",
        "sampled_at": (timezone.now() - timedelta(minutes=5)).isoformat(),
        "results": {"sars-cov-2": "260415000"},
        "information_notice_given": True,
    }
    created = browser.post_json("/api/v1/screenings", body, **bearer)
    assert created.status == 201, created.text
    screening_id = created.json()["screening_id"]
    status: dict[str, Any] = {}

    def acknowledged() -> bool:
        status.update(browser.get(f"/api/v1/screenings/{screening_id}", **bearer).json())
        return (status.get("transfer") or {}).get("status") == "acknowledged"

    try:
        wait_for("the sandbox's acknowledgement", acknowledged, timeout=30)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {status}\n{stack.log_tail('workers')}") from None
    assert status["transfer"]["acknowledged_at"]
    assert record["sandbox"].control("/control/stats")


def _check_proxy_lockout(stack: Stack, context: ssl.SSLContext) -> None:
    """Five failures from client A (127.0.0.1) lock A, never client B (127.0.0.2) logging in to the same account."""
    a = Browser(stack.https_port, context, source="127.0.0.1")
    b = Browser(stack.https_port, context, source="127.0.0.2")
    for attempt in range(1, 6):
        # A even claims to be B: nginx writes its own X-Forwarded-For over the client's.
        failed = a.login_password(TARGET, "wrong-password-123", headers={"X-Forwarded-For": "127.0.0.2"})
        assert failed.status == (429 if attempt == 5 else 200), (attempt, failed.status)  # the fifth failure locks
    locked = a.login_password(TARGET, PASSWORD)
    assert locked.status == 429 and "Too many failed attempts" in locked.text, (locked.status, locked.text[:300])
    answer = b.login_password(TARGET, PASSWORD)
    assert answer.status == 302 and answer.headers["Location"].endswith("/mfa/"), (answer.status, answer.text[:300])
    again = Browser(stack.https_port, context, source="127.0.0.1").login_password(TARGET, PASSWORD)
    assert again.status == 429, "client A stays locked after B's login"


def test_reference_stack_through_nginx(tmp_path: Path, record_property: Any) -> None:
    started = time.monotonic()
    with ExitStack() as exits:
        logs = tmp_path / "logs"
        logs.mkdir()
        stack = Stack(tmp=tmp_path, exits=exits, logs=logs)
        record: dict[str, Any] = {"totp_used": set()}
        try:
            record, context = _bring_up(stack, record)
            checks = time.monotonic()
            doctor = _check_doctor(stack)
            stack.step("backup_and_doctor", checks)
            checks = time.monotonic()
            _check_tls_and_headers(stack, context)
            _check_logs_hold_no_link_token(stack, context)
            _check_static(stack, context)
            probed = _check_probe(stack)
            _check_doctor_sees_dropped_files(stack)
            _check_pharmacist_login(stack, context, record)
            _check_api_submission(stack, context, record)
            _check_proxy_lockout(stack, context)
            _check_metrics(stack, context)
            stack.step("checks", checks)
        except BaseException:
            for name in ("nginx-start", "nginx-main-error", "relais-error", "gunicorn", "workers"):
                tail = stack.log_tail(name, 30)
                if tail:
                    print(f"--- {name} ---\n{tail}")
            raise
    elapsed = time.monotonic() - started
    line = f"stack test: {elapsed:.1f} s ({', '.join(f'{k} {v} s' for k, v in stack.timings.items())}); probe {probed} paths; {doctor}"
    print(line)
    record_property("summary", line)
