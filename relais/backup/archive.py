"""The plaintext inside a backup file: named parts, each a run of length-prefixed pieces, then an end mark.

Part: name length (2 bytes), name (UTF-8), pieces (4-byte length + bytes), a zero length. After the last part a zero
name length ends the archive; anything after it is refused. The encryption around it (fileformat.py) already
authenticates every byte and the end; this framing only lets a part of unknown length (pg_dump's output) be streamed.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from typing import Protocol

from relais.backup.fileformat import BackupFileError


class Sink(Protocol):
    def write(self, data: bytes) -> int: ...


def write_part(out: Sink, name: str, pieces: Iterable[bytes]) -> int:
    """Write one part; returns its size in bytes."""
    encoded = name.encode()
    if not 0 < len(encoded) < 65536:
        raise ValueError("a part needs a name of 1 to 65535 bytes")
    out.write(struct.pack(">H", len(encoded)) + encoded)
    size = 0
    for piece in pieces:
        if piece:
            out.write(struct.pack(">I", len(piece)))
            out.write(piece)
            size += len(piece)
    out.write(struct.pack(">I", 0))
    return size


def write_end(out: Sink) -> None:
    out.write(struct.pack(">H", 0))


class _Reader:
    """Exact reads over the decrypted chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.buffer = bytearray()

    def read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            try:
                self.buffer += next(self.chunks)
            except StopIteration:
                raise BackupFileError("the backup's content ends inside a part") from None
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    def at_end(self) -> bool:
        if self.buffer:
            return False
        return all(not chunk for chunk in self.chunks)


def read_parts(chunks: Iterator[bytes]) -> Iterator[tuple[str, Iterator[bytes]]]:
    """Yield (name, pieces) per part; a part's pieces not consumed by the caller are skipped (still authenticated)."""
    reader = _Reader(chunks)
    while True:
        (length,) = struct.unpack(">H", reader.read(2))
        if length == 0:
            if not reader.at_end():
                raise BackupFileError("the backup has content after its end mark")
            return
        name = reader.read(length).decode()
        done = False

        def pieces() -> Iterator[bytes]:
            nonlocal done
            while not done:
                (size,) = struct.unpack(">I", reader.read(4))
                if size == 0:
                    done = True
                    return
                yield reader.read(size)

        body = pieces()
        yield name, body
        for _ in body:  # drain what the caller left
            pass
