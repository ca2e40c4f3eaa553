"""manage.py doctor [--url https://host] [--ca-file PEM] [--server-name NAME] [--json] [--skip-inside]

One line per check, `PASS|WARN|FAIL name: detail`, then a summary; exit status 1 on any fail. See docs/doctor.md."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from relais.ops.checks import Check, run_checks, summary


def source_maps() -> list[Any]:
    """Every source map the static files hold (the apps' and the collected, hashed names): none may be served."""
    from django.conf import settings
    from django.contrib.staticfiles import finders

    from relais.ops.checks import collected_names
    from relais.ops.probe import Exposure

    names = {path for finder in finders.get_finders() for path, _storage in finder.list([]) if path.endswith(".map")}
    names |= {n for n in collected_names(Path(settings.STATIC_ROOT)) or () if n.endswith(".map")}
    prefix = settings.STATIC_URL if settings.STATIC_URL.startswith("/") else "/static/"
    return [Exposure(prefix + name, "source map (unminified source)") for name in sorted(names)]


class Command(BaseCommand):
    help = (
        "Check this installation from the inside (secrets, settings, database, queues, backups, static files) and,"
        " with --url, from the outside (TLS, headers, exposed paths)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", help="public https:// address to probe from the outside (TLS, headers, exposure)")
        parser.add_argument("--ca-file", help="PEM file of the CA to trust for --url (a private or self-signed one)")
        parser.add_argument(
            "--server-name", help="host name to send (SNI, Host) and check the certificate against, when --url names an address"
        )
        parser.add_argument("--http-port", type=int, help="port where plain http must redirect to https (default 80 with https on 443)")
        parser.add_argument("--json", action="store_true", help="print a JSON document instead of lines")
        parser.add_argument("--skip-inside", action="store_true", help="only the outside probe (with --url)")
        parser.add_argument("--timeout", type=float, default=5.0, help="seconds per request of the probe (default 5)")
        parser.add_argument("--concurrency", type=int, default=4, help="parallel requests of the exposure probe (default 4)")

    def handle(self, *args: Any, **options: Any) -> None:
        checks: list[Check] = []
        if not options["skip_inside"]:
            checks += run_checks()
        if options["url"]:
            from relais.ops.probe import ProbeTarget, run_probe

            try:
                target = ProbeTarget.from_url(
                    options["url"], ca_file=options["ca_file"], server_name=options["server_name"], timeout=options["timeout"]
                )
            except ValueError as exc:
                raise CommandError(str(exc)) from None
            if options["http_port"]:
                target = replace(target, http_port=options["http_port"])
            checks += run_probe(target, concurrency=max(1, min(options["concurrency"], 16)), extra_paths=source_maps())
        elif options["skip_inside"]:
            raise CommandError("--skip-inside needs --url")
        counts = summary(checks)
        if options["json"]:
            self.stdout.write(json.dumps({"checks": [c.as_dict() for c in checks], "summary": counts, "ok": counts["fail"] == 0}, indent=2))
        else:
            for check in checks:
                self.stdout.write(f"{check.status.upper()} {check.name}: {check.detail}")
            self.stdout.write(f"{len(checks)} checks: {counts['pass']} pass, {counts['warn']} warn, {counts['fail']} fail")
        if counts["fail"]:
            raise SystemExit(1)
