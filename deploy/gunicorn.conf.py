"""Gunicorn for Relais in production: `gunicorn -c deploy/gunicorn.conf.py relais.wsgi:application`.

Under systemd the socket comes from relais-web.socket (socket activation: /run/relais/web.sock, reachable by nginx
only); without it gunicorn binds RELAIS_GUNICORN_BIND. Access lines go to stdout (the journal), through the same
redacting logger as `make run`: no result-link or invitation token, no forged line.
"""

from __future__ import annotations

import multiprocessing
import os

wsgi_app = "relais.wsgi:application"
bind = [os.environ.get("RELAIS_GUNICORN_BIND", "unix:/run/relais/web.sock")]
# Sync workers: each holds one request; two per core plus one keeps the CPU busy while others wait on PostgreSQL.
workers = int(os.environ.get("RELAIS_GUNICORN_WORKERS", min(2 * multiprocessing.cpu_count() + 1, 9)))
worker_class = "sync"
# A request slower than this is killed (and logged); nginx gives up at 60 s.
timeout = 55
graceful_timeout = 30
keepalive = 2
# Recycle workers now and then so a slow leak never grows for weeks.
max_requests = 5000
max_requests_jitter = 500
# Headers and request lines: gunicorn's defaults, stated so a change is deliberate.
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190
# The unix socket (when gunicorn binds it) is for nginx only: owner and group read-write, nobody else.
umask = 0o117
# Only nginx, on the same host, reaches gunicorn, through the unix socket; gunicorn's own proxy-header handling stays
# off (Relais reads X-Forwarded-* itself, from RELAIS_TRUSTED_PROXIES only).
forwarded_allow_ips = ""
proxy_allow_ips = ""
secure_scheme_headers: dict[str, str] = {}
forwarder_headers = ""
accesslog = "-"
errorlog = "-"
loglevel = "info"
logger_class = "relais.core.gunicorn_logging.RedactingLogger"
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(L)ss'
# Workers import the application after the fork: each opens its own database connections.
preload_app = False
proc_name = "relais-web"


# /metrics counts every worker's requests: each writes its figures under PROMETHEUS_MULTIPROC_DIR (relais-web.service
# sets it to /run/relais-metrics); stale files are cleared at start and a replaced worker's figures are folded in.
def on_starting(server: object) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from relais.observability.multiproc import reset_directory

        reset_directory()


def child_exit(server: object, worker: object) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from relais.observability.multiproc import absorb_dead_process

        absorb_dead_process(worker.pid)  # type: ignore[attr-defined]
