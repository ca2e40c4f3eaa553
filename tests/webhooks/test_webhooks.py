"""Signed webhook notifications: enqueued with the transfer outcome, delivered to a real local receiver, verified."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from relais.api.models import ApiClient
from relais.core.secrets import generate_secret
from relais.intake.services import screening_record
from relais.patients.services import patient_register
from relais.transfer.models import OutboxMessage
from relais.transfer.outcome import Outcome
from relais.transfer.services import outbox_claim, outbox_record
from relais.webhooks import addresses
from relais.webhooks import delivery as delivery_module
from relais.webhooks.addresses import webhook_url_check
from relais.webhooks.delivery import webhook_claim, webhook_deliver_one, webhook_record
from relais.webhooks.models import DeliveryStatus, Webhook, WebhookDelivery
from relais.webhooks.services import webhook_disable, webhook_enqueue_for_outcomes, webhook_register
from relais.webhooks.signing import WebhookSignatureError, verify_webhook_signature, webhook_jwks, webhook_sign
from tests.factories import identity, screening_input

PERSONAL = ["DURAND", "Camille", "294037512000591", "1994-03-12", "camille.durand", "612345678", "rue de la Paix"]


class Receiver:
    """A real HTTP server on 127.0.0.1 that records requests and answers from a plan (then 200)."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.plan: list[tuple[int, dict[str, str]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                status, headers = receiver.plan.pop(0) if receiver.plan else (200, {})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/relais/hook?token=abc"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def hook(api_client: ApiClient, admin: Any, receiver: Receiver) -> Webhook:
    return webhook_register(actor=admin, client=api_client, url=receiver.url)


def record_and_settle(actor: Any, outcome: Outcome | None = None, *, patients: int = 1) -> list[OutboxMessage]:
    """Record screenings as ``actor`` and have the transfer worker settle them (acknowledged by default)."""
    for _ in range(patients):
        patient = patient_register(actor=actor, identity=identity(), allow_duplicate=True)
        screening_record(actor=actor, patient_id=patient.pk, data=screening_input())
    claimed = outbox_claim(owner="transfer", limit=100)
    outbox_record(owner="transfer", outcomes={m: outcome or Outcome.acknowledged("AA") for m in claimed})
    return claimed


def run_once(now: Any = None) -> list[WebhookDelivery]:
    claimed = webhook_claim(owner="w", limit=10, now=now)
    webhook_record(owner="w", outcomes={d: webhook_deliver_one(d) for d in claimed}, now=now)
    for delivery in claimed:
        delivery.refresh_from_db()
    return claimed


def test_acknowledged_screening_is_delivered_once_signed_and_without_personal_data(
    api_client: ApiClient, hook: Webhook, receiver: Receiver
) -> None:
    [message] = record_and_settle(api_client.service_user)
    delivery = WebhookDelivery.objects.get()
    assert (delivery.webhook_id, delivery.event, delivery.status) == (hook.pk, "screening.acknowledged", DeliveryStatus.PENDING)
    run_once()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (DeliveryStatus.DELIVERED, 1, 200)
    [request] = receiver.requests
    assert request["path"] == "/relais/hook?token=abc"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["headers"]["Relais-Event-Id"] == str(delivery.pk)
    event = verify_webhook_signature(request["body"], request["headers"]["Relais-Signature"], webhook_jwks())
    assert event == delivery.payload and event["event_id"] == str(delivery.pk)
    assert set(event) == {"event_id", "event", "occurred_at", "screening_id", "series_id", "version", "screening_status", "transfer"}
    assert event["transfer"] == {
        "status": "acknowledged",
        "message_id": message.message_id,
        "acknowledged_at": event["transfer"]["acknowledged_at"],
        "rejection_reason": None,
    }
    assert event["screening_id"] == str(message.screening_id) and event["version"] == 1 and event["screening_status"] == "final"
    text = request["body"].decode() + json.dumps(request["headers"])
    assert not [p for p in PERSONAL if p.lower() in text.lower()]
    assert run_once() == []  # delivered once, never again


def test_rejection_is_notified_with_its_reason(api_client: ApiClient, hook: Webhook, receiver: Receiver) -> None:
    record_and_settle(api_client.service_user, Outcome.rejected("PID-7: birth date missing", ack_code="AR"))
    run_once()
    event = json.loads(receiver.requests[0]["body"])
    assert event["event"] == "screening.rejected"
    assert event["transfer"]["status"] == "rejected" and event["transfer"]["rejection_reason"] == "PID-7: birth date missing"


def test_transient_outcome_notifies_nothing(api_client: ApiClient, hook: Webhook) -> None:
    record_and_settle(api_client.service_user, Outcome.transient("timeout", transmitted=True))
    assert not WebhookDelivery.objects.exists()


def test_server_error_then_success_retries_then_delivers(api_client: ApiClient, hook: Webhook, receiver: Receiver) -> None:
    receiver.plan = [(500, {})]
    record_and_settle(api_client.service_user)
    [delivery] = run_once()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (DeliveryStatus.PENDING, 1, 500)
    assert delivery.last_error.startswith("HTTP 500") and delivery.next_attempt_at > timezone.now()
    assert run_once() == []  # not due yet
    [delivery] = run_once(now=delivery.next_attempt_at + timedelta(seconds=1))
    assert (delivery.status, delivery.attempts, delivery.last_status_code, delivery.last_error) == (DeliveryStatus.DELIVERED, 2, 200, "")
    first, second = receiver.requests
    assert first["body"] == second["body"] and first["headers"]["Relais-Event-Id"] == second["headers"]["Relais-Event-Id"]


def test_retry_after_is_honoured(api_client: ApiClient, hook: Webhook, receiver: Receiver) -> None:
    receiver.plan = [(429, {"Retry-After": "120"})]
    record_and_settle(api_client.service_user)
    [delivery] = run_once()
    assert delivery.last_status_code == 429 and delivery.next_attempt_at >= timezone.now() + timedelta(seconds=119)


def test_redirects_are_not_followed(api_client: ApiClient, hook: Webhook, receiver: Receiver) -> None:
    receiver.plan = [(302, {"Location": "http://169.254.169.254/latest"})]
    record_and_settle(api_client.service_user)
    [delivery] = run_once()
    assert delivery.status == DeliveryStatus.PENDING and "redirects are not followed" in delivery.last_error
    assert len(receiver.requests) == 1


def test_receiver_down_stays_pending_with_the_error(api_client: ApiClient, admin: Any) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there any more
    webhook_register(actor=admin, client=api_client, url=f"http://127.0.0.1:{port}/hook")
    record_and_settle(api_client.service_user)
    [delivery] = run_once()
    assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 1 and delivery.last_status_code is None
    assert "ConnectionRefused" in delivery.last_error and delivery.next_attempt_at > timezone.now()


def test_gives_up_after_72_hours(api_client: ApiClient, hook: Webhook, receiver: Receiver) -> None:
    receiver.plan = [(503, {})]
    record_and_settle(api_client.service_user)
    later = timezone.now() + timedelta(hours=72, seconds=1)
    [delivery] = run_once(now=later)
    assert delivery.status == DeliveryStatus.FAILED and delivery.last_error.startswith("gave up after 72 h")


def test_screening_recorded_by_a_person_notifies_nobody(hook: Webhook, owner: Any) -> None:
    record_and_settle(owner)
    assert not WebhookDelivery.objects.exists()


def test_disabled_webhook_notifies_nobody(api_client: ApiClient, hook: Webhook, admin: Any) -> None:
    webhook_disable(actor=admin, webhook=hook)
    record_and_settle(api_client.service_user)
    assert not WebhookDelivery.objects.exists()


def test_webhook_disabled_after_enqueue_is_not_called(api_client: ApiClient, hook: Webhook, admin: Any, receiver: Receiver) -> None:
    record_and_settle(api_client.service_user)
    webhook_disable(actor=admin, webhook=hook)
    [delivery] = run_once()
    assert delivery.status == DeliveryStatus.FAILED and receiver.requests == []


def test_a_batch_is_enqueued_in_a_constant_number_of_queries(api_client: ApiClient, hook: Webhook) -> None:
    for _ in range(5):
        patient = patient_register(actor=api_client.service_user, identity=identity(), allow_duplicate=True)
        screening_record(actor=api_client.service_user, patient_id=patient.pk, data=screening_input())
    claimed = outbox_claim(owner="transfer", limit=100)
    now = timezone.now()
    OutboxMessage.objects.filter(pk__in=[m.pk for m in claimed]).update(status="acknowledged", acknowledged_at=now)
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        created = webhook_enqueue_for_outcomes(messages=claimed, now=now)
    assert len(created) == 5 and len(queries) <= 6, [q["sql"][:60] for q in queries]  # 3 selects, 1 insert, savepoint


def test_without_a_webhook_a_batch_reads_no_screening(api_client: ApiClient) -> None:
    for _ in range(5):
        patient = patient_register(actor=api_client.service_user, identity=identity(), allow_duplicate=True)
        screening_record(actor=api_client.service_user, patient_id=patient.pk, data=screening_input())
    claimed = outbox_claim(owner="transfer", limit=100)
    now = timezone.now()
    OutboxMessage.objects.filter(pk__in=[m.pk for m in claimed]).update(status="acknowledged", acknowledged_at=now)
    with transaction.atomic():
        with CaptureQueriesContext(connection) as queries:
            created = webhook_enqueue_for_outcomes(messages=claimed, now=now)
    assert created == [] and len(queries) == 2, [q["sql"][:60] for q in queries]  # recorders, then their (absent) webhooks


def test_a_late_lease_holder_does_not_notify_twice(api_client: ApiClient, hook: Webhook) -> None:
    patient = patient_register(actor=api_client.service_user, identity=identity())
    screening_record(actor=api_client.service_user, patient_id=patient.pk, data=screening_input())
    claimed = outbox_claim(owner="a", limit=1)
    again = outbox_claim(owner="b", limit=1, now=timezone.now() + timedelta(seconds=61))
    outbox_record(owner="b", outcomes={again[0]: Outcome.acknowledged("AA")})
    outbox_record(owner="a", outcomes={claimed[0]: Outcome.acknowledged("AA")})  # ignored: its lease expired
    assert WebhookDelivery.objects.count() == 1


def test_tampered_body_stale_or_foreign_signatures_are_refused() -> None:
    body = b'{"event":"screening.acknowledged","screening_id":"x"}'
    signature = webhook_sign(body)
    assert verify_webhook_signature(body, signature, webhook_jwks())["screening_id"] == "x"
    with pytest.raises(WebhookSignatureError):
        verify_webhook_signature(body.replace(b'"x"', b'"y"'), signature, webhook_jwks())
    with pytest.raises(WebhookSignatureError):
        verify_webhook_signature(body, webhook_sign(body, at=timezone.now().timestamp() - 600), webhook_jwks())
    with override_settings(RELAIS_WEBHOOK_SIGNING_KEY=generate_secret("RELAIS_WEBHOOK_SIGNING_KEY")):
        other = webhook_jwks()
    assert other["keys"][0]["kid"] != webhook_jwks()["keys"][0]["kid"]
    with pytest.raises(WebhookSignatureError, match="unknown key"):
        verify_webhook_signature(body, signature, other)


def test_key_set_is_public_only_and_derived_deterministically() -> None:
    [key] = webhook_jwks()["keys"]
    assert set(key) == {"kty", "crv", "x", "y", "kid", "alg", "use"}
    assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("EC", "P-256", "ES256", "sig")
    assert webhook_jwks() == {"keys": [key]}
    seed = base64.urlsafe_b64encode(bytes(range(32))).decode()
    with override_settings(RELAIS_WEBHOOK_SIGNING_KEY=seed):
        assert webhook_jwks() == webhook_jwks()
        assert webhook_jwks()["keys"][0]["kid"] != key["kid"]


@pytest.mark.parametrize(
    "url",
    [
        "http://93.184.216.34/hook",
        "https://127.0.0.1/hook",
        "https://10.0.0.1/hook",
        "https://192.168.1.5/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://localhost/hook",
        "https://user:pw@93.184.216.34/hook",
        "ftp://93.184.216.34/hook",
    ],
)
def test_production_refuses_plain_http_and_private_addresses(url: str) -> None:
    with pytest.raises(ValidationError):
        webhook_url_check(url, production=True, resolve=False)


def test_production_accepts_a_public_https_address() -> None:
    assert webhook_url_check("https://93.184.216.34/hook", production=True, resolve=False) == "https://93.184.216.34/hook"
    assert webhook_url_check("https://hooks.example.org/relais", production=True, resolve=False)


def test_development_accepts_loopback_http_only() -> None:
    assert webhook_url_check("http://127.0.0.1:8123/hook", production=False)
    with pytest.raises(ValidationError):
        webhook_url_check("http://example.org/hook", production=False, resolve=False)


def test_delivery_refuses_a_name_that_now_resolves_inside(
    api_client: ApiClient, admin: Any, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = Webhook.objects.create(client=api_client, url=f"https://hooks.example.org:{receiver.port}/hook", created_by=admin)
    record_and_settle(api_client.service_user)
    monkeypatch.setattr(addresses, "_resolve", lambda host, port: [ipaddress.ip_address("127.0.0.1")])  # DNS rebinding
    with override_settings(PRODUCTION=True):
        [delivery] = run_once()
    assert delivery.webhook_id == hook.pk and delivery.status == DeliveryStatus.PENDING
    assert "private or local network" in delivery.last_error and receiver.requests == []


def _tls_pair(tmp_path: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    client = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
    return server, client


def test_https_connects_to_the_checked_address_and_verifies_the_name(
    api_client: ApiClient, admin: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server_tls, client_tls = _tls_pair(tmp_path, "hooks.example.test")
    tls_receiver = Receiver(tls=server_tls)
    try:
        webhook_register(actor=admin, client=api_client, url=f"https://hooks.example.test:{tls_receiver.port}/hook")
        record_and_settle(api_client.service_user)
        # The name does not exist: reaching the receiver proves the socket went to the checked address, TLS to the name.
        monkeypatch.setattr(addresses, "_resolve", lambda host, port: [ipaddress.ip_address("127.0.0.1")])
        monkeypatch.setattr(delivery_module, "_tls_context", lambda: client_tls)
        [delivery] = run_once()
        assert delivery.status == DeliveryStatus.DELIVERED and len(tls_receiver.requests) == 1
        assert tls_receiver.requests[0]["headers"]["Host"] == f"hooks.example.test:{tls_receiver.port}"
    finally:
        tls_receiver.close()


def test_worker_once_delivers_pending_rows(api_client: ApiClient, hook: Webhook, receiver: Receiver, monkeypatch: Any) -> None:
    record_and_settle(api_client.service_user, patients=3)
    call_command("webhook_worker", "--once")
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {DeliveryStatus.DELIVERED}
    assert len(receiver.requests) == 3
    for request in receiver.requests:
        verify_webhook_signature(request["body"], request["headers"]["Relais-Signature"], webhook_jwks())


def _guide_verify() -> Any:
    """The receiver code printed in docs/integrators.md, executed as a newcomer would paste it."""
    guide = (Path(__file__).resolve().parents[2] / "docs" / "integrators.md").read_text()
    block = next(b for b in guide.split("```python")[1:] if "def verify(body" in b).split("```")[0]
    namespace: dict[str, Any] = {}
    exec(compile(block, "integrators.md", "exec"), namespace)  # noqa: S102 - our own documentation
    return namespace["verify"]


@pytest.mark.django_db
def test_key_set_is_published_and_the_guide_receiver_code_verifies_a_notification(client: Any) -> None:
    response = client.get("/api/v1/webhook-keys")
    assert response.status_code == 200
    jwks = response.json()
    assert jwks == webhook_jwks()
    assert all("d" not in key for key in jwks["keys"])
    body = json.dumps({"event": "screening.acknowledged", "event_id": "e1"}).encode()
    verify = _guide_verify()
    assert verify(body, webhook_sign(body), jwks)["event_id"] == "e1"
    with pytest.raises(Exception, match=r"[Ss]ignature"):
        verify(body.replace(b"e1", b"e2"), webhook_sign(body), jwks)
    with pytest.raises(ValueError, match="stale"):
        verify(body, webhook_sign(body, at=1_000_000_000), jwks)


def test_rotation_keeps_the_previous_key_published(settings: Any) -> None:
    body = b'{"event_id": "e1"}'
    old_signature = webhook_sign(body)
    previous = settings.RELAIS_WEBHOOK_SIGNING_KEY
    settings.RELAIS_WEBHOOK_SIGNING_KEY = generate_secret("RELAIS_WEBHOOK_SIGNING_KEY")
    settings.RELAIS_WEBHOOK_PREVIOUS_SIGNING_KEYS = [previous]
    jwks = webhook_jwks()
    assert len(jwks["keys"]) == 2
    assert verify_webhook_signature(body, old_signature, jwks)["event_id"] == "e1"  # signed before the change
    assert verify_webhook_signature(body, webhook_sign(body), jwks)["event_id"] == "e1"  # signed with the new key
    assert jwt_header_kid(webhook_sign(body)) == jwks["keys"][0]["kid"]


def jwt_header_kid(signature: str) -> str:
    import jwt

    return str(jwt.get_unverified_header(signature)["kid"])
