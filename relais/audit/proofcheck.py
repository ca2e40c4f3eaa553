"""Check an exported inclusion proof with nothing but the file and a trusted public key (no Django, no database)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from relais.audit.sealcrypto import CHECKPOINT_FIELDS, _unb64, check_signature, checkpoint_body, key_id, verify_inclusion


@dataclass
class ProofCheck:
    events: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and self.events > 0


def check_proof(proof: dict[str, Any], *, trusted_public_keys: list[bytes]) -> ProofCheck:
    """Each event's content hashes to a leaf whose audit path leads to the root of a checkpoint signed by a trusted key.

    The public keys inside the proof are only a convenience: trust comes from ``trusted_public_keys``."""
    keys = {key_id(k): k for k in trusted_public_keys}
    result = ProofCheck()
    checkpoints = proof.get("checkpoints") or {}
    good: dict[str, dict[str, Any]] = {}
    for name, line in checkpoints.items():
        fields = {f: line.get(f) for f in CHECKPOINT_FIELDS}
        if hashlib.sha256(checkpoint_body(fields)).hexdigest() != name or name != line.get("checkpoint_hash"):
            result.errors.append(f"checkpoint {name[:12]}: its fields do not hash to its name")
        elif not check_signature(fields, str(line.get("signature", "")), keys):
            result.errors.append(f"checkpoint {name[:12]}: not signed by a trusted key")
        else:
            good[name] = line
    for entry in proof.get("events") or []:
        seq = entry.get("seq")
        checkpoint = good.get(str(entry.get("checkpoint")))
        if checkpoint is None:
            result.errors.append(f"seq {seq}: no valid signed checkpoint")
            continue
        content = str(entry.get("content", "")).encode()
        digest = hashlib.sha256(content).hexdigest()
        index = int(seq) - int(checkpoint["seq_first"])
        try:
            path = [bytes.fromhex(p) for p in entry.get("audit_path", [])]
            root = bytes.fromhex(checkpoint["merkle_root"])
            size = int(checkpoint["count"])
            leaf = bytes.fromhex(digest)
            included = digest == entry.get("content_hash") and verify_inclusion(index=index, size=size, leaf=leaf, path=path, root=root)
        except (ValueError, TypeError):
            included = False
        if not included:
            result.errors.append(f"seq {seq}: content is not included in checkpoint {checkpoint['seq_first']}-{checkpoint['seq_last']}")
            continue
        result.events += 1
    return result


def public_keys_from_text(values: list[str]) -> list[bytes]:
    """Base64 raw Ed25519 public keys, as printed by ``audit_proof --public-key``."""
    return [_unb64(v) for v in values if v.strip()]
