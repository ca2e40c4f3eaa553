"""Verify an HC1 text (argument or standard input) against a signer certificate and print its DCC payload as JSON."""

from __future__ import annotations

import base64
import binascii
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from cryptography import x509
from django.core.management.base import BaseCommand, CommandError, CommandParser

from relais.certificates import valuesets
from relais.certificates.errors import REASONS, DccInvalid
from relais.certificates.keys import CERT_FILE_ENV
from relais.certificates.verify import verify_hc1

# Exit status per reason so scripts can branch without parsing text; 1 stays Django's usage/config error.
EXIT_CODES = {reason: 10 + index for index, reason in enumerate(REASONS)}


def load_certificate(value: str) -> x509.Certificate:
    """A PEM or DER file path, or base64 DER as in the test vectors' TESTCTX.CERTIFICATE."""
    path = Path(value)
    try:
        if _is_file(path):
            data = path.read_bytes()
            if b"-----BEGIN" in data:
                return x509.load_pem_x509_certificate(data)
            return x509.load_der_x509_certificate(data)
        return x509.load_der_x509_certificate(base64.b64decode(value, validate=True))
    except (OSError, ValueError, binascii.Error) as exc:
        raise CommandError(f"--cert is neither a readable certificate file nor base64 DER ({type(exc).__name__})") from None


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a base64 certificate is longer than a file name may be
        return False


def parse_at(value: str | None) -> datetime:
    if not value:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CommandError("--at must be an ISO 8601 date-time") from None
    return moment if moment.utcoffset() is not None else moment.replace(tzinfo=UTC)


class Command(BaseCommand):
    stealth_options = ("stdin",)  # lets tests hand in a stream
    help = (
        "Verify an EU DCC 'HC1:' text (signature, validity, schema, codes against the EU value sets); exit 0 and print the "
        "payload, or exit 10+ with 'invalid: <reason>: <message>'."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("hc1", nargs="?", help="HC1 text; read from standard input when absent or '-'")
        parser.add_argument("--cert", help=f"signer certificate: PEM/DER file or base64 DER (default: ${CERT_FILE_ENV})")
        parser.add_argument("--at", help="validation time, ISO 8601 (default: now; UTC when no offset)")
        parser.add_argument(
            "--valuesets",
            metavar="DIR",
            help="EU DCC value sets (eu-dcc-valuesets JSON files) the coded fields must be in (default: the bundled copy, "
            "relais/certificates/valuesets)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        cert_value = options.get("cert") or os.environ.get(CERT_FILE_ENV, "")
        if not cert_value:
            raise CommandError(f"give --cert or set {CERT_FILE_ENV}")
        at = parse_at(options.get("at"))
        certificate = load_certificate(cert_value)
        try:
            value_sets = valuesets.load(Path(options["valuesets"]) if options.get("valuesets") else valuesets.BUNDLED)
        except valuesets.ValueSetsMissing as exc:
            raise CommandError(f"--valuesets: {exc}") from None
        text = options.get("hc1")
        if not text or text == "-":
            stream: TextIO = options.get("stdin") or sys.stdin
            text = stream.read()
        try:
            payload = verify_hc1(text.strip(), certificate=certificate, at=at, value_sets=value_sets)
        except DccInvalid as exc:
            self.stderr.write(f"invalid: {exc.reason}: {exc.message}")
            raise SystemExit(EXIT_CODES[exc.reason]) from None
        self.stdout.write(json.dumps(payload, indent=2, ensure_ascii=False))
