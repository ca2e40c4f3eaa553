"""Inside checks of `manage.py doctor`: each a named function returning Check(s) with pass, warn or fail.

A detail names what is wrong and what to do; it never holds a secret value or personal data (names of settings, paths
of files, counts and ages only). The production start-up check (relais/settings.py, relais/core/secrets.py) refuses
what these call a fail for secrets, allowed hosts and the DCC signer; doctor also looks at what only a running
installation has (database, queues, backups, static folder).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from relais.core.secrets import SECRET_NAMES, file_problem, secret_conflicts, secret_weakness, secrets_read
from relais.ops.queues import assess, queue_health
from relais.ops.result import Check, Status

CERT_WARN_DAYS = 30
BACKUP_MAX_AGE_HOURS = 26  # a daily backup, with two hours of slack
AUDIT_VERIFY_DAYS = 2  # doctor re-derives the seal from the last checkpoint before this; audit_verify checks it all


def _production() -> bool:
    return getattr(settings, "RELAIS_ENV", "development") == "production"


# ------------------------------------------------------------------------------------------------------------ secrets


def check_secrets(values: dict[str, tuple[str, Path | None]] | None = None, *, production: bool | None = None) -> list[Check]:
    """One line per secret: present, strong, and (read from a file) a safe file; then one line for distinctness."""
    values = secrets_read() if values is None else values
    production = _production() if production is None else production
    served = tuple(Path(d) for d in getattr(settings, "SERVED_DIRS", ()))
    names = list(SECRET_NAMES) + sorted(n for n in values if n not in SECRET_NAMES)
    checks = []
    for name in names:
        if name not in values:
            checks.append(Check(f"secret {name}", "fail", f"{name} is missing: set {name}_FILE"))
            continue
        value, path = values[name]
        problems = [f"{name} {reason}"] if (reason := secret_weakness(name, value)) else []
        if path is not None:
            problems += [p for p in [file_problem(name, path, served_dirs=served)] if p]
        if problems:
            checks.append(Check(f"secret {name}", "fail", "; ".join(problems)))
        elif path is None:
            # The environment is readable by anything that can read /proc/<pid>/environ as this user, and by children.
            status: Status = "warn" if production else "pass"
            source = "read from the environment" if name in os.environ else "generated for this process (test mode)"
            checks.append(Check(f"secret {name}", status, f"strong; {source}, prefer {name}_FILE"))
        else:
            checks.append(Check(f"secret {name}", "pass", f"strong; file {path} mode 0600, owned by the service user"))
    conflicts = secret_conflicts({n: v for n, (v, _path) in values.items()})
    checks.append(
        Check("secrets distinct", "fail", "; ".join(conflicts))
        if conflicts
        else Check("secrets distinct", "pass", f"{len(values)} secrets, no two alike and none inside another")
    )
    return checks


def check_dcc_signer_key() -> Check:
    """The DCC signer's private key file: like the other secrets (no link, 0600, owned, outside served folders)."""
    path = Path(settings.RELAIS_DCC["key_file"])
    if not path.exists() and not path.is_symlink():
        status: Status = "fail" if _production() else "warn"
        return Check("secret dcc signer key", status, f"{path} does not exist yet (development generates it at first use)")
    served = tuple(Path(d) for d in getattr(settings, "SERVED_DIRS", ()))
    problem = file_problem("RELAIS_DCC_SIGNER_KEY_FILE", path, served_dirs=served)
    if problem:
        return Check("secret dcc signer key", "fail", problem)
    return Check("secret dcc signer key", "pass", f"file {path} mode 0600, owned by the service user")


# ------------------------------------------------------------------------------------------------------------- config


def check_debug() -> Check:
    if settings.DEBUG:
        return Check("debug", "fail", "DEBUG is on: error pages would show settings and code; unset RELAIS_DEBUG")
    return Check("debug", "pass", "DEBUG is off")


def check_allowed_hosts(hosts: Iterable[str] | None = None) -> Check:
    hosts = list(settings.ALLOWED_HOSTS if hosts is None else hosts)
    if not hosts:
        return Check("allowed hosts", "fail", "ALLOWED_HOSTS is empty: set RELAIS_ALLOWED_HOSTS")
    wild = [h for h in hosts if "*" in h or not h.strip(". ")]
    if wild:
        return Check("allowed hosts", "fail", f"wildcard entries {wild}: name each host in RELAIS_ALLOWED_HOSTS")
    return Check("allowed hosts", "pass", ", ".join(hosts))


def check_production_mode() -> Check:
    if _production():
        return Check("production mode", "pass", "RELAIS_ENV=production")
    return Check("production mode", "warn", f"RELAIS_ENV={settings.RELAIS_ENV}: start-up refusals are off")


def check_dcc_certificate(*, now: datetime | None = None, cert_file: Path | None = None) -> Check:
    from cryptography import x509

    from relais.certificates.keys import days_left, validity_problem

    path = cert_file or Path(settings.RELAIS_DCC["cert_file"])
    try:
        certificate = x509.load_pem_x509_certificate(path.read_bytes())
    except OSError:
        status: Status = "fail" if _production() else "warn"
        return Check("dcc signer certificate", status, f"{path} cannot be read (development generates it at first use)")
    except ValueError:
        return Check("dcc signer certificate", "fail", f"{path} is not a PEM certificate")
    now = now or timezone.now()
    problem = validity_problem(certificate, now=now)
    if problem:
        return Check("dcc signer certificate", "fail", problem)
    days = days_left(certificate, now=now)
    until = f"valid until {certificate.not_valid_after_utc:%Y-%m-%d} ({days:.0f} days left)"
    if days < CERT_WARN_DAYS:
        return Check("dcc signer certificate", "warn", f"{until}: renew it within {CERT_WARN_DAYS} days of expiry")
    return Check("dcc signer certificate", "pass", until)


# ----------------------------------------------------------------------------------------------------------- database

SQLITE_TRIGGERS = frozenset(
    f"audit_{table}_no_{op}" for table in ("event", "subject", "seal", "checkpoint", "purged") for op in ("update", "delete")
)
POSTGRES_TRIGGERS = frozenset(
    [f"audit_{t}_no_{op}" for t in ("event", "subject", "seal") for op in ("update", "delete")]
    + ["audit_checkpoint_no_update_delete", "audit_purged_no_update_delete"]
    + [f"audit_{t}_no_truncate" for t in ("event", "subject", "seal", "checkpoint", "purged")]
)


def installed_triggers() -> set[str]:
    """Enabled triggers in the database (a disabled one on PostgreSQL protects nothing)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgenabled <> 'D'")
        else:
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        return {row[0] for row in cursor.fetchall()}


def check_audit_triggers() -> Check:
    expected = POSTGRES_TRIGGERS if connection.vendor == "postgresql" else SQLITE_TRIGGERS
    missing = sorted(expected - installed_triggers())
    if missing:
        return Check("audit triggers", "fail", f"missing or disabled: {', '.join(missing)}: the audit log is not append-only")
    return Check("audit triggers", "pass", f"{len(expected)} append-only triggers in place")


def check_audit_seal(*, now: datetime | None = None, days: int = AUDIT_VERIFY_DAYS) -> Check:
    """The chain and the signed checkpoints from the last checkpoint older than ``days`` on (bounded work)."""
    from relais.audit.verify import verify

    now = now or timezone.now()
    report = verify(since=now - timedelta(days=days), now=now)
    first = report.first
    if first is not None:
        return Check(
            "audit seal",
            "fail",
            f"{len(report.problems)} problem(s), first: {first.kind} at seq {first.seq}; run manage.py audit_verify",
        )
    return Check("audit seal", "pass", f"{report.events} sealed events of the last {days} days verified, {report.checkpoints} checkpoints")


def unapplied_migrations() -> list[str]:
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, _backwards in plan]


def check_migrations() -> Check:
    pending = unapplied_migrations()
    if pending:
        shown = ", ".join(pending[:5]) + (" ..." if len(pending) > 5 else "")
        return Check("migrations", "fail", f"{len(pending)} not applied ({shown}): run manage.py migrate")
    return Check("migrations", "pass", "all applied")


def check_queues(*, now: datetime | None = None) -> list[Check]:
    checks = []
    for health in queue_health(now=now):
        status, beyond = assess(health)
        age = "-" if health.oldest_age_seconds is None else f"{health.oldest_age_seconds:.0f} s"
        overdue = "-" if health.overdue_seconds is None else f"{health.overdue_seconds:.0f} s"
        detail = f"depth {health.depth}, oldest {age}, overdue {overdue}, parked {health.parked}, in flight {health.in_flight}"
        if beyond:
            detail += f" (beyond threshold: {', '.join(beyond)})"
        checks.append(Check(f"queue {health.name}", status, detail))  # type: ignore[arg-type]
    return checks


# ------------------------------------------------------------------------------------------------------ files, backup


def check_backup(*, now: datetime | None = None, last_backup_at: Callable[[], datetime | None] | None = None) -> Check:
    """The newest backup's age (relais.backup.status.last_backup_at): fail when none in production or too old."""
    if last_backup_at is None:
        try:
            from relais.backup.status import last_backup_at as found
        except ImportError:
            return Check("backup", "warn", "no backup module")
        last_backup_at = found
    max_hours = float(getattr(settings, "RELAIS_BACKUP_MAX_AGE_HOURS", os.environ.get("RELAIS_BACKUP_MAX_AGE_HOURS", BACKUP_MAX_AGE_HOURS)))
    newest = last_backup_at()
    if newest is None:
        return Check("backup", "fail" if _production() else "warn", "no backup found: run manage.py backup and schedule it")
    hours = ((now or timezone.now()) - newest).total_seconds() / 3600
    if hours > max_hours:
        return Check("backup", "fail", f"newest backup is {hours:.1f} h old (limit {max_hours:g} h): check the backup schedule")
    return Check("backup", "pass", f"newest backup {hours:.1f} h old (limit {max_hours:g} h)")


MANIFEST = "staticfiles.json"
COMPRESSED = (".gz", ".br")


def collected_names(root: Path) -> set[str] | None:
    """Every name collectstatic may write under ``root``, from its manifest; None without a manifest."""
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    paths = manifest.get("paths", {}) if isinstance(manifest, dict) else {}
    names = {str(n) for pair in paths.items() for n in pair}
    return {MANIFEST} | names | {n + suffix for n in names for suffix in COMPRESSED}


def check_static_folder(root: Path | None = None) -> Check:
    """STATIC_ROOT holds only what collectstatic wrote (the manifest's names and their compressed forms): anything
    else dropped there would be public."""
    root = Path(root or settings.STATIC_ROOT)
    if not root.exists():
        return Check("static folder", "fail" if _production() else "warn", f"{root} does not exist: run manage.py collectstatic")
    if root.is_symlink():
        return Check("static folder", "fail", f"{root} is a symbolic link")
    allowed = collected_names(root)
    if allowed is None:
        detail = f"no {MANIFEST} in {root}: not collected with the manifest storage"
        return Check("static folder", "fail" if _production() else "warn", detail)
    directories = {str(Path(n).parent) for n in allowed} | {"."}
    directories |= {str(p) for d in list(directories) for p in Path(d).parents}
    links, strays = [], []
    for current, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(current).relative_to(root)
        for name in dirnames + filenames:
            relative = (base / name).as_posix()
            if (Path(current) / name).is_symlink():
                links.append(relative)
            elif name in dirnames and relative not in directories:
                strays.append(relative + "/")
            elif name in filenames and relative not in allowed:
                strays.append(relative)
    if links or strays:
        shown = sorted(links + strays)[:5]
        more = " ..." if len(links) + len(strays) > 5 else ""
        return Check(
            "static folder",
            "fail",
            f"{len(links)} link(s) and {len(strays)} file(s) or folder(s) collectstatic did not write:"
            f" {', '.join(shown)}{more}; remove them",
        )
    return Check("static folder", "pass", f"only collected files ({len(allowed)} names in the manifest)")


# ---------------------------------------------------------------------------------------------------------- run them

CHECKS: tuple[Callable[[], Check | list[Check]], ...] = (
    check_production_mode,
    check_secrets,
    check_dcc_signer_key,
    check_debug,
    check_allowed_hosts,
    check_dcc_certificate,
    check_migrations,
    check_audit_triggers,
    check_audit_seal,
    check_queues,
    check_backup,
    check_static_folder,
)


def run_checks(checks: Iterable[Callable[[], Check | list[Check]]] = CHECKS) -> list[Check]:
    """Every inside check; one that crashes is a fail named after it (with the error's class, never its message)."""
    results: list[Check] = []
    for check in checks:
        try:
            outcome = check()
        except Exception as exc:  # doctor reports, it does not crash
            name = check.__name__.removeprefix("check_").replace("_", " ")
            results.append(Check(name, "fail", f"the check itself failed ({type(exc).__name__})"))
            continue
        results.extend(outcome if isinstance(outcome, list) else [outcome])
    return results


def summary(checks: Iterable[Check]) -> dict[str, Any]:
    counts = {"pass": 0, "warn": 0, "fail": 0}
    for check in checks:
        counts[check.status] += 1
    return counts
