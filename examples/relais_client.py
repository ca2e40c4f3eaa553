"""Relais API v1 client example: Python standard library + PyJWT + cryptography (docs/integrators.md).

    pip install pyjwt cryptography
    RELAIS_URL=http://127.0.0.1:8000 RELAIS_CLIENT_ID=... RELAIS_KEY_FILE=private.pem python examples/relais_client.py

RELAIS_KEY_FILE is the PEM private key (EC P-256 or RSA >= 2048) whose public half was registered for
RELAIS_CLIENT_ID. ``main()`` submits one test, sends it again (answered as a duplicate), submits a batch of
three (the third deliberately wrong, to show a per-item rejection) and reads a test's status.

Every write carries an Idempotency-Key (a UUID) that is kept across retries: a request retried after a
network error or a 409/429/5xx is recorded at most once, and the retry gets the first answer.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
RETRIES = 5  # attempts per request
TIMEOUT = 30  # seconds per attempt
LANGUAGE = "en"  # error messages in English; "fr" (the default) for French
RETRY_STATUSES = {409, 429, 502, 503, 504}  # 409: the same batch is still being processed


class ApiError(Exception):
    """A refused request: ``status`` and the JSON ``body`` ({"error", "message", "fields"} or RFC 6749 for /token)."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


@dataclass
class Relais:
    """Connection settings and the current bearer token (renewed shortly before its 10 minutes run out)."""

    base_url: str
    client_id: str
    private_key: Any  # cryptography private key object
    token: str = ""
    token_expires: float = 0.0
    kid: str = field(init=False)
    algorithm: str = field(init=False)

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        if isinstance(self.private_key, ec.EllipticCurvePrivateKey):
            self.algorithm = "ES256"
        elif isinstance(self.private_key, rsa.RSAPrivateKey):
            self.algorithm = "RS256"
        else:
            raise ValueError("use an EC P-256 or RSA private key")
        public_der = self.private_key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.kid = hashlib.sha256(public_der).hexdigest()  # the key id Relais gives your key


def _http(method: str, url: str, *, data: bytes | None, headers: dict[str, str]) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310 (the URL is configuration)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
            status, answer_headers, raw = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:  # 4xx and 5xx still carry a JSON body
        status, answer_headers, raw = error.code, dict(error.headers), error.read()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = raw.decode("utf-8", "replace")
    return status, answer_headers, body


def get_token(api: Relais) -> str:
    """A valid bearer token: the cached one, or a new one from a freshly signed assertion (RFC 7523)."""
    if api.token and time.time() < api.token_expires - 60:
        return api.token
    audience = f"{api.base_url}/api/v1/token"  # the token URL exactly as the server sees it
    now = int(time.time())
    claims = {"iss": api.client_id, "sub": api.client_id, "aud": audience, "iat": now, "exp": now + 120, "jti": str(uuid.uuid4())}
    assertion = jwt.encode(claims, api.private_key, algorithm=api.algorithm, headers={"kid": api.kid})
    form = {
        "grant_type": "client_credentials",
        "client_id": api.client_id,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
    }
    status, _headers, body = _http(
        "POST", audience, data=urlencode(form).encode(), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    if status != 200:
        raise ApiError(status, body)
    api.token = body["access_token"]
    api.token_expires = time.time() + int(body["expires_in"])
    return api.token


def call(api: Relais, method: str, path: str, body: Any = None, *, idempotency_key: str | None = None) -> tuple[int, dict[str, str], Any]:
    """One API request with retries. Writes get an Idempotency-Key so that a retry never records twice."""
    if method != "GET" and idempotency_key is None:
        idempotency_key = str(uuid.uuid4())
    data = json.dumps(body).encode() if body is not None else None
    delay = 1.0
    for attempt in range(1, RETRIES + 1):
        try:
            headers = {"Authorization": f"Bearer {get_token(api)}", "Accept": "application/json", "Accept-Language": LANGUAGE}
            if data is not None:
                headers["Content-Type"] = "application/json"
            if idempotency_key:
                headers["Idempotency-Key"] = idempotency_key
            status, answer_headers, answer = _http(method, api.base_url + path, data=data, headers=headers)
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            if attempt == RETRIES:
                raise
            print(f"  network error ({error}); retrying with the same Idempotency-Key", file=sys.stderr)
            time.sleep(delay)
            delay = min(delay * 2, 30)
            continue
        if status == 401 and attempt == 1:  # token expired or revoked early: get a new one, once
            api.token = ""
            continue
        if status in RETRY_STATUSES and attempt < RETRIES:
            time.sleep(float(answer_headers.get("Retry-After") or delay))
            delay = min(delay * 2, 30)
            continue
        if status >= 400:
            raise ApiError(status, answer)
        return status, answer_headers, answer
    raise AssertionError("unreachable")


def submit_screening(api: Relais, screening: dict[str, Any], *, idempotency_key: str | None = None) -> tuple[int, dict[str, Any]]:
    """POST /screenings: 201 recorded (outcome "accepted") or 200 already recorded (outcome "duplicate")."""
    status, _headers, body = call(api, "POST", "/api/v1/screenings", screening, idempotency_key=idempotency_key)
    return status, body


def submit_batch(api: Relais, screenings: list[dict[str, Any]], *, idempotency_key: str | None = None) -> dict[str, Any]:
    """POST /screenings/batch (at most 1,000 items): the outcome of every item, by index."""
    return call(api, "POST", "/api/v1/screenings/batch", {"items": screenings}, idempotency_key=idempotency_key)[2]


def get_screening(api: Relais, screening_id: str) -> dict[str, Any]:
    """GET /screenings/{id}: status and transfer to the national platform."""
    return call(api, "GET", f"/api/v1/screenings/{screening_id}")[2]


def screening(last_name: str, first_names: str, date_of_birth: str, *, minutes_ago: int = 5, device_id: str = "1232") -> dict[str, Any]:
    sampled_at = datetime.now().astimezone() - timedelta(minutes=minutes_ago)  # local time with its offset
    return {
        "patient": {"last_name": last_name, "first_names": first_names, "sex": "F", "date_of_birth": date_of_birth},
        "device_id": device_id,
        "sampled_at": sampled_at.isoformat(timespec="seconds"),
        "results": {"sars-cov-2": "260415000"},  # not detected
        "information_notice_given": True,  # the pharmacist gave the patient the information notice
    }


def main() -> int:
    base_url = os.environ.get("RELAIS_URL", "http://127.0.0.1:8000")
    client_id = os.environ["RELAIS_CLIENT_ID"]
    with open(os.environ["RELAIS_KEY_FILE"], "rb") as handle:
        private_key = serialization.load_pem_private_key(handle.read(), password=None)
    api = Relais(base_url, client_id, private_key)

    get_token(api)
    print(f"token: ok ({api.algorithm}, kid {api.kid[:12]}...)")

    test = screening("EXEMPLE-PYTHON", "Marie", "1990-05-01")
    status, first = submit_screening(api, test)
    print(f"screening {first['screening_id']}: {first['outcome']} (HTTP {status})")
    status, again = submit_screening(api, test)  # a new request for the same test, e.g. sent twice by mistake
    print(f"same test again: {again['outcome']} of {again['duplicate_of']} (HTTP {status})")

    batch = submit_batch(
        api,
        [
            screening("EXEMPLE-LOT", "Anne", "1971-02-03", minutes_ago=7),
            screening("EXEMPLE-LOT", "Bruno", "1968-11-30", minutes_ago=6),
            screening("EXEMPLE-LOT", "Chloé", "2001-07-14", device_id="999999"),  # not in the EU catalogue: rejected
        ],
    )
    print(
        f"batch {batch['submission_id']}: {batch['status']}, "
        f"{batch['accepted']} accepted, {batch['duplicates']} duplicates, {batch['rejected']} rejected"
    )
    for item in batch["items"]:
        detail = item["screening_id"] or "; ".join(f"{e['field']}: {e['message']}" for e in item["errors"])
        print(f"  item {item['index']}: {item['status']} {detail}")

    current = get_screening(api, first["screening_id"])
    transfer = current["transfer"] or {}
    print(f"status of {current['screening_id']}: {current['status']}, transfer {transfer.get('status', 'none')}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ApiError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
