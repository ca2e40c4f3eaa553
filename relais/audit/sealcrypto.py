"""The sealed log's pure parts: canonical content, hashes, the RFC 9162 Merkle tree and checkpoint signatures.

No Django and no database here, so a proof can be checked anywhere (relais.audit.proofcheck).
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

GENESIS = "0" * 64  # the chain hash before seq 1 and the previous hash of the first checkpoint
COLUMNS = (
    "id",
    "public_id",
    "occurred_at",
    "actor_id",
    "actor_label",
    "actor_role",
    "pharmacy_id",
    "action",
    "object_type",
    "object_ids",
    "detail",
    "request_id",
    "client_ip",
    "channel",
)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text.strip().encode())


def public_key_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(public: bytes) -> str:
    return hashlib.sha256(public).hexdigest()


# ---------------------------------------------------------------- canonical content and hashes


def _uuid_text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and len(value) == 32:  # SQLite stores 32 hex digits: format without parsing (hot path)
        v = value.lower()
        return f"{v[:8]}-{v[8:12]}-{v[12:16]}-{v[16:20]}-{v[20:]}"
    return str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))


def _time_text(value: Any) -> str:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)  # naive values (SQLite) are already UTC (USE_TZ)
    return value.isoformat(timespec="microseconds") + "Z"


def _json_value(value: Any) -> Any:
    if value == "[]":
        return []
    if value == "{}":
        return {}
    return json.loads(value) if isinstance(value, str | bytes) else value


_ENCODE = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def canonical(row: Sequence[Any]) -> bytes:
    """Deterministic serialisation of an event's columns, in COLUMNS order, as read raw from either database."""
    (event_id, public_id, occurred_at, actor_id, label, role, pharmacy_id, action, otype, oids, detail, rid, ip, chan) = row
    content = {
        "id": int(event_id),
        "public_id": _uuid_text(public_id),
        "occurred_at": _time_text(occurred_at),
        "actor_id": _uuid_text(actor_id),
        "actor_label": label,
        "actor_role": role,
        "pharmacy_id": _uuid_text(pharmacy_id),
        "action": action,
        "object_type": otype,
        "object_ids": _json_value(oids),
        "detail": _json_value(detail),
        "request_id": rid,
        "client_ip": None if ip is None else str(ip),
        "channel": chan,
    }
    return _ENCODE(content).encode()


def content_hash(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def chain(previous: str, content_digest: str) -> str:
    return hashlib.sha256(bytes.fromhex(previous) + bytes.fromhex(content_digest)).digest().hex()


# ---------------------------------------------------------------- Merkle tree (RFC 9162, section 2.1)


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _root_of(nodes: list[bytes]) -> bytes:
    # Pairing level by level and lifting the odd last node gives the RFC's split at the largest power of two below n.
    if not nodes:
        return hashlib.sha256(b"").digest()
    while len(nodes) > 1:
        paired = [node_hash(nodes[i], nodes[i + 1]) for i in range(0, len(nodes) - 1, 2)]
        if len(nodes) % 2:
            paired.append(nodes[-1])
        nodes = paired
    return nodes[0]


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over the leaves' data (here: each event's 32-byte content hash)."""
    return _root_of([leaf_hash(d) for d in leaves])


def _split(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)  # largest power of two smaller than n (n > 1)


def _path(m: int, hashes: list[bytes]) -> list[bytes]:
    if len(hashes) <= 1:
        return []
    k = _split(len(hashes))
    if m < k:
        return [*_path(m, hashes[:k]), _root_of(hashes[k:])]
    return [*_path(m - k, hashes[k:]), _root_of(hashes[:k])]


def audit_path(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 2.1.3.1."""
    return _path(index, [leaf_hash(d) for d in leaves])


def verify_inclusion(*, index: int, size: int, leaf: bytes, path: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 2.1.3.2 on the leaf's data."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf_hash(leaf)
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


# ---------------------------------------------------------------- checkpoints


CHECKPOINT_FIELDS = ("seq_first", "seq_last", "count", "merkle_root", "chain_hash", "previous_checkpoint_hash", "created_at", "key_id")


def checkpoint_body(fields: dict[str, Any]) -> bytes:
    """The signed bytes of a checkpoint: its fields as canonical JSON."""
    body = {name: fields[name] for name in CHECKPOINT_FIELDS}
    if not isinstance(body["created_at"], str):
        body["created_at"] = _time_text(body["created_at"])
    body["v"] = 1
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def check_signature(fields: dict[str, Any], signature_hex: str, keys: dict[str, bytes]) -> bool:
    public = keys.get(str(fields.get("key_id")))
    if public is None:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(bytes.fromhex(signature_hex), checkpoint_body(fields))
    except (InvalidSignature, ValueError):
        return False
    return True
