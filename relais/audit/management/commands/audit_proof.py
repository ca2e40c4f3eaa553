"""Export the inclusion proofs of a patient's (any object's) or an account's audit events, or check such a file."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from relais.audit.proof import build_proof
from relais.audit.proofcheck import check_proof, public_keys_from_text
from relais.audit.seal import trusted_keys


class Command(BaseCommand):
    help = "Export inclusion proofs (--object UUID | --actor EMAIL) against signed checkpoints, or --check a proof file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--object", help="a patient, screening or user UUID")
        parser.add_argument("--actor", help="a staff email")
        parser.add_argument("--out", help="write the proof here (mode 0600) instead of stdout")
        parser.add_argument("--check", help="verify this proof file against the configured public key(s)")
        parser.add_argument("--public-key", action="append", default=[], help="trust this base64 key instead of the configured ones")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["check"]:
            self._check(Path(options["check"]), options["public_key"])
            return
        if bool(options["object"]) == bool(options["actor"]):
            raise CommandError("give --object UUID or --actor EMAIL (or --check FILE)")
        object_id = None
        if options["object"]:
            try:
                object_id = uuid.UUID(options["object"])
            except ValueError as exc:
                raise CommandError("--object: not a UUID") from exc
        proof = build_proof(object_id=object_id, actor_email=options["actor"])
        text = json.dumps(proof, indent=1, sort_keys=True)
        if options["out"]:
            fd = os.open(options["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(text + "\n")
        else:
            self.stdout.write(text)
        self.stderr.write(f"{len(proof['events'])} event(s) proven, {len(proof['pending'])} not yet under a signed checkpoint")

    def _check(self, path: Path, given: list[str]) -> None:
        try:
            proof = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise CommandError(f"{path}: not a readable proof ({exc.__class__.__name__})") from exc
        keys = public_keys_from_text(given) if given else list(trusted_keys().values())
        result = check_proof(proof, trusted_public_keys=keys)
        if not result.ok:
            for error in result.errors[:20]:
                self.stdout.write(error)
            raise CommandError(f"proof does not verify ({len(result.errors)} error(s), {result.events} event(s) proven)", returncode=1)
        self.stdout.write(f"proof verifies: {result.events} event(s) included in checkpoints signed by a trusted key")
