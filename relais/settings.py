"""Relais settings. RELAIS_ENV selects development (default), test or production."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from relais.core.proxy import parse_trusted_proxies
from relais.core.secrets import SecretError, file_problem, read_secret, secret_conflicts, secrets_read
from relais.retention.config import parse_retention
from relais.transfer.hd import receiving_hds

BASE_DIR = Path(__file__).resolve().parent.parent
RELAIS_ENV = os.environ.get("RELAIS_ENV", "development")
if RELAIS_ENV not in {"development", "test", "production"}:
    raise ImproperlyConfigured("RELAIS_ENV must be development, test or production")
PRODUCTION = RELAIS_ENV == "production"
VAR_DIR = Path(os.environ.get("RELAIS_VAR_DIR", BASE_DIR / "var"))
STATIC_ROOT = Path(os.environ.get("RELAIS_STATIC_ROOT", VAR_DIR / "static"))
MEDIA_ROOT = Path(os.environ.get("RELAIS_MEDIA_ROOT", VAR_DIR / "media"))
SERVED_DIRS = (STATIC_ROOT, MEDIA_ROOT, BASE_DIR / "relais" / "static")


def _secret(name: str) -> str:
    try:
        return read_secret(
            name,
            production=PRODUCTION,
            served_dirs=SERVED_DIRS,
            dev_dir=VAR_DIR / "secrets",
            generate_missing=RELAIS_ENV == "test",
        )
    except SecretError as exc:
        raise ImproperlyConfigured(f"Refusing to start: {exc}") from exc


def _optional_secret(name: str) -> str:
    """A secret only some deployments have (an SMTP password, an SMS gateway token): empty when not configured."""
    return _secret(name) if name in os.environ or f"{name}_FILE" in os.environ else ""


SECRET_KEY = _secret("DJANGO_SECRET_KEY")
RELAIS_MASTER_KEY = _secret("RELAIS_MASTER_KEY")
RELAIS_BLIND_INDEX_KEY = _secret("RELAIS_BLIND_INDEX_KEY")
# Former master keys, comma-separated, only needed while `rotate_keys` rewraps data keys.
RELAIS_OLD_MASTER_KEYS = [k for k in os.environ.get("RELAIS_OLD_MASTER_KEYS", "").split(",") if k.strip()]
if RELAIS_BLIND_INDEX_KEY == RELAIS_MASTER_KEY:
    raise ImproperlyConfigured("Refusing to start: RELAIS_BLIND_INDEX_KEY must differ from RELAIS_MASTER_KEY")
# Secrets of the retention keys (crypto-shredding): outside the database and any served folder; the purge destroys them.
RELAIS_KEY_DIR = Path(os.environ.get("RELAIS_KEY_DIR", VAR_DIR / ("keys-test" if RELAIS_ENV == "test" else "keys")))
if any(RELAIS_KEY_DIR.resolve().is_relative_to(Path(d).resolve()) for d in SERVED_DIRS):
    raise ImproperlyConfigured("Refusing to start: RELAIS_KEY_DIR is inside a served folder; move it out")
# Days each class of data is kept (relais/retention/config.py lists the classes); RELAIS_RETENTION_JSON or
# RELAIS_RETENTION_<CLASS> override them; an unknown class or a non-positive value refuses to start.
RELAIS_RETENTION = parse_retention(os.environ.get("RELAIS_RETENTION_JSON", ""), os.environ)
# Seed of the EC key that signs webhook notifications (public half at /api/v1/webhook-keys).
RELAIS_WEBHOOK_SIGNING_KEY = _secret("RELAIS_WEBHOOK_SIGNING_KEY")
# Former webhook keys, comma-separated: their public halves stay published for a while after a rotation.
RELAIS_WEBHOOK_PREVIOUS_SIGNING_KEYS = [
    k.strip() for k in os.environ.get("RELAIS_WEBHOOK_PREVIOUS_SIGNING_KEYS", "").split(",") if k.strip()
]
if RELAIS_WEBHOOK_SIGNING_KEY in {RELAIS_MASTER_KEY, RELAIS_BLIND_INDEX_KEY}:
    raise ImproperlyConfigured(
        "Refusing to start: RELAIS_WEBHOOK_SIGNING_KEY must differ from RELAIS_MASTER_KEY and RELAIS_BLIND_INDEX_KEY"
    )
# Ed25519 seed that signs audit checkpoints (relais/audit/seal.py); kept out of the database it vouches for.
RELAIS_AUDIT_SIGNING_KEY = _secret("RELAIS_AUDIT_SIGNING_KEY")
if RELAIS_AUDIT_SIGNING_KEY in {RELAIS_MASTER_KEY, RELAIS_BLIND_INDEX_KEY, RELAIS_WEBHOOK_SIGNING_KEY}:
    raise ImproperlyConfigured("Refusing to start: RELAIS_AUDIT_SIGNING_KEY must differ from the other keys")
# Public halves (base64) of former audit signing keys: checkpoints they signed still verify after a rotation.
RELAIS_AUDIT_TRUSTED_PUBLIC_KEYS = [k.strip() for k in os.environ.get("RELAIS_AUDIT_TRUSTED_PUBLIC_KEYS", "").split(",") if k.strip()]
# Checkpoints are also appended outside the database: a file (none by default in tests) and an optional second copy.
_AUDIT_CHECKPOINT_FILE = os.environ.get(
    "RELAIS_AUDIT_CHECKPOINT_FILE", "" if RELAIS_ENV == "test" else str(VAR_DIR / "audit-checkpoints.jsonl")
)
if PRODUCTION and not _AUDIT_CHECKPOINT_FILE:
    raise ImproperlyConfigured("Refusing to start: RELAIS_AUDIT_CHECKPOINT_FILE must name a file outside the database")
RELAIS_AUDIT_SEAL: dict[str, Any] = {
    "every_events": int(os.environ.get("RELAIS_AUDIT_SEAL_EVERY_EVENTS", "1000")),  # checkpoint after this many events
    "every_seconds": int(os.environ.get("RELAIS_AUDIT_SEAL_EVERY_SECONDS", "60")),  # ... or once the oldest is this old
    "delay_seconds": int(os.environ.get("RELAIS_AUDIT_SEAL_DELAY_SECONDS", "300")),  # older unsealed events are an alarm
    "files": [f for f in (_AUDIT_CHECKPOINT_FILE, os.environ.get("RELAIS_AUDIT_CHECKPOINT_COPY", "")) if f],
}

# Key that encrypts and authenticates backup files (relais/backup/, docs/backup.md); distinct from every other key.
RELAIS_BACKUP_KEY = _secret("RELAIS_BACKUP_KEY")
if RELAIS_BACKUP_KEY in {RELAIS_MASTER_KEY, RELAIS_BLIND_INDEX_KEY, RELAIS_WEBHOOK_SIGNING_KEY, RELAIS_AUDIT_SIGNING_KEY}:
    raise ImproperlyConfigured("Refusing to start: RELAIS_BACKUP_KEY must differ from the other keys")
# Where `manage.py backup` writes: var/backups outside production; production names it (backup refuses without it).
_BACKUP_DIR_DEFAULT = "" if PRODUCTION else str(VAR_DIR / ("backups-test" if RELAIS_ENV == "test" else "backups"))
_BACKUP_DIR = os.environ.get("RELAIS_BACKUP_DIR", _BACKUP_DIR_DEFAULT)
RELAIS_BACKUP_DIR = Path(_BACKUP_DIR) if _BACKUP_DIR else None
if RELAIS_BACKUP_DIR is not None and any(RELAIS_BACKUP_DIR.resolve().is_relative_to(Path(d).resolve()) for d in SERVED_DIRS):
    raise ImproperlyConfigured("Refusing to start: RELAIS_BACKUP_DIR is inside a served folder; move it out")
# Days a backup is kept (`backup --prune`): it holds retention keys, so no longer than the shortest retention period.
RELAIS_BACKUP_RETENTION_DAYS = int(os.environ.get("RELAIS_BACKUP_RETENTION_DAYS", str(min(7, *RELAIS_RETENTION.values()))))
if not 0 < RELAIS_BACKUP_RETENTION_DAYS <= min(RELAIS_RETENTION.values()):
    raise ImproperlyConfigured(
        "Refusing to start: RELAIS_BACKUP_RETENTION_DAYS must be between 1 and the shortest retention period"
        f" ({min(RELAIS_RETENTION.values())} days): backups hold the retention keys the purge destroys"
    )

DEBUG = os.environ.get("RELAIS_DEBUG") == "1" and not PRODUCTION
if PRODUCTION:
    ALLOWED_HOSTS = [h for h in os.environ.get("RELAIS_ALLOWED_HOSTS", "").split(",") if h]
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("Refusing to start: RELAIS_ALLOWED_HOSTS is missing")
    if any("*" in h or not h.strip(". ") for h in ALLOWED_HOSTS):
        raise ImproperlyConfigured("Refusing to start: RELAIS_ALLOWED_HOSTS must name each host ('*' accepts any Host header)")
else:
    ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver", "[::1]"]
# Peers whose X-Forwarded-For / X-Forwarded-Proto are believed: IPs, CIDR networks, or `unix` (relais/core/proxy.py).
try:
    RELAIS_TRUSTED_PROXIES = parse_trusted_proxies(os.environ.get("RELAIS_TRUSTED_PROXIES", ""))
except ValueError as _exc:
    raise ImproperlyConfigured(f"Refusing to start: {_exc}") from None

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "axes",
    "csp",
    "relais.core",
    "relais.audit",
    "relais.accounts",
    "relais.patients",
    "relais.screenings",
    "relais.transfer",
    "relais.api",
    "relais.submissions",
    "relais.notify",
    "relais.results",
    "relais.certificates",
    "relais.webhooks",
    "relais.breach",
    "relais.retention",
    "relais.subject_access",
    "relais.oversight",
    "relais.ops",
    "relais.observability",
    "relais.backup",
    "relais.corrections",
    "relais.frontdesk",
    "relais.prereg",
    "relais.testqueue",
    "ninja",
]

MIDDLEWARE = [
    "relais.core.proxy.TrustedProxyMiddleware",  # first: everything after it sees the real client address and scheme
    "django.middleware.security.SecurityMiddleware",
    "relais.core.staticserve.CollectedOnlyWhiteNoiseMiddleware",  # only collected, hashed files; never a symlink
    "relais.core.middleware.RequestContextMiddleware",
    "relais.observability.middleware.RequestMetricsMiddleware",  # under the request id, around everything but static files
    "relais.core.middleware.SecurityHeadersMiddleware",
    "relais.core.middleware.ApiMethodNotAllowedMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "relais.accounts.middleware.SessionExpiryMiddleware",
    "relais.accounts.middleware.RequireVerifiedStaffMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "relais.urls"
WSGI_APPLICATION = "relais.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "relais" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]


def _database() -> dict[str, object]:
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        parsed = urlparse(url)
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": parsed.path.lstrip("/"),
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "",
            "PORT": parsed.port or "",
            # Connections outlive a request (a new one costs a handshake and authentication); each request first pings
            # a reused one, so one the server dropped (restart, idle kill) is replaced instead of failing.
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
            "TEST": {"NAME": os.environ.get("RELAIS_TEST_DB_NAME")},
        }
    if url:
        raise ImproperlyConfigured("DATABASE_URL must be a postgresql:// URL, or unset for SQLite")
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": VAR_DIR / "relais.sqlite3",
        # Kept open across requests: opening one and closing it (the last close checkpoints the WAL) was ~25 % of a single
        # POST. Per thread, opened after gunicorn forks, dropped when a request leaves autocommit off; reopened every 5 min.
        "CONN_MAX_AGE": 300,
        # WAL lets readers run beside the writer; FULL makes every commit durable on power loss (NORMAL would survive a
        # process crash but could lose the last answered commits on power loss: an accepted result must never be lost).
        # journal_size_limit truncates the WAL after a checkpoint, since persistent connections never delete it.
        # cache_size: 64 MiB of pages per connection (default 2 MiB), so the indexes an intake inserts into stay in memory
        # as the tables grow to millions of rows (issue 13: flat as data grows).
        "OPTIONS": {
            "init_command": (
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA journal_size_limit=67108864;"
                " PRAGMA cache_size=-65536;"
            ),
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        },
    }


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    {"NAME": "relais.accounts.passwords.BreachedPatternValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "accounts:mfa"

AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = timedelta(minutes=15)
# Per (account, client) pair: one client's failures never lock the owner out elsewhere; spraying: see lockout.py.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_HANDLER = "relais.accounts.lockout.LockoutHandler"
# Failures from one client address, any usernames, that lock that address (well above the per-account 5: shared routers).
RELAIS_LOGIN_FAILURES_PER_ADDRESS = int(os.environ.get("RELAIS_LOGIN_FAILURES_PER_ADDRESS", "20"))
# The test queue flags a test still without result this many minutes after its reading time.
RELAIS_QUEUE_OVERDUE_MINUTES = int(os.environ.get("RELAIS_QUEUE_OVERDUE_MINUTES", "30"))
AXES_USERNAME_FORM_FIELD = "username"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
AXES_VERBOSE = False
AXES_CLIENT_IP_CALLABLE = "relais.core.proxy.client_address"  # the same address audit events record

OTP_TOTP_ISSUER = "Relais"
OTP_TOTP_THROTTLE_FACTOR = 1

# Idle timeout and absolute lifetime, enforced by SessionExpiryMiddleware.
RELAIS_SESSION_IDLE_SECONDS = int(os.environ.get("RELAIS_SESSION_IDLE_SECONDS", 30 * 60))
RELAIS_SESSION_ABSOLUTE_SECONDS = int(os.environ.get("RELAIS_SESSION_ABSOLUTE_SECONDS", 10 * 3600))
SESSION_COOKIE_AGE = RELAIS_SESSION_ABSOLUTE_SECONDS
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Strict"
SESSION_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_SECURE = PRODUCTION
LANGUAGE_COOKIE_SECURE = PRODUCTION
LANGUAGE_COOKIE_HTTPONLY = True
LANGUAGE_COOKIE_SAMESITE = "Lax"
if PRODUCTION:
    # The __Host- prefix pins cookies to this exact origin over HTTPS.
    SESSION_COOKIE_NAME = "__Host-relais_session"
    CSRF_COOKIE_NAME = "__Host-relais_csrf"
    SECURE_SSL_REDIRECT = os.environ.get("RELAIS_SSL_REDIRECT", "1") == "1"
    SECURE_HSTS_SECONDS = 63072000
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    CSRF_TRUSTED_ORIGINS = [f"https://{h}" for h in ALLOWED_HOSTS]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [NONE],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "base-uri": [NONE],
    }
}

LANGUAGE_CODE = "fr"
LANGUAGES = [("fr", "Français"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "relais" / "locale"]
USE_I18N = True
TIME_ZONE = "Europe/Paris"
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "relais" / "static"]
# The stock finders minus source maps (relais/core/staticserve.py): a map publishes the unminified source.
STATICFILES_FINDERS = ["relais.core.staticserve.FileSystemFinder", "relais.core.staticserve.AppDirectoriesFinder"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "relais.core.staticserve.CollectedStaticStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = not PRODUCTION
WHITENOISE_AUTOREFRESH = not PRODUCTION
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_500_000

# Identifier namespaces of what Relais sends (issue 16; relais/transfer/identifiers.py): an OID arc the deployment owns
# and, for FHIR systems, a URL it controls. The default arc is a UUID-derived OID (ITU-T X.667, 2.25.<uuid>): unique
# without registration, so never a reserved example domain; a production installation sets its own registered arc.
RELAIS_OID_ROOT = os.environ.get("RELAIS_OID_ROOT", "2.25.85395544823745402692894344829283372808")
RELAIS_ID_NAMESPACE_URL = os.environ.get("RELAIS_ID_NAMESPACE_URL", "").rstrip("/")  # "" = urn:oid:<arc> systems
if not re.fullmatch(r"[012](\.(0|[1-9][0-9]*))+", RELAIS_OID_ROOT):
    raise ImproperlyConfigured(f"RELAIS_OID_ROOT is not an OID (digits separated by dots, such as 1.2.250.1.999): {RELAIS_OID_ROOT!r}")
if RELAIS_ID_NAMESPACE_URL and not RELAIS_ID_NAMESPACE_URL.startswith("https://"):
    raise ImproperlyConfigured("RELAIS_ID_NAMESPACE_URL must be an https:// URL the deployment controls (or unset: urn:oid systems)")

# Patient messages. Links in messages point at the public address of this deployment.
RELAIS_PUBLIC_URL = os.environ.get("RELAIS_PUBLIC_URL", f"http://127.0.0.1:{os.environ.get('PORT', '8000')}")
EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = os.environ.get("RELAIS_SMTP_HOST", "127.0.0.1")
EMAIL_PORT = int(os.environ.get("RELAIS_SMTP_PORT", 8025))
EMAIL_HOST_USER = os.environ.get("RELAIS_SMTP_USER", "")
EMAIL_HOST_PASSWORD = _optional_secret("RELAIS_SMTP_PASSWORD")
EMAIL_USE_TLS = os.environ.get("RELAIS_SMTP_STARTTLS", "0") == "1"
EMAIL_TIMEOUT = 15
DEFAULT_FROM_EMAIL = os.environ.get("RELAIS_MAIL_FROM", "Relais <resultats@relais.localhost>")
RELAIS_SMS: dict[str, Any] = {
    "backend": os.environ.get("RELAIS_SMS_BACKEND", "relais.notify.channels.HttpGatewaySms"),
    "url": os.environ.get("RELAIS_SMS_GATEWAY_URL", "http://127.0.0.1:8026/messages"),
    "token": _optional_secret("RELAIS_SMS_GATEWAY_TOKEN"),
    "timeout": 10,
}
RELAIS_NOTIFY: dict[str, Any] = {"lease_seconds": 120, "backoff_base": 30, "backoff_cap": 3600, "max_attempts": 10}
# Unusual-access rules (relais/oversight/rules.py, hourly): opening hours in local time, thresholds per rule.
RELAIS_OVERSIGHT: dict[str, Any] = {
    "timezone": os.environ.get("RELAIS_OVERSIGHT_TIMEZONE", "Europe/Paris"),
    "opening_time": os.environ.get("RELAIS_OVERSIGHT_OPENING", "07:00"),
    "closing_time": os.environ.get("RELAIS_OVERSIGHT_CLOSING", "21:00"),
    "closed_weekdays": [int(d) for d in os.environ.get("RELAIS_OVERSIGHT_CLOSED_WEEKDAYS", "6").split(",") if d.strip()],  # 6 = Sunday
    "volume_factor": 3.0,
    "volume_floor": 30,
    "volume_baseline_days": 14,
    "foreign_grace_minutes": 120,
    "birth_date_failures": 5,
    "birth_date_failures_per_ip": 10,
    "new_key_days": 7,
    "new_key_bulk_reads": 200,
    "lookback_days": 2,
    "max_event_ids": 1000,
}
# Breach response (Art. 33/34 GDPR): the data-protection officer named in notifications and letters; drafts written under "dir".
RELAIS_BREACH: dict[str, Any] = {
    "dpo_name": os.environ.get("RELAIS_DPO_NAME", "Délégué à la protection des données"),
    "dpo_email": os.environ.get("RELAIS_DPO_EMAIL", "dpo@relais.localhost"),
    "dpo_phone": os.environ.get("RELAIS_DPO_PHONE", ""),
    "controller": os.environ.get("RELAIS_CONTROLLER_NAME", "Relais"),
    "dir": os.environ.get("RELAIS_BREACH_DIR", str(VAR_DIR / "breach")),
    "lease_seconds": 120,
    "backoff_base": 30,
    "backoff_cap": 3600,
    "max_attempts": 10,
}

# EU DCC document signer: protected files in production (RELAIS_DCC_SIGNER_KEY_FILE, mode 0600); generated into var/ otherwise.
_DCC_DIR = VAR_DIR / "dcc-signer"
RELAIS_DCC: dict[str, Any] = {
    "key_file": os.environ.get("RELAIS_DCC_SIGNER_KEY_FILE", str(_DCC_DIR / "signer-key.pem")),
    "cert_file": os.environ.get("RELAIS_DCC_SIGNER_CERT_FILE", str(_DCC_DIR / "signer-cert.pem")),
    "generate_missing": not PRODUCTION,
    "country": "FR",
    "issuer": os.environ.get("RELAIS_DCC_ISSUER", "Relais (development signer)" if not PRODUCTION else "Relais"),
    "uvci_prefix": os.environ.get("RELAIS_DCC_UVCI_PREFIX", "RELAIS"),
    "validity_days": int(os.environ.get("RELAIS_DCC_VALIDITY_DAYS", 30)),
}
if PRODUCTION and not RELAIS_PUBLIC_URL.startswith("https://"):
    # Result links carry a credential: they must point at the real, encrypted address of the deployment.
    raise ImproperlyConfigured("Refusing to start: RELAIS_PUBLIC_URL must be the https:// address patients open")
if PRODUCTION:
    # The signer key is a secret like the others: refuse to start without it, or with it exposed.
    from relais.certificates.keys import SignerConfigError, load_signer

    for _name in ("RELAIS_DCC_SIGNER_KEY_FILE", "RELAIS_DCC_SIGNER_CERT_FILE"):
        if _name not in os.environ:
            raise ImproperlyConfigured(f"Refusing to start: {_name} is missing (the EU DCC document signer)")
    # The given path and the resolved one, no link, mode 0600, owned by the service user (relais/core/secrets.py).
    _problem = file_problem("RELAIS_DCC_SIGNER_KEY_FILE", Path(RELAIS_DCC["key_file"]), served_dirs=SERVED_DIRS)
    if _problem:
        raise ImproperlyConfigured(f"Refusing to start: {_problem}")
    try:
        load_signer(key_file=Path(RELAIS_DCC["key_file"]), cert_file=Path(RELAIS_DCC["cert_file"]), require_valid=True)
    except SignerConfigError as exc:
        raise ImproperlyConfigured(f"Refusing to start: {exc}") from exc
    # Every secret read above, pairwise: one leaked secret must not give another (equal, or one inside the other).
    _conflicts = secret_conflicts({_n: _v for _n, (_v, _path) in secrets_read().items()})
    if _conflicts:
        raise ImproperlyConfigured(f"Refusing to start: {'; '.join(_conflicts)}")

# Delivery to the national platform. Development points at the sandbox (`python -m sandbox`).
_CERTS = Path(os.environ.get("RELAIS_TRANSFER_CERTS", VAR_DIR / "certs"))
_SANDBOX_HOST = os.environ.get("RELAIS_SANDBOX_HOST", "127.0.0.1")
_SANDBOX_MLLP = int(os.environ.get("RELAIS_SANDBOX_MLLP_PORT", 2575))
_SANDBOX_HTTPS = int(os.environ.get("RELAIS_SANDBOX_HTTPS_PORT", 8443))
_TLS = {"ca_file": str(_CERTS / "ca.pem"), "cert_file": str(_CERTS / "client.pem"), "key_file": str(_CERTS / "client-key.pem")}
RELAIS_TRANSFER: dict[str, Any] = {
    "destination": os.environ.get("RELAIS_TRANSFER_DESTINATION", "sandbox-mllp-hl7v2"),
    "destinations": {
        "sandbox-mllp-hl7v2": {"message_format": "hl7v2", "transport": "mllp", "host": _SANDBOX_HOST, "port": _SANDBOX_MLLP},
        "sandbox-https-hl7v2": {
            "message_format": "hl7v2",
            "transport": "https",
            "url": f"https://localhost:{_SANDBOX_HTTPS}/hl7v2",
            **_TLS,
        },
        "sandbox-https-hl7v2-batch": {
            "message_format": "hl7v2",
            "transport": "https",
            "url": f"https://localhost:{_SANDBOX_HTTPS}/hl7v2",
            "batch_size": 50,
            **_TLS,
        },
        "sandbox-https-fhir": {"message_format": "fhir", "transport": "https", "url": f"https://localhost:{_SANDBOX_HTTPS}/fhir", **_TLS},
    },
    "timeout": float(os.environ.get("RELAIS_TRANSFER_TIMEOUT", 10)),
    # A whole exchange (connect, send, acknowledgement); a destination may set its own "deadline".
    "deadline": float(os.environ.get("RELAIS_TRANSFER_DEADLINE", 30)),
    "lease_seconds": int(os.environ.get("RELAIS_TRANSFER_LEASE_SECONDS", 60)),
    "backoff_base": float(os.environ.get("RELAIS_TRANSFER_BACKOFF_BASE", 2)),
    "backoff_cap": float(os.environ.get("RELAIS_TRANSFER_BACKOFF_CAP", 600)),
    "claim_batch": int(os.environ.get("RELAIS_TRANSFER_CLAIM_BATCH", 200)),  # one commit (fsync) per claim: amortised
    "concurrency": int(os.environ.get("RELAIS_TRANSFER_CONCURRENCY", 4)),  # connections per worker
}
# A destination may name its receiver for HL7 MSH-5/MSH-6: "receiving_application" and "receiving_facility", each
# "NAME" or "NAME^OID^ISO" (default SIDEP: SI-DEP's OIDs are not published). Checked here, so a typo refuses to start.
for _name, _config in RELAIS_TRANSFER["destinations"].items():
    receiving_hds(_config, where=f"RELAIS_TRANSFER destination {_name}")

# Exception reports never carry request bodies or local variables, which may hold personal data.
DEFAULT_EXCEPTION_REPORTER_FILTER = "relais.core.reporting.NoPersonalDataExceptionFilter"
ADMINS: list[tuple[str, str]] = []


# /metrics (relais/observability): a scraper sends `Authorization: Bearer <RELAIS_METRICS_TOKEN>` or comes from one of
# RELAIS_METRICS_ALLOWED_ADDRESSES (IPs or CIDR networks, comma-separated); with neither configured /metrics answers 404.
def _metrics_token() -> str:
    if PRODUCTION:
        return _optional_secret("RELAIS_METRICS_TOKEN")
    try:  # development: var/secrets/relais_metrics_token when `make run` made one; none is fine
        return read_secret("RELAIS_METRICS_TOKEN", production=False, dev_dir=VAR_DIR / "secrets")
    except SecretError:
        return ""


RELAIS_METRICS_TOKEN = _metrics_token()
if PRODUCTION and RELAIS_METRICS_TOKEN:
    # Read after the pairwise check above: the same check for it (read_secret already refused a weak or exposed one).
    _conflicts = secret_conflicts({_n: _v for _n, (_v, _path) in secrets_read().items()})
    if len(RELAIS_METRICS_TOKEN.strip()) < 32 or _conflicts:
        raise ImproperlyConfigured(
            "Refusing to start: RELAIS_METRICS_TOKEN must be 32+ random characters of its own; " + "; ".join(_conflicts)
        )
RELAIS_METRICS_ALLOWED_ADDRESSES = [a.strip() for a in os.environ.get("RELAIS_METRICS_ALLOWED_ADDRESSES", "").split(",") if a.strip()]

LOG_DIR = VAR_DIR / "log"
# One JSON object per line in production (relais.core.logging.JsonFormatter), plain lines elsewhere; RELAIS_LOG_FORMAT overrides.
LOG_FORMAT = os.environ.get("RELAIS_LOG_FORMAT", "json" if PRODUCTION else "plain")
if LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured("RELAIS_LOG_FORMAT must be plain or json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_context": {"()": "relais.core.logging.RequestContextFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s request=%(request_id)s %(message)s"},
        "json": {"()": "relais.core.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_context"]},
        "file": {
            "class": "relais.core.logging.PrivateFileHandler",
            "filename": str(LOG_DIR / "relais.log"),
            "formatter": LOG_FORMAT,
            "filters": ["request_context"],
        },
    },
    "root": {"handlers": ["console", "file"], "level": os.environ.get("RELAIS_LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # Replace Django's own DEBUG console handler: every line goes through our filter (redaction, request id).
        "django": {"handlers": [], "propagate": True},
    },
}
