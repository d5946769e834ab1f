"""The byte layout of an env snapshot (csrc/batch/snapshot.h), for the tests that take snapshots apart."""

from __future__ import annotations

import struct


def fnv1a64(data: bytes) -> int:
    """The snapshot's checksum (FNV-1a, 64 bits) over everything before it."""
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) % 2**64
    return h


def sealed(body: bytes) -> bytes:
    """``body`` with its checksum appended: what a forger (or a bug elsewhere) could produce."""
    return body + struct.pack("<Q", fnv1a64(body))


def sizes_block(blob: bytes) -> int:
    """The offset of the sizes block's count: after magic, version, the env name and the options."""
    at = 8 + 4
    (size,) = struct.unpack_from("<I", blob, at)
    at += 4 + size
    (options,) = struct.unpack_from("<I", blob, at)
    at += 4
    for _ in range(options):
        (size,) = struct.unpack_from("<I", blob, at)
        at += 4 + size + 8
    return at
