"""HTTPS with a client certificate and server verification; one keep-alive connection per worker."""

from __future__ import annotations

import http.client
import ssl
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from django.utils import timezone

from relais.transfer.outcome import TransientError

MAX_REPLY = 5_000_000


@dataclass(frozen=True)
class HttpReply:
    status: int
    body: str
    content_type: str


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After is either seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - timezone.now()).total_seconds())


def client_context(*, ca_file: str, cert_file: str, key_file: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file:
        context.load_cert_chain(cert_file, key_file or None)
    return context


class HttpsTransport:
    def __init__(self, *, url: str, timeout: float, ca_file: str = "", cert_file: str = "", key_file: str = "") -> None:
        parts = urlsplit(url)
        if parts.scheme != "https":
            raise ValueError("the national platform is reached over https only")
        self.host, self.port, self.path = parts.hostname or "", parts.port or 443, parts.path or "/"
        self.timeout = timeout
        self.context = client_context(ca_file=ca_file, cert_file=cert_file, key_file=key_file)
        self._conn: http.client.HTTPSConnection | None = None

    def exchange(self, body: str, *, content_type: str, message_id: str = "") -> HttpReply:
        if self._conn is None:
            self._conn = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout, context=self.context)
        conn = self._conn
        headers = {"Content-Type": content_type, "Accept": content_type}
        if message_id:
            headers["X-Message-ID"] = message_id
        transmitted = False
        try:
            if conn.sock is None:
                conn.connect()
            transmitted = True
            conn.request("POST", self.path, body=body.encode("utf-8"), headers=headers)
            response = conn.getresponse()
            data = response.read(MAX_REPLY + 1)
        except ssl.SSLCertVerificationError as exc:
            self.close()
            raise TransientError(f"server certificate refused: {exc.verify_message}", transmitted=False) from exc
        except TimeoutError as exc:
            self.close()
            raise TransientError(f"no answer within {self.timeout:g} s", transmitted=transmitted) from exc
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise TransientError(f"connection error: {reason}", transmitted=transmitted) from exc
        if response.will_close:
            self.close()
        if response.status == 429 or response.status >= 500:
            raise TransientError(
                f"receiver answered {response.status}",
                transmitted=True,
                retry_after=retry_after_seconds(response.getheader("Retry-After")),
            )
        return HttpReply(response.status, data[:MAX_REPLY].decode("utf-8", errors="replace"), response.getheader("Content-Type", ""))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
