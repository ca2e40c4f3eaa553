"""The backup file format refuses any change: a byte, the header, a cut, swapped or repeated chunks, bytes added, a wrong key."""

from __future__ import annotations

import io
import os
import struct
from datetime import UTC, datetime

import pytest

from relais.backup.archive import read_parts, write_end, write_part
from relais.backup.fileformat import BackupFileError, EncryptingWriter, decrypt_chunks, key_id, make_header, read_header

KEY = os.urandom(32)
PLAIN = os.urandom(10_000)


def _file(chunk_size: int = 1000) -> bytes:
    out = io.BytesIO()
    header = make_header(key=KEY, backend="sqlite", created_at=datetime(2026, 12, 1, tzinfo=UTC), chunk_size=chunk_size)
    writer = EncryptingWriter(out, key=KEY, header=header)
    writer.write(PLAIN)
    writer.close()
    return out.getvalue()


def _read(data: bytes, key: bytes = KEY) -> bytes:
    handle = io.BytesIO(data)
    header = read_header(handle)
    return b"".join(decrypt_chunks(handle, key=key, header=header))


def _chunks(data: bytes) -> tuple[bytes, list[bytes]]:
    """Split a file into its header and its framed chunks (length prefix included)."""
    handle = io.BytesIO(data)
    read_header(handle)
    head = data[: handle.tell()]
    chunks = []
    while prefix := handle.read(4):
        (length,) = struct.unpack(">I", prefix)
        chunks.append(prefix + handle.read(length))
    return head, chunks


def test_round_trip_and_header_readable_without_key() -> None:
    data = _file()
    assert _read(data) == PLAIN
    header = read_header(io.BytesIO(data))
    assert header.backend == "sqlite" and header.created_at == datetime(2026, 12, 1, tzinfo=UTC)
    assert header.key_id == key_id(KEY) and KEY.hex() not in data.hex()[:400]
    assert PLAIN[:64] not in data


@pytest.mark.parametrize("where", [30, 200, 5000, -20, -1])
def test_a_changed_byte_is_refused(where: int) -> None:
    data = bytearray(_file())
    data[where] ^= 0x01
    with pytest.raises(BackupFileError):
        _read(bytes(data))


def test_a_cut_at_a_chunk_boundary_is_refused() -> None:
    head, chunks = _chunks(_file())
    assert len(chunks) == 10
    for keep in range(len(chunks)):
        with pytest.raises(BackupFileError, match="truncated"):
            _read(head + b"".join(chunks[:keep]))


def test_a_cut_inside_a_chunk_is_refused() -> None:
    data = _file()
    with pytest.raises(BackupFileError, match="truncated"):
        _read(data[:-7])


def test_swapped_repeated_or_dropped_chunks_are_refused() -> None:
    head, chunks = _chunks(_file())
    swapped = chunks[:]
    swapped[2], swapped[3] = swapped[3], swapped[2]
    with pytest.raises(BackupFileError, match="chunk 2 does not authenticate"):
        _read(head + b"".join(swapped))
    with pytest.raises(BackupFileError, match="chunk 3 does not authenticate"):
        _read(head + b"".join(chunks[:3] + chunks[2:]))
    with pytest.raises(BackupFileError, match="chunk 3 does not authenticate"):
        _read(head + b"".join(chunks[:3] + chunks[4:]))


def test_bytes_after_the_final_chunk_are_refused() -> None:
    with pytest.raises(BackupFileError, match="after its final chunk"):
        _read(_file() + b"\x00")


def test_a_chunk_from_another_file_is_refused() -> None:
    head, chunks = _chunks(_file())
    _other_head, other = _chunks(_file())
    with pytest.raises(BackupFileError, match="chunk 1 does not authenticate"):
        _read(head + b"".join(chunks[:1] + other[1:2] + chunks[2:]))


def test_a_wrong_key_is_refused_naming_both_key_ids() -> None:
    other = os.urandom(32)
    with pytest.raises(BackupFileError) as caught:
        _read(_file(), key=other)
    assert key_id(KEY) in str(caught.value) and key_id(other) in str(caught.value)


def test_not_a_backup() -> None:
    with pytest.raises(BackupFileError, match="not a Relais backup"):
        _read(b"SQLite format 3\x00" + b"\x00" * 100)


def test_parts_round_trip_and_end_mark() -> None:
    out = io.BytesIO()
    header = make_header(key=KEY, backend="sqlite", created_at=datetime.now(UTC), chunk_size=64)
    writer = EncryptingWriter(out, key=KEY, header=header)
    write_part(writer, "a", [b"one", b"", b"two"])
    write_part(writer, "b", [PLAIN[:500]])
    write_end(writer)
    writer.close()
    handle = io.BytesIO(out.getvalue())
    parts = read_parts(decrypt_chunks(handle, key=KEY, header=read_header(handle)))
    got = [(name, b"".join(pieces)) for name, pieces in parts]
    assert got == [("a", b"onetwo"), ("b", PLAIN[:500])]
