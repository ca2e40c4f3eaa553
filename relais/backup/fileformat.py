"""The backup file: a plaintext header, then AES-256-GCM chunks that authenticate it, their order and the end.

Layout: ``MAGIC`` (8 bytes), version (1 byte), header length (4 bytes, big-endian), the header (UTF-8 JSON: created_at,
backend, key_id, salt, chunk_size), then chunks, each a 4-byte ciphertext length and the ciphertext (with its 16-byte
tag). Each file has its own data key, HKDF(backup key, salt from the header); chunk ``i`` uses the nonce ``i`` (96 bits)
and the associated data SHA-256(magic + version + header) + ``i`` + a final flag: a changed header or byte, a swapped,
repeated or missing chunk, a cut after any chunk, or bytes after the final chunk are refused. The header is readable
without the key (``read_header``), so the doctor can date the newest backup cheaply; it holds no personal data.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"RELAISBK"
VERSION = 1
SUFFIX = ".relaisbackup"
CHUNK_SIZE = 1024 * 1024
MAX_HEADER = 64 * 1024
TAG = 16


class BackupFileError(Exception):
    """The file is not a Relais backup, was made with another key, or was changed, cut or reordered."""


@dataclass(frozen=True)
class Header:
    created_at: datetime
    backend: str
    key_id: str
    salt: bytes
    chunk_size: int
    raw: bytes  # magic + version + length + JSON, exactly as in the file

    @property
    def digest(self) -> bytes:
        return hashlib.sha256(self.raw).digest()


def decode_backup_key(value: str) -> bytes:
    raw = base64.urlsafe_b64decode(value.strip().encode())
    if len(raw) != 32:
        raise BackupFileError("RELAIS_BACKUP_KEY must decode to 32 bytes")
    return raw


def key_id(key: bytes) -> str:
    """A short name for the key (never the key): which key a file needs, shown when it is the wrong one."""
    return hashlib.sha256(b"relais-backup-key-id\0" + key).hexdigest()[:16]


def _file_key(key: bytes, salt: bytes) -> AESGCM:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"relais backup v1 data").derive(key)
    return AESGCM(derived)


def _nonce(index: int) -> bytes:
    return struct.pack(">IQ", 0, index)


def _aad(header: Header, index: int, final: bool) -> bytes:
    return header.digest + struct.pack(">QB", index, 1 if final else 0)


def make_header(*, key: bytes, backend: str, created_at: datetime, chunk_size: int | None = None) -> Header:
    chunk_size = chunk_size or CHUNK_SIZE
    body = {
        "backend": backend,
        "chunk_size": chunk_size,
        "created_at": created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "key_id": key_id(key),
        "salt": os.urandom(32).hex(),
    }
    text = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    raw = MAGIC + bytes([VERSION]) + struct.pack(">I", len(text)) + text
    return _parse(raw, text)


def _parse(raw: bytes, text: bytes) -> Header:
    try:
        body = json.loads(text)
        created = datetime.fromisoformat(str(body["created_at"]).replace("Z", "+00:00"))
        if created.tzinfo is None:
            raise ValueError("naive time")
        header = Header(
            created_at=created,
            backend=str(body["backend"]),
            key_id=str(body["key_id"]),
            salt=bytes.fromhex(body["salt"]),
            chunk_size=int(body["chunk_size"]),
            raw=raw,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise BackupFileError("the backup header is damaged") from exc
    if len(header.salt) != 32 or not 0 < header.chunk_size <= 64 * 1024 * 1024:
        raise BackupFileError("the backup header is damaged")
    return header


def read_header(handle: BinaryIO) -> Header:
    """The header at the start of ``handle`` (left positioned after it); no key needed, nothing authenticated yet."""
    start = handle.read(len(MAGIC) + 5)
    if len(start) < len(MAGIC) + 5 or start[: len(MAGIC)] != MAGIC:
        raise BackupFileError("not a Relais backup file (wrong magic bytes)")
    if start[len(MAGIC)] != VERSION:
        raise BackupFileError(f"unsupported backup format version {start[len(MAGIC)]} (this Relais reads version {VERSION})")
    (length,) = struct.unpack(">I", start[len(MAGIC) + 1 :])
    if length > MAX_HEADER:
        raise BackupFileError("the backup header is damaged")
    text = handle.read(length)
    if len(text) != length:
        raise BackupFileError("the backup file is truncated (inside its header)")
    return _parse(start + text, text)


class EncryptingWriter:
    """File-like sink: buffers plaintext, writes one authenticated chunk per ``chunk_size`` bytes, the final on close."""

    def __init__(self, handle: BinaryIO, *, key: bytes, header: Header) -> None:
        self.handle = handle
        self.header = header
        self.aead = _file_key(key, header.salt)
        self.buffer = bytearray()
        self.index = 0
        self.plain_bytes = 0
        self.closed = False
        handle.write(header.raw)

    def write(self, data: bytes) -> int:
        self.buffer += data
        self.plain_bytes += len(data)
        size = self.header.chunk_size
        while len(self.buffer) > size:  # strictly more: the last chunk is always written by close(), flagged final
            self._emit(bytes(self.buffer[:size]), final=False)
            del self.buffer[:size]
        return len(data)

    def _emit(self, plain: bytes, *, final: bool) -> None:
        sealed = self.aead.encrypt(_nonce(self.index), plain, _aad(self.header, self.index, final))
        self.handle.write(struct.pack(">I", len(sealed)) + sealed)
        self.index += 1

    def close(self) -> None:
        if not self.closed:
            self._emit(bytes(self.buffer), final=True)
            self.buffer.clear()
            self.closed = True


def decrypt_chunks(handle: BinaryIO, *, key: bytes, header: Header) -> Iterator[bytes]:
    """Yield the plaintext chunk by chunk, each authenticated before it is yielded; raises on any damage or a cut."""
    if header.key_id != key_id(key):
        raise BackupFileError(
            f"this backup was made with another backup key (key id {header.key_id}; RELAIS_BACKUP_KEY here has key id"
            f" {key_id(key)}): set the RELAIS_BACKUP_KEY that made it"
        )
    aead = _file_key(key, header.salt)
    index = 0
    limit = header.chunk_size + TAG
    while True:
        prefix = handle.read(4)
        if not prefix:
            raise BackupFileError(f"the backup file is truncated: it ends after chunk {index - 1} without its final chunk")
        if len(prefix) < 4:
            raise BackupFileError(f"the backup file is truncated inside chunk {index}")
        (length,) = struct.unpack(">I", prefix)
        if not TAG <= length <= limit:
            raise BackupFileError(f"chunk {index} is damaged (impossible length)")
        sealed = handle.read(length)
        if len(sealed) != length:
            raise BackupFileError(f"the backup file is truncated inside chunk {index}")
        for final in (False, True):
            try:
                plain = aead.decrypt(_nonce(index), sealed, _aad(header, index, final))
            except InvalidTag:
                continue
            break
        else:
            raise BackupFileError(f"chunk {index} does not authenticate: the file was changed, its chunks reordered, or its header altered")
        yield plain
        index += 1
        if final:
            if handle.read(1):
                raise BackupFileError(f"the backup file has bytes after its final chunk ({index - 1})")
            return
